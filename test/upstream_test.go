package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// This file holds the end-to-end tests of load balancing (issue 4): three
// (or more) real backend servers on loopback, each identifying itself with
// an X-Backend header and a JSON body, behind the built gatehouse binary.

// lbServer is a restartable backend: it keeps its address across stop and
// start, so "restart the container on the same port" can be tested.
type lbServer struct {
	t    *testing.T
	name string
	addr string

	// status, when non-zero, is the status of every non-health response.
	status atomic.Int32
	// cacheControl is sent on every non-health response when set.
	cacheControl string
	// postDelay delays POST responses (response_header_timeout tests).
	postDelay time.Duration
	// gate releases /hold requests: each receive lets one finish.
	gate chan struct{}

	hits   atomic.Int64 // non-health requests received
	checks atomic.Int64 // health probes received
	held   atomic.Int64 // /hold requests currently blocked

	mu      sync.Mutex
	cookies []string // Cookie header of each non-health request
	srv     *http.Server
	done    chan struct{} // closed when Serve of the current srv returned
}

// newLBServer starts a backend on a fresh 127.0.0.1 port.
func newLBServer(t *testing.T, name string) *lbServer {
	t.Helper()
	s := &lbServer{t: t, name: name, addr: "127.0.0.1:0", gate: make(chan struct{})}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start listens on s.addr (the same port after the first start) and serves.
func (s *lbServer) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	waitUntil(s.t, 5*time.Second, fmt.Sprintf("backend %s: listen %s", s.name, s.addr), func() bool {
		ln, err = net.Listen("tcp", s.addr) // the same port once it is free again
		return err == nil
	})
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv, s.done = srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
}

// stop kills the server hard: the listener and every connection, idle or
// busy, are closed at once (a crashed or killed container).
func (s *lbServer) stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
}

func (s *lbServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health/" {
		s.checks.Add(1)
		_, _ = io.WriteString(w, "ok")
		return
	}
	s.hits.Add(1)
	s.mu.Lock()
	s.cookies = append(s.cookies, r.Header.Get("Cookie"))
	s.mu.Unlock()
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h.Set("X-Backend", s.name)
	if r.URL.Path == "/ws" {
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {s.name}})
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil {
			_ = c.WriteMessage(websocket.TextMessage, []byte(s.name))
		}
		return
	}
	if strings.HasPrefix(r.URL.Path, "/hold") {
		s.held.Add(1)
		select {
		case <-s.gate:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		s.held.Add(-1)
	}
	if r.Method == http.MethodPost && s.postDelay > 0 {
		select {
		case <-time.After(s.postDelay):
		case <-r.Context().Done():
		}
	}
	if s.cacheControl != "" {
		h.Set("Cache-Control", s.cacheControl)
	}
	h.Set("Content-Type", "application/json")
	if st := s.status.Load(); st != 0 {
		w.WriteHeader(int(st))
	}
	fmt.Fprintf(w, `{"backend":%q}`+"\n", s.name)
}

func (s *lbServer) seenCookies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cookies...)
}

// lbConfig is a plain-HTTP gatehouse with site app.test (also the default
// site) whose single route "/" (WebSocket enabled, any origin) goes to
// upstream "app"; upstream is the body of [upstreams.app].
func lbConfig(upstream string) string {
	return plainOnly + `
[sites.app]
hosts = ["app.test"]
default = true
tls = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"
websocket = { enabled = true, origins = ["*"] }

[upstreams.app]
` + upstream
}

// lbServers renders servers = [...] with weights (0: omitted).
func lbServers(ss []*lbServer, weights ...int) string {
	var parts []string
	for i, s := range ss {
		p := fmt.Sprintf("{ name = %q, address = %q", s.name, s.addr)
		if i < len(weights) && weights[i] > 0 {
			p += fmt.Sprintf(", weight = %d", weights[i])
		}
		parts = append(parts, p+" }")
	}
	return "servers = [" + strings.Join(parts, ", ") + "]\n"
}

// fastHealth is an active check every 200 ms, fall 2, rise 2.
const fastHealth = `
[upstreams.app.health]
path = "/health/"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
`

// lbResult is one request's outcome.
type lbResult struct {
	status  int
	backend string
	header  http.Header
	err     error
}

