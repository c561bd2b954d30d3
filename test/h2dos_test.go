package test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 denial-of-service attacks of issue 12 (items 1 and 10), through
// the built binary: the attacker is a raw HTTP/2 client built on
// x/net/http2's Framer (it must misbehave, which no real client library
// does); the server side is net/http's own HTTP/2 server inside
// gatehouse.

// h2Attacker is one raw HTTP/2 connection to gatehouse's TLS listener.
// A goroutine reads every frame the server sends (acknowledging SETTINGS
// and PING as a client must) and records stream resets and the
// connection's end.
type h2Attacker struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	wmu  sync.Mutex // guards fr's writes, henc and hbuf
	henc *hpack.Encoder
	hbuf bytes.Buffer
	next uint32 // next stream id

	mu      sync.Mutex
	resets  map[uint32]http2.ErrCode // RST_STREAM from the server, by stream
	heads   map[uint32]bool          // streams whose response HEADERS arrived
	goAway  *http2.GoAwayFrame
	readErr error
	done    chan struct{} // closed when the connection ended (read error)
}

// dialH2Attacker connects, negotiates h2, and sends the preface and a
// SETTINGS frame with settings.
func dialH2Attacker(t *testing.T, addr string, settings ...http2.Setting) *h2Attacker {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, ServerName: "app.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	a := &h2Attacker{t: t, conn: conn, next: 1,
		resets: map[uint32]http2.ErrCode{}, heads: map[uint32]bool{}, done: make(chan struct{})}
	a.fr = http2.NewFramer(conn, conn)
	a.henc = hpack.NewEncoder(&a.hbuf)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	go a.read()
	t.Cleanup(func() {
		conn.Close()
		<-a.done
	})
	return a
}

func (a *h2Attacker) read() {
	defer close(a.done)
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			a.mu.Lock()
			a.readErr = err
			a.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				a.wmu.Lock()
				_ = a.fr.WriteSettingsAck()
				a.wmu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				a.wmu.Lock()
				_ = a.fr.WritePing(true, f.Data)
				a.wmu.Unlock()
			}
		case *http2.RSTStreamFrame:
			a.mu.Lock()
			a.resets[f.StreamID] = f.ErrCode
			a.mu.Unlock()
		case *http2.HeadersFrame:
			a.mu.Lock()
			a.heads[f.StreamID] = true
			a.mu.Unlock()
		case *http2.GoAwayFrame:
			a.mu.Lock()
			a.goAway = f
			a.mu.Unlock()
		}
	}
}

// get opens a stream for GET path (HEADERS with END_STREAM) and returns
// its id; with reset, RST_STREAM(CANCEL) follows at once (rapid reset).
func (a *h2Attacker) get(path string, reset bool) (uint32, error) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	id := a.next
	a.next += 2
	a.hbuf.Reset()
	for _, hf := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.test"}, {":path", path}} {
		if err := a.henc.WriteField(hpack.HeaderField{Name: hf[0], Value: hf[1]}); err != nil {
			return id, err
		}
	}
	err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	if err == nil && reset {
		err = a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	return id, err
}

// resetCount returns how many streams the server reset.
func (a *h2Attacker) resetCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.resets)
}

// ended reports whether the connection has ended (and how).
func (a *h2Attacker) ended() (bool, error) {
	select {
	case <-a.done:
		a.mu.Lock()
		defer a.mu.Unlock()
		return true, a.readErr
	default:
		return false, nil
	}
}

// h2Backend answers every request with size bytes and counts the
// requests it received and the handlers still running. It writes the
// head and the whole body in one write (and closes), as a backend with a
// ready response does: the proxy's first read then holds more than a
// small first chunk of the body, so its first write to the client is a
// large one.
type h2Backend struct {
	addr     string
	hits     atomic.Int64
	inFlight atomic.Int64
}

func newH2Backend(t *testing.T, size int) *h2Backend {
	t.Helper()
	be := &h2Backend{}
	resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(size)+"\r\n\r\n"), bytes.Repeat([]byte("x"), size)...)
	s := newBackend(t, "h2dos", func(w http.ResponseWriter, r *http.Request) {
		be.hits.Add(1)
		be.inFlight.Add(1)
		defer be.inFlight.Add(-1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		_, _ = conn.Write(resp)
	})
	be.addr = s.addr()
	return be
}