// lbClient is a client whose every connection goes to g's plain
// listener, so URLs can name the site (http://app.test/...) and cookie
// jars key cookies by the site's name, as a browser would.
//
// g keeps its transports: at cleanup (after the test's own) their idle
// connections are closed, and then the daemon's
// gatehouse_connections_open must come back to 0: a test that reaches the
// public listener only through lbClient (and closes whatever else it
// opens) thereby checks that gatehouse closes every connection its client
// closed.
func lbClient(g *gatehouse) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", g.httpAddr)
		}}
	g.trackClient(tr)
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// lbDo sends a request for http://app.test+path through c (an lbClient); it never
// calls t.Fatal, so goroutines may use it.
func lbDo(c *http.Client, g *gatehouse, method, path string, hdr http.Header) lbResult {
	return lbDoBody(c, g, method, path, hdr, "")
}

// lbDoBody is lbDo with a request body (none when empty).
func lbDoBody(c *http.Client, g *gatehouse, method, path string, hdr http.Header, body string) lbResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://app.test"+path, rb)
	if err != nil {
		return lbResult{err: err}
	}
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	resp, err := c.Do(req)
	if err != nil {
		return lbResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return lbResult{status: resp.StatusCode, err: err}
	}
	res := lbResult{status: resp.StatusCode, header: resp.Header, backend: resp.Header.Get("X-Backend")}
	if res.status == 200 {
		var body struct{ Backend string }
		if json.Unmarshal(b, &body) != nil || body.Backend != res.backend {
			res.err = fmt.Errorf("body %q does not name backend %q", b, res.backend)
		}
	}
	return res
}

// lbGet is lbDo for the test goroutine: a transport error fails the test.
func lbGet(t *testing.T, c *http.Client, g *gatehouse, path string) lbResult {
	t.Helper()
	res := lbDo(c, g, "GET", path, nil)
	if res.err != nil {
		t.Fatalf("GET %s: %v", path, res.err)
	}
	return res
}

// lbState is one server in the admin GET /upstreams answer.
type lbState struct {
	Name      string
	Addr      string
	ID        string
	Up        bool
	Available bool
	Draining  bool
	InFlight  int64 `json:"in_flight"`
	Queue     int64
	Failures  uint64
}

// lbAdmin fetches GET /upstreams from the admin listener, by server name.
func lbAdmin(t *testing.T, g *gatehouse) map[string]lbState {
	t.Helper()
	resp, err := http.Get("http://" + g.adminAddr + "/upstreams")
	if err != nil {
		t.Fatalf("GET /upstreams: %v", err)
	}
	defer resp.Body.Close()
	var all map[string][]lbState
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /upstreams: status %d, decode: %v", resp.StatusCode, err)
	}
	out := map[string]lbState{}
	for _, s := range all["app"] {
		out[s.Name] = s
	}
	return out
}

// lbWait is waitUntil.
func lbWait(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return waitUntil(t, timeout, what, cond)
}

func lbThree(t *testing.T) []*lbServer {
	return []*lbServer{newLBServer(t, "s1"), newLBServer(t, "s2"), newLBServer(t, "s3")}
}

// TestUpstreamWeightedRoundRobin: 600 requests over weights 3/2/1 split
// 300/200/100 within ±5 % of the total (nginx smooth WRR is exact here).
func TestUpstreamWeightedRoundRobin(t *testing.T) {
	t.Parallel()
	ss := lbThree(t)
	g := startGatehouse(t, lbConfig(lbServers(ss, 3, 2, 1)))
	c := lbClient(g)
	counts := map[string]int{}
	const n = 600
	for i := 0; i < n; i++ {
		counts[lbGet(t, c, g, "/").backend]++
	}
	want := map[string]int{"s1": 300, "s2": 200, "s3": 100}
	for name, w := range want {
		if d := counts[name] - w; d > n/20 || d < -n/20 {
			t.Errorf("%s got %d of %d requests, want %d ± %d", name, counts[name], n, w, n/20)
		}
		if got := ss[name[1]-'1'].hits.Load(); got != int64(counts[name]) {
			t.Errorf("%s: backend counted %d requests, clients saw %d", name, got, counts[name])
		}
	}
	t.Logf("split over %d requests: %v", n, counts)
}