// h2Config is a TLS-only gatehouse (self-signed app.test, HTTP/2 on,
// send = "2s") with one upstream "app" whose only server is backendAddr
// with maxConns slots (0: no cap); upstream and limits are extra lines for
// [upstreams.app] and [limits].
func h2Config(backendAddr string, maxConns int, upstream, limits string) string {
	return `
state_dir = "$DIR/state"
grace_period = "5s"

[log]
format = "json"
level = "info"

[listeners.http]
address = ""

[listeners.https]
address = "127.0.0.1:0"

[listeners.admin]
address = "127.0.0.1:0"

[timeouts]
send = "2s"

[limits]
` + limits + `

[sites.app]
hosts = ["app.test"]
tls = "self_signed"
hsts = "off"
access_log = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
` + fmt.Sprintf("servers = [{ name = \"b1\", address = %q, max_conns = %d }]\n", backendAddr, maxConns) + upstream
}

// h2NormalClient is a well-behaved HTTP/2 client connecting from
// 127.0.0.2, so it is another client key than the attacker's 127.0.0.1.
func h2NormalClient(t *testing.T) *http.Client {
	d := abuseDialer("127.0.0.2")
	c := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       d.DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: "app.test"},
			ForceAttemptHTTP2: true,
		},
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// h2Get is a GET of path through c, with how long the answer took; it
// never calls t.Fatal.
func h2Get(c *http.Client, g *gatehouse, path string) (status int, took time.Duration, err error) {
	start := time.Now()
	resp, err := c.Do(mustRequest("GET", "https://"+g.httpsAddr+path, "app.test"))
	if err != nil {
		return 0, time.Since(start), err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, time.Since(start), err
	}
	if resp.ProtoMajor != 2 {
		return resp.StatusCode, time.Since(start), fmt.Errorf("answered over HTTP/%d, want HTTP/2", resp.ProtoMajor)
	}
	return resp.StatusCode, time.Since(start), nil
}

// h2InFlight is the slots held on server b1 (admin GET /upstreams).
func h2InFlight(t *testing.T, g *gatehouse) int64 { return lbAdmin(t, g)["b1"].InFlight }