// TestUpstreamPolicies: random_two follows the weights roughly; ip_hash
// maps each client address (X-Forwarded-For from a trusted peer) to one
// server, and spreads addresses; least_conn sends held requests to the
// least loaded server per weight.
func TestUpstreamPolicies(t *testing.T) {
	t.Parallel()
	t.Run("random_two", func(t *testing.T) {
		t.Parallel()
		ss := lbThree(t)
		g := startGatehouse(t, lbConfig(`policy = "random_two"`+"\n"+lbServers(ss, 3, 2, 1)))
		c := lbClient(g)
		counts := map[string]int{}
		const n = 600
		for i := 0; i < n; i++ {
			counts[lbGet(t, c, g, "/").backend]++
		}
		// Sequential requests see no load, so the first weighted draw
		// wins: expect shares 1/2, 1/3, 1/6; ±10 points is > 4 σ.
		for name, share := range map[string]float64{"s1": 0.5, "s2": 1.0 / 3, "s3": 1.0 / 6} {
			got := float64(counts[name]) / n
			if got < share-0.10 || got > share+0.10 {
				t.Errorf("random_two: %s share %.3f, want %.3f ± 0.10 (%v)", name, got, share, counts)
			}
		}
		t.Logf("random_two split: %v", counts)
	})
	t.Run("ip_hash", func(t *testing.T) {
		t.Parallel()
		ss := lbThree(t)
		g := startGatehouse(t, "trusted_proxies = [\"127.0.0.1/32\"]\n"+lbConfig(`policy = "ip_hash"`+"\n"+lbServers(ss)))
		c := lbClient(g)
		mapping := map[string]string{}
		used := map[string]int{}
		for round := 0; round < 3; round++ {
			for i := 1; i <= 60; i++ {
				ip := fmt.Sprintf("198.51.100.%d", i)
				res := lbDo(c, g, "GET", "/", http.Header{"X-Forwarded-For": {ip}})
				if res.err != nil || res.status != 200 {
					t.Fatalf("GET for %s: %d %v", ip, res.status, res.err)
				}
				if prev, ok := mapping[ip]; ok && prev != res.backend {
					t.Fatalf("ip_hash: client %s went to %s, earlier to %s", ip, res.backend, prev)
				}
				if round == 0 {
					used[res.backend]++
				}
				mapping[ip] = res.backend
			}
		}
		if len(used) != 3 {
			t.Errorf("ip_hash: 60 client addresses used servers %v, want all three", used)
		}
		t.Logf("ip_hash: 60 addresses over servers %v", used)
	})
	t.Run("least_conn", func(t *testing.T) {
		t.Parallel()
		ss := lbThree(t)
		g := startGatehouse(t, lbConfig(`policy = "least_conn"`+"\n"+lbServers(ss, 2, 1, 1)))
		c := lbClient(g)
		// Hold four requests one after another: lowest in-flight/weight
		// gives s1 (weight 2) two and s2, s3 one each, whatever the ties.
		var wg sync.WaitGroup
		results := make(chan lbResult, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- lbDo(c, g, "GET", "/hold", nil)
			}()
			lbWait(t, 5*time.Second, fmt.Sprintf("held request %d to reach a backend", i+1), func() bool {
				return ss[0].held.Load()+ss[1].held.Load()+ss[2].held.Load() == int64(i+1)
			})
		}
		held := []int64{ss[0].held.Load(), ss[1].held.Load(), ss[2].held.Load()}
		for i, s := range ss {
			for range held[i] {
				s.gate <- struct{}{}
			}
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r.err != nil || r.status != 200 {
				t.Errorf("held request: %d %v", r.status, r.err)
			}
		}
		if held[0] != 2 || held[1] != 1 || held[2] != 1 {
			t.Errorf("least_conn with weights 2/1/1: held requests per server %v, want [2 1 1]", held)
		}
	})
}

// TestUpstreamSticky: a client with a cookie jar stays on one server for
// 100 requests and a WebSocket upgrade; the backend never sees the
// persistence cookie but keeps the others; the response that sets it is
// Cache-Control: private merged with the backend's value; a cookie naming
// a server that is down is replaced.
func TestUpstreamSticky(t *testing.T) {
	t.Parallel()
	ss := lbThree(t)
	for _, s := range ss {
		s.cacheControl = "max-age=60"
	}
	g := startGatehouse(t, lbConfig(lbServers(ss)+`
[upstreams.app.sticky]
cookie = "SERVERID"
secret = "test-secret"
`+fastHealth))
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("http://app.test/")
	jar.SetCookies(base, []*http.Cookie{{Name: "sessionid", Value: "abc123"}})
	c := lbClient(g)
	c.Jar = jar

	first := lbGet(t, c, g, "/")
	setCookie := first.header.Values("Set-Cookie")
	if first.status != 200 || len(setCookie) != 1 || !strings.HasPrefix(setCookie[0], "SERVERID=") {
		t.Fatalf("first response: status %d, Set-Cookie %q; want 200 and one SERVERID cookie", first.status, setCookie)
	}
	if got := first.header.Get("Cache-Control"); got != "private, max-age=60" {
		t.Errorf("Cache-Control of the response that sets the cookie = %q, want %q", got, "private, max-age=60")
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(setCookie[0], attr) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie[0], attr)
		}
	}
	home := first.backend
	for i := 0; i < 99; i++ {
		res := lbGet(t, c, g, "/")
		if res.backend != home {
			t.Fatalf("request %d went to %s, want sticky %s", i+2, res.backend, home)
		}
		if sc := res.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("request %d: sticky hit set a cookie again: %q", i+2, sc)
		}
		if cc := res.header.Get("Cache-Control"); cc != "max-age=60" {
			t.Fatalf("request %d: Cache-Control %q on a response that sets no cookie, want the backend's %q", i+2, cc, "max-age=60")
		}
	}

	// The WebSocket upgrade with the same jar lands on the same server.
	d := websocket.Dialer{Jar: jar, HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", g.httpAddr)
		}}
	conn, resp, err := d.Dial("ws://app.test/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v (response %v)", err, resp)
	}
	if got := resp.Header.Get("X-Backend"); got != home {
		t.Errorf("websocket upgrade answered by %s, want sticky %s", got, home)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("sticky websocket upgrade set a cookie again: %q", sc)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("who")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != home {
		t.Errorf("websocket message from %q (err %v), want %q", msg, err, home)
	}
	conn.Close()

	total := 0
	for _, s := range ss {
		for _, ck := range s.seenCookies() {
			total++
			if strings.Contains(ck, "SERVERID") {
				t.Fatalf("backend %s saw the persistence cookie: Cookie: %q", s.name, ck)
			}
			if !strings.Contains(ck, "sessionid=abc123") {
				t.Fatalf("backend %s lost the application cookie: Cookie: %q", s.name, ck)
			}
		}
	}
	if total != 101 {
		t.Errorf("backends saw %d requests, want 101 (100 GET + 1 upgrade)", total)
	}
	if n := ss[home[1]-'1'].hits.Load(); n != 101 {
		t.Errorf("sticky server %s saw %d requests, want 101", home, n)
	}

	// Take the sticky server down: the cookie must be replaced.
	ss[home[1]-'1'].stop()
	lbWait(t, 3*time.Second, "sticky server marked down", func() bool { return !lbAdmin(t, g)[home].Up })
	moved := lbGet(t, c, g, "/")
	if moved.status != 200 || moved.backend == home {
		t.Fatalf("after %s went down: status %d from %q", home, moved.status, moved.backend)
	}
	sc := moved.header.Values("Set-Cookie")
	if len(sc) != 1 || !strings.HasPrefix(sc[0], "SERVERID=") || sc[0] == setCookie[0] {
		t.Fatalf("cookie naming a down server not replaced: Set-Cookie %q (old %q)", sc, setCookie[0])
	}
	if cc := moved.header.Get("Cache-Control"); cc != "private, max-age=60" {
		t.Errorf("replacement cookie response Cache-Control %q, want %q", cc, "private, max-age=60")
	}
	for i := 0; i < 10; i++ {
		if res := lbGet(t, c, g, "/"); res.backend != moved.backend {
			t.Fatalf("after re-dispatch request went to %s, want new sticky %s", res.backend, moved.backend)
		}
	}
}