// TestH2ZeroWindowSendTimeout (issue 12, item 1): streams of a client
// that advertises SETTINGS_INITIAL_WINDOW_SIZE=0 and never sends
// WINDOW_UPDATE hold every max_conns slot of the upstream; the first
// write of each response blocks on flow control. The send timeout must
// bound that first write: at 2 s each stream is reset and gives its slot
// back while the attacker keeps the connection open, so a normal client
// queued behind them is answered within the send timeout plus one
// second. (client_share = 1: the share is TestH2ZeroWindowClientShare's.)
func TestH2ZeroWindowSendTimeout(t *testing.T) {
	t.Parallel()
	be := newH2Backend(t, 100<<10)
	g := startGatehouse(t, h2Config(be.addr, 4, "queue = 1\nqueue_timeout = \"10s\"\nclient_share = 1\n", ""))

	a := dialH2Attacker(t, g.httpsAddr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for i := range 4 {
		if _, err := a.get(fmt.Sprintf("/big/%d", i), false); err != nil {
			t.Fatalf("attack stream %d: %v", i, err)
		}
	}
	lbWait(t, 5*time.Second, "the attack's 4 streams holding all 4 slots", func() bool { return h2InFlight(t, g) == 4 })
	attackHeld := time.Now()

	status, took, err := h2Get(h2NormalClient(t), g, "/normal")
	if err != nil || status != 200 {
		t.Fatalf("normal client behind the zero-window streams: status %d, err %v after %v; want 200", status, err, took)
	}
	if limit := 3 * time.Second; took > limit {
		t.Errorf("normal client answered after %v, want within the send timeout plus one second (%v)", took, limit)
	}
	// The slots came back while the attacker still holds its connection,
	// and each of its streams was reset (not the connection closed).
	lbWait(t, 5*time.Second, "every slot back", func() bool { return h2InFlight(t, g) == 0 })
	if over, err := a.ended(); over {
		t.Errorf("the attacker's connection ended (%v); only its streams should be reset", err)
	}
	lbWait(t, 5*time.Second, "RST_STREAM for the 4 attack streams", func() bool { return a.resetCount() == 4 })
	if held := time.Since(attackHeld); held > 20*time.Second {
		t.Errorf("slots held for %v", held)
	}
	if n := be.hits.Load(); n != 5 {
		t.Errorf("backend saw %d requests, want 5 (4 attack streams, 1 normal)", n)
	}
}

// TestH2ZeroWindowClientShare (issue 12, item 1): the attack with 60
// zero-window streams on one connection against max_conns = 4 takes at
// most the client's share (client_share 0.5 by default: 2 slots); a
// normal client is served at once, every attack stream is reset within a
// few send timeouts, and the slots come back while the attacker still
// holds its connection open.
func TestH2ZeroWindowClientShare(t *testing.T) {
	t.Parallel()
	be := newH2Backend(t, 100<<10)
	g := startGatehouse(t, h2Config(be.addr, 4, "queue = 2\nqueue_timeout = \"10s\"\n", ""))

	a := dialH2Attacker(t, g.httpsAddr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	const streams = 60
	for i := range streams {
		if _, err := a.get(fmt.Sprintf("/big/%d", i), false); err != nil {
			t.Fatalf("attack stream %d: %v", i, err)
		}
	}
	// The share (2 slots) held, 2 more waiting for them, the other 56
	// refused with a 503 the attacker cannot read either.
	lbWait(t, 5*time.Second, "the attack holding its share", func() bool { return be.inFlight.Load() == 0 && h2InFlight(t, g) == 2 })
	// The refusals are in: their pages' heads reached the attacker.
	lbWait(t, 5*time.Second, "56 refused streams answered", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.heads) >= streams-4
	})

	status, took, err := h2Get(h2NormalClient(t), g, "/normal")
	if err != nil || status != 200 {
		t.Fatalf("normal client during the attack: status %d, err %v after %v; want 200", status, err, took)
	}
	if limit := 3 * time.Second; took > limit {
		t.Errorf("normal client answered after %v, want within the send timeout plus one second (%v)", took, limit)
	}
	// The two holders are reset at 2 s, the two waiters then take the
	// slots and are reset 2 s later; the 56 refused pages at 2 s.
	lbWait(t, 15*time.Second, "all 60 attack streams reset", func() bool { return a.resetCount() == streams })
	lbWait(t, 5*time.Second, "every slot back", func() bool { return h2InFlight(t, g) == 0 })
	if over, err := a.ended(); over {
		t.Errorf("the attacker's connection ended (%v); only its streams should be reset", err)
	}
	if n := be.hits.Load(); n != 5 {
		t.Errorf("backend saw %d requests, want 5 (the share twice over, and the normal client)", n)
	}
	if v, _ := metricValue(g.metrics(), `gatehouse_requests_rejected_total{reason="client_share"}`); v != "56" {
		t.Errorf(`gatehouse_requests_rejected_total{reason="client_share"} = %q, want 56`, v)
	}
}

// TestH2RapidReset (issue 12, item 10): one connection sends HEADERS
// immediately followed by RST_STREAM, thousands of times. Gatehouse
// counts the cancelled requests and closes the connection once they
// outnumber its completed ones by limits.http2_max_resets (100); a
// request already cancelled is never sent upstream. Every request that
// reaches the backend is one the connection started and then cancelled,
// or one still running when the connection was closed, so they are
// bounded by the budget plus the requests one connection can run at once
// (http2_max_streams, 128): 228. The server has no max_conns (so no
// client share either): the reset budget alone stands between the attack
// and the backend. A normal client on another connection is served
// during and after the attack.
func TestH2RapidReset(t *testing.T) {
	t.Parallel()
	be := newH2Backend(t, 10)
	g := startGatehouse(t, h2Config(be.addr, 0, "", ""))

	normal := h2NormalClient(t)
	type result struct {
		status int
		err    error
	}
	results := make(chan result, 1000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, _, err := h2Get(normal, g, "/normal")
			select {
			case results <- result{status, err}:
			default:
			}
		}
	}()

	a := dialH2Attacker(t, g.httpsAddr)
	const pairs = 20000
	sent := 0
	var werr error
	for sent < pairs {
		if _, werr = a.get(fmt.Sprintf("/r/%d", sent), true); werr != nil {
			break
		}
		sent++
	}
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection still open 10 s after %d HEADERS+RST_STREAM pairs (write error %v)", sent, werr)
	}
	close(stop)
	wg.Wait()
	close(results)
	_, rerr := a.ended()
	t.Logf("%d pairs sent before the connection ended (%v); %d requests reached the backend", sent, rerr, be.hits.Load())
	const bound = 100 + 128
	if n := be.hits.Load(); n > bound {
		t.Errorf("%d reset requests reached the backend, want at most %d (reset budget + max streams)", n, bound)
	}
	for r := range results {
		if r.err != nil || r.status != 200 {
			t.Errorf("normal client during the attack: status %d, err %v; want 200", r.status, r.err)
		}
	}
	if status, _, err := h2Get(normal, g, "/normal"); err != nil || status != 200 {
		t.Errorf("normal client after the attack: status %d, err %v; want 200", status, err)
	}

	m := g.metrics()
	if v, _ := metricValue(m, `gatehouse_http2_connections_closed_total{listener="https",reason="resets"}`); v != "1" {
		t.Errorf(`gatehouse_http2_connections_closed_total{reason="resets"} = %q, want 1 (the attack's connection)`, v)
	}
	if v, _ := metricValue(m, `gatehouse_http2_resets_total{listener="https"}`); v == "" || v == "0" {
		t.Errorf("gatehouse_http2_resets_total = %q, want the counted resets", v)
	}
	if n := g.countLog("http2 connection closed: too many cancelled requests"); n != 1 {
		t.Errorf("%d log lines about the closed connection, want 1", n)
	}
}