// TestUpstreamKillAndRestart: one of three servers is killed while
// three goroutines send GETs; no request fails. The active check (200 ms,
// fall 2, rise 2) marks it down after fall failed probes; after a restart
// on the same port it is up again and gets traffic after rise passed
// probes. Passive health keeps its default (max_fails 3 / fail_timeout
// 30s): the active check's up transition must end the passive exclusion
// the failed requests earned.
//
// Probes are counted, not timed: gatehouse_health_checks_total counts a
// probe just before its result is applied, and a round of probes ends
// before the next begins. So a state read after the count shows every
// earlier probe applied: down (or available) is checked not to come
// before the fall-th (rise-th) probe, nor after the next one. No
// wall-clock bound is needed, so the test holds on a loaded machine.
func TestUpstreamKillAndRestart(t *testing.T) {
	t.Parallel()
	ss := lbThree(t)
	g := startGatehouse(t, lbConfig(lbServers(ss)+fastHealth))
	lbWait(t, 10*time.Second, "first health checks", func() bool { return ss[1].checks.Load() > 0 })

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := lbClient(g)
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				res := lbDo(c, g, "GET", "/", nil)
				if res.err != nil || res.status != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d err %v", res.status, res.err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	stop := sync.OnceFunc(func() { close(stopLoad); wg.Wait() })
	defer stop()
	lbWait(t, 10*time.Second, "load running", func() bool { return ok.Load() >= 30 })

	const fall, rise = 2, 2
	probes := func(result string) int {
		v, _ := metricValue(g.metrics(), `gatehouse_health_checks_total{result="`+result+`",server="s2",upstream="app"}`)
		n, _ := strconv.Atoi(v)
		return n
	}
	victim := ss[1]
	failsBefore := probes("fail")
	victim.stop()
	lbWait(t, 20*time.Second, "killed server marked down", func() bool {
		fails := probes("fail") - failsBefore
		up := lbAdmin(t, g)["s2"].Up // read after the count
		if up && fails > fall {
			t.Fatalf("s2 still up after %d failed probes, want down after %d (fall)", fails, fall)
		}
		return !up
	})
	if fails := probes("fail") - failsBefore; fails < fall {
		t.Errorf("s2 marked down after %d failed probes, want %d (fall)", fails, fall)
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_server_up{server="s2",upstream="app"}`); v != "0" {
		t.Errorf("gatehouse_upstream_server_up for s2 = %q, want 0", v)
	}
	// The requests that failed on s2 before it was marked down earn a
	// passive exclusion (max_fails 3) that the restart must see ended.
	// Three goroutines send dozens in the fall×interval it takes; a
	// machine too starved to send three is told in the log.
	passive := lbAdmin(t, g)["s2"].Failures
	if passive < 3 {
		t.Logf("note: only %d requests failed on s2 before it was marked down: no passive exclusion to end this time", passive)
	}

	passesBefore := probes("pass")
	hitsBefore := victim.hits.Load()
	okDown := ok.Load()
	victim.start()
	lbWait(t, 20*time.Second, "traffic back on the restarted server", func() bool {
		if victim.hits.Load() > hitsBefore {
			return true
		}
		passes := probes("pass") - passesBefore
		if st := lbAdmin(t, g)["s2"]; passes > rise && !st.Available {
			t.Fatalf("s2 not available after %d passed probes (up %v), want available after %d (rise)", passes, st.Up, rise)
		}
		return false
	})
	// The first request reached s2 after the rise-th pass was applied, so
	// after it was counted.
	if passes := probes("pass") - passesBefore; passes < rise {
		t.Errorf("s2 got traffic after %d passed probes, want %d (rise) first", passes, rise)
	}
	if ok.Load() == okDown {
		t.Errorf("no request completed while s2 was down: the load loop did not run across the kill")
	}
	stop()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed during the kill (first: %v)", f, f+ok.Load(), firstErr.Load())
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_server_up{server="s2",upstream="app"}`); v != "1" {
		t.Errorf("gatehouse_upstream_server_up for s2 after restart = %q, want 1", v)
	}
	t.Logf("%d requests, none failed; %d passive failures on s2 while it was down", ok.Load(), passive)
}

// TestUpstreamBackup: the backup serves only while every primary is down,
// and is left as soon as a primary is back.
func TestUpstreamBackup(t *testing.T) {
	t.Parallel()
	p1, p2, bk := newLBServer(t, "p1"), newLBServer(t, "p2"), newLBServer(t, "bk")
	g := startGatehouse(t, lbConfig(fmt.Sprintf(`servers = [
  { name = "p1", address = %q },
  { name = "p2", address = %q },
  { name = "bk", address = %q, backup = true },
]
`, p1.addr, p2.addr, bk.addr)+fastHealth))
	c := lbClient(g)
	for i := 0; i < 20; i++ {
		if res := lbGet(t, c, g, "/"); res.backend == "bk" {
			t.Fatalf("backup served request %d while the primaries are up", i)
		}
	}
	p1.stop()
	p2.stop()
	lbWait(t, 3*time.Second, "both primaries down", func() bool {
		st := lbAdmin(t, g)
		return !st["p1"].Up && !st["p2"].Up
	})
	for i := 0; i < 20; i++ {
		if res := lbGet(t, c, g, "/"); res.status != 200 || res.backend != "bk" {
			t.Fatalf("with every primary down: status %d from %q, want 200 from bk", res.status, res.backend)
		}
	}
	p1.start()
	lbWait(t, 3*time.Second, "p1 back up", func() bool { return lbAdmin(t, g)["p1"].Up })
	bkBefore := bk.hits.Load()
	for i := 0; i < 20; i++ {
		if res := lbGet(t, c, g, "/"); res.status != 200 || res.backend != "p1" {
			t.Fatalf("with p1 back: status %d from %q, want 200 from p1", res.status, res.backend)
		}
	}
	if n := bk.hits.Load() - bkBefore; n != 0 {
		t.Errorf("backup got %d requests after a primary returned", n)
	}
}

// TestUpstreamMaxConnsQueue: max_conns = 2 with queue = 2: two requests
// run, two wait, the fifth gets 503 with Retry-After; the queued ones are
// served as slots free; a request that waits longer than queue_timeout
// gets 503 too.
func TestUpstreamMaxConnsQueue(t *testing.T) {
	t.Parallel()
	s := newLBServer(t, "s1")
	g := startGatehouse(t, lbConfig(fmt.Sprintf(`servers = [{ name = "s1", address = %q, max_conns = 2 }]
queue = 2
queue_timeout = "1500ms"
client_share = 1 # one client plays every client here
`, s.addr)))
	results := make(chan lbResult, 8)
	var wg sync.WaitGroup
	launch := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- lbDo(lbClient(g), g, "GET", "/hold", nil)
		}()
	}
	launch()
	launch()
	lbWait(t, 5*time.Second, "two requests running", func() bool { return s.held.Load() == 2 })
	launch()
	launch()
	lbWait(t, 5*time.Second, "two requests queued", func() bool { return lbAdmin(t, g)["s1"].Queue == 2 })
	fifth := lbDo(lbClient(g), g, "GET", "/hold", nil)
	if fifth.status != 503 || fifth.header.Get("Retry-After") == "" {
		t.Fatalf("fifth concurrent request: status %d, Retry-After %q; want 503 with Retry-After", fifth.status, fifth.header.Get("Retry-After"))
	}
	if s.hits.Load() != 2 {
		t.Fatalf("backend saw %d requests, want the 2 running ones", s.hits.Load())
	}
	// Free one slot: exactly one queued request gets it.
	s.gate <- struct{}{}
	lbWait(t, 5*time.Second, "a queued request served", func() bool { return s.hits.Load() == 3 && s.held.Load() == 2 })
	if q := lbAdmin(t, g)["s1"].Queue; q != 1 {
		t.Errorf("queue length after one slot freed = %d, want 1", q)
	}
	for i := 0; i < 3; i++ {
		s.gate <- struct{}{}
	}
	wg.Wait()
	if n := s.hits.Load(); n != 4 {
		t.Errorf("backend saw %d requests, want 4 (2 running + 2 queued)", n)
	}
	close(results)
	for r := range results {
		if r.err != nil || r.status != 200 {
			t.Errorf("running or queued request: status %d, err %v; want 200", r.status, r.err)
		}
	}

	// queue_timeout: hold both slots, a third request waits 1.5 s, then 503.
	results = make(chan lbResult, 2)
	launch()
	launch()
	lbWait(t, 5*time.Second, "two requests running again", func() bool { return s.held.Load() == 2 })
	start := time.Now()
	late := lbDo(lbClient(g), g, "GET", "/hold", nil)
	waited := time.Since(start)
	// The daemon starts the 1.5 s queue timer after it has the request, so
	// the 503 cannot come sooner; it must come well before the held
	// requests end on their own (10 s), which would free a slot.
	if late.status != 503 || late.header.Get("Retry-After") == "" || waited < 1500*time.Millisecond || waited > 9*time.Second {
		t.Errorf("queued past queue_timeout: status %d, Retry-After %q after %v; want 503 with Retry-After after ~1.5s",
			late.status, late.header.Get("Retry-After"), waited)
	}
	s.gate <- struct{}{}
	s.gate <- struct{}{}
	wg.Wait()
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_server_queue_timeouts_total{server="s1",upstream="app"}`); v != "1" {
		t.Errorf("gatehouse_upstream_server_queue_timeouts_total = %q, want 1", v)
	}
}

// TestUpstreamDrain: after POST /upstreams/app/servers/X/drain?deadline=3s
// on the admin listener, no new (cookie-less) client lands on X, while a
// sticky client keeps X until the deadline, then moves.
//
// The daemon sets the deadline by its own clock while it handles the
// POST, so it lies between the time the POST was sent plus 3 s and the
// time its answer came plus 3 s. A sticky request answered before the
// first must have stayed; one sent after the second must have moved.
// These bounds hold however slow the machine is.
func TestUpstreamDrain(t *testing.T) {
	t.Parallel()
	ss := lbThree(t)
	g := startGatehouse(t, lbConfig(lbServers(ss)+`