// TestH2SlowStreamNotCut: the send timeout bounds writes, not the waits
// between them. An event stream whose backend is quiet for longer than
// the send timeout (3 s between events, send = "2s") must reach an
// HTTP/2 client whole: net/http's stream write deadline is a timer that
// resets the stream when it fires, write or not, so it must not stay
// armed while the handler waits for the backend.
func TestH2SlowStreamNotCut(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 1; i <= 2; i++ {
			if i > 1 {
				time.Sleep(3 * time.Second) // the backend has nothing to say
			}
			fmt.Fprintf(w, "data: event %d\n\n", i)
			if rc.Flush() != nil {
				return
			}
		}
	})
	g := startGatehouse(t, h2Config(be.addr(), 0, "", ""))
	status, took, err := h2Get(h2NormalClient(t), g, "/events")
	if err != nil || status != 200 {
		t.Fatalf("event stream with a 3 s quiet spell: status %d, err %v after %v; want 200 and both events", status, err, took)
	}
}

// TestH1StalledClientSendTimeout (issue 12, item 1, on HTTP/1): clients
// that request a large response and read nothing hold every max_conns
// slot of the upstream until the send timeout cuts their connections
// (on plaintext kept by the connection itself, no deadline set per
// write; over TLS by the response's own deadlines); then the slots come
// back and a normal client queued behind them is answered.
func TestH1StalledClientSendTimeout(t *testing.T) {
	t.Parallel()
	be := newH2Backend(t, 32<<20)
	cfg := strings.Replace(h2Config(be.addr, 2, "queue = 1\nqueue_timeout = \"10s\"\nclient_share = 1\n", ""),
		"[listeners.http]\naddress = \"\"", "[listeners.http]\naddress = \"127.0.0.1:0\"", 1)
	cfg = strings.Replace(cfg, "hsts = \"off\"", "hsts = \"off\"\nredirect_https = false", 1)
	g := startGatehouse(t, cfg)

	stall := func(useTLS bool) {
		addr := g.httpAddr
		if useTLS {
			addr = g.httpsAddr
		}
		c, err := abuseDialer("127.0.0.1").Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.(*net.TCPConn).SetReadBuffer(4096)
		if useTLS {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "app.test", NextProtos: []string{"http/1.1"}})
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			c = tc
		}
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
	}
	stall(false)
	stall(true)
	lbWait(t, 5*time.Second, "the 2 stalled clients holding both slots", func() bool { return h2InFlight(t, g) == 2 })

	start := time.Now()
	resp, err := abuseClient("127.0.0.2", false).Do(mustRequest("GET", "http://"+g.httpAddr+"/normal", "app.test"))
	if err != nil {
		t.Fatalf("normal client behind the stalled ones: %v after %v", err, time.Since(start))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || n != 32<<20 {
		t.Fatalf("normal client: status %d, %d bytes, %v; want 200 with the 32 MiB body", resp.StatusCode, n, err)
	}
	// Answered once a stalled client's write waited the 2 s send timeout
	// (the first writes fill the socket buffers at once).
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("normal client answered after %v, want within a few seconds of the 2 s send timeout", took)
	}
	lbWait(t, 10*time.Second, "every slot back", func() bool { return h2InFlight(t, g) == 0 })
}