[upstreams.app.sticky]
secret = "drain-secret"
`))
	jar, _ := cookiejar.New(nil)
	sticky := lbClient(g)
	sticky.Jar = jar
	home := lbGet(t, sticky, g, "/").backend

	const deadline = 3 * time.Second
	sent := time.Now()
	resp, err := adminPost(g.adminAddr, "/upstreams/app/servers/"+home+"/drain?deadline=3s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	earliest, latest := sent.Add(deadline), time.Now().Add(deadline)
	if resp.StatusCode != 200 {
		t.Fatalf("POST drain: status %d", resp.StatusCode)
	}
	if st := lbAdmin(t, g)[home]; !st.Draining || st.Available {
		t.Errorf("admin state of drained %s: %+v", home, st)
	}
	fresh := lbClient(g)
	pace := time.NewTicker(20 * time.Millisecond) // spreads the requests over the window
	defer pace.Stop()
	stayed := 0 // sticky requests answered (on home) before the earliest deadline
	var moved lbResult
	for i := 0; ; i++ {
		if res := lbGet(t, fresh, g, "/"); res.backend == home {
			t.Fatalf("cookie-less request %d landed on draining %s", i, home)
		}
		reqSent := time.Now()
		res := lbGet(t, sticky, g, "/")
		answered := time.Now()
		if res.backend != home {
			if answered.Before(earliest) {
				t.Fatalf("sticky client moved to %s %v after the drain was asked, before its %v deadline",
					res.backend, answered.Sub(sent), deadline)
			}
			moved = res
			break
		}
		if sc := res.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("sticky request %d on %s set a cookie again: %q", i, home, sc)
		}
		if reqSent.After(latest) {
			t.Fatalf("sticky request sent %v after the drain deadline still went to draining %s", reqSent.Sub(latest), home)
		}
		if answered.Before(earliest) {
			stayed++
		}
		<-pace.C
	}
	if stayed == 0 {
		t.Errorf("no sticky request was answered within the %v before the deadline: the stay was not checked", deadline)
	}
	if len(moved.header.Values("Set-Cookie")) != 1 {
		t.Fatalf("after the drain deadline the sticky client got %s with Set-Cookie %q; want a new cookie",
			moved.backend, moved.header.Values("Set-Cookie"))
	}
	if res := lbGet(t, sticky, g, "/"); res.backend != moved.backend {
		t.Errorf("after moving, sticky client went to %s, want %s", res.backend, moved.backend)
	}
	resp, err = adminPost(g.adminAddr, "/upstreams/app/servers/"+home+"/undrain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := lbAdmin(t, g)[home]; st.Draining || !st.Available {
		t.Errorf("admin state of undrained %s: %+v", home, st)
	}
	t.Logf("%d sticky requests stayed on %s before the deadline", stayed, home)
}

// TestUpstreamPassiveHealth: a server answering 502 (fail_statuses) or
// refusing connections max_fails times within fail_timeout gets no traffic
// for fail_timeout, then gets traffic again.
//
// The exclusion starts when the second failure is reported, which is
// after the first request was sent and before the fourth was answered;
// so it ends between those two times plus fail_timeout. Requests answered
// before the first bound must avoid the server; of four sent after the
// second (round robin alternates), one must reach it.
func TestUpstreamPassiveHealth(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"status_502", "refused"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			bad, good := newLBServer(t, "bad"), newLBServer(t, "good")
			if mode == "status_502" {
				bad.status.Store(502)
			}
			const failTimeout = 2 * time.Second
			g := startGatehouse(t, lbConfig(lbServers([]*lbServer{bad, good})+`
max_fails = 2
fail_timeout = "2s"
fail_statuses = [502]
retries = 0
`))
			if mode == "refused" {
				bad.stop()
			}
			c := lbClient(g)
			// Round robin alternates: two failures reach "bad" within the
			// first four requests.
			fails := 0
			firstSent := time.Now()
			for i := 0; i < 4; i++ {
				if res := lbDo(c, g, "GET", "/", nil); res.status != 200 {
					fails++
				}
			}
			earliest, latest := firstSent.Add(failTimeout), time.Now().Add(failTimeout)
			if fails != 2 {
				t.Fatalf("%d of the first 4 requests failed, want 2 (max_fails)", fails)
			}
			if v, _ := metricValue(g.metrics(), `gatehouse_upstream_server_up{server="bad",upstream="app"}`); v != "0" && time.Now().Before(earliest) {
				t.Errorf("gatehouse_upstream_server_up for the excluded server = %q within fail_timeout, want 0", v)
			}
			checked := 0
			pace := time.NewTicker(10 * time.Millisecond) // spreads the requests over the window
			defer pace.Stop()
			for {
				res := lbGet(t, c, g, "/")
				if time.Now().After(earliest) {
					break // the exclusion may have ended before this answer
				}
				if res.status != 200 || res.backend != "good" {
					t.Fatalf("within fail_timeout: status %d from %q, want 200 from good", res.status, res.backend)
				}
				checked++
				<-pace.C
			}
			if checked == 0 {
				t.Errorf("no request was answered within fail_timeout: the exclusion was not checked")
			}
			if mode == "refused" {
				bad.start()
			} else {
				bad.status.Store(0)
			}
			lbWait(t, 10*time.Second, "the excluded server available again", func() bool {
				asked := time.Now()
				st := lbAdmin(t, g)["bad"]
				if !st.Available {
					if asked.After(latest) {
						t.Fatalf("excluded server still unavailable after fail_timeout ended: %+v", st)
					}
					return false
				}
				return true
			})
			before := bad.hits.Load()
			for i := 0; i < 4; i++ {
				lbGet(t, c, g, "/")
			}
			if bad.hits.Load() == before {
				t.Errorf("server got no traffic after fail_timeout ended")
			}
		})
	}
}

// TestUpstreamRetries: with policy first (s1 is always tried first), a
// GET answered 502 by s1 is retried once on s2 when fail_statuses has
// 502, and gatehouse_upstream_retries_total counts it; a POST that times
// out waiting for the response head is not retried (504).
func TestUpstreamRetries(t *testing.T) {
	t.Parallel()
	s1, s2 := newLBServer(t, "s1"), newLBServer(t, "s2")
	s1.status.Store(502)
	s1.postDelay, s2.postDelay = 2*time.Second, 2*time.Second
	g := startGatehouse(t, lbConfig(`policy = "first"
`+lbServers([]*lbServer{s1, s2})+`
fail_statuses = [502]
max_fails = 0
retries = 1
response_header_timeout = "400ms"
`))
	c := lbClient(g)
	res := lbGet(t, c, g, "/")
	if res.status != 200 || res.backend != "s2" || s1.hits.Load() != 1 || s2.hits.Load() != 1 {
		t.Fatalf("GET after a 502: status %d from %q, s1 saw %d, s2 saw %d; want 200 from s2 after one try on s1",
			res.status, res.backend, s1.hits.Load(), s2.hits.Load())
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_retries_total{upstream="app"}`); v != "1" {
		t.Errorf("gatehouse_upstream_retries_total = %q after one retry, want 1", v)
	}

	s1.status.Store(0)
	// Neither a bodyless POST nor a small form POST (whose body fits
	// retry_body_limit and is kept) is sent again after a response-head
	// timeout: the backend has the whole request and may be acting on it.
	for _, body := range []string{"", "name=x&amount=10"} {
		s1Before, s2Before := s1.hits.Load(), s2.hits.Load()
		post := lbDoBody(c, g, "POST", "/submit", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body)
		if post.status != 504 {
			t.Errorf("POST (body %q) timing out on s1: status %d, want 504", body, post.status)
		}
		if d1, d2 := s1.hits.Load()-s1Before, s2.hits.Load()-s2Before; d1 != 1 || d2 != 0 {
			t.Errorf("POST (body %q) after a timeout: s1 saw %d, s2 saw %d; want 1 and 0 (not retried)", body, d1, d2)
		}
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_retries_total{upstream="app"}`); v != "1" {
		t.Errorf("gatehouse_upstream_retries_total = %q after POST timeouts, want still 1", v)
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_upstream_errors_total{kind="timeout",upstream="app"}`); v != "2" {
		t.Errorf("gatehouse_upstream_errors_total{kind=timeout} = %q, want 2", v)
	}
}
