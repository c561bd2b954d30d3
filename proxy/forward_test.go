package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clientModes are the values of [upstreams.X] client; the tests of the
// path to the backends run in both.
var clientModes = []string{"gatehouse", "net/http"}

// clientLine is the config line that selects mode.
func clientLine(mode string) string {
	if mode == "gatehouse" {
		return "" // the default
	}
	return "client = \"" + mode + "\"\n"
}

// fwdConfig is a one-site, one-upstream config for the forwarding tests:
// site a.example (access log to stderr), one route to upstream "app" with
// one server at backend and no retries. routeExtra and upstreamExtra are
// extra lines in the route and upstream tables, serverExtra extra fields
// of the server.
func fwdConfig(mode, backend, routeExtra, upstreamExtra, serverExtra string) string {
	return `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
access_log = "stderr"
[[sites.a.routes]]
upstream = "app"
` + routeExtra + `
[upstreams.app]
retries = 0
` + clientLine(mode) + upstreamExtra + `
servers = [{ name = "s", address = "` + backend + `"` + serverExtra + ` }]
`
}

// fwdEdge is an Edge for cfg with its own metrics registry and an access
// log captured in a buffer.
type fwdEdge struct {
	e   *Edge
	rt  *Runtime
	reg *prometheus.Registry
	log *lockedBuffer
	// served is signalled each time ServeHTTP returns (normally or by
	// panic), when the edge is served through serve.
	served chan struct{}
}

func newFwdEdge(t *testing.T, cfg string) *fwdEdge {
	t.Helper()
	f := &fwdEdge{reg: prometheus.NewRegistry(), log: &lockedBuffer{}, served: make(chan struct{}, 16)}
	logs := accesslog.New()
	logs.Stdout, logs.Stderr = f.log, f.log
	f.e, f.rt = startTestEdge(t, cfg, Deps{Metrics: NewMetrics(f.reg, "test"), AccessLogs: logs})
	return f
}

func (f *fwdEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		select {
		case f.served <- struct{}{}:
		default:
		}
	}()
	f.e.ServeHTTP(w, r)
}

// serve runs the edge behind a real net/http server: plain HTTP/1.1, or
// TLS with HTTP/2 when h2. It returns the base URL and a client for it.
func (f *fwdEdge) serve(t *testing.T, h2 bool) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = discardLog()
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	c := srv.Client()
	if h2 {
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	}
	return srv.URL, c
}

// metric returns the sum of the series name{labels...} (0 when there is
// none).
func (f *fwdEdge) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// backendInFlight is the balancer's in-flight count of the only server of
// upstream app (its max_conns slots in use).
func (f *fwdEdge) backendInFlight() int64 {
	return f.rt.Pool("app").Backends()[0].InFlight()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// scriptBackend is a raw TCP backend: each request read on a connection
// is answered with the bytes respond returns, written in one call. When
// the proxy closes a connection, its number is sent on closed.
type scriptBackend struct {
	ln     net.Listener
	conns  atomic.Int32
	reqs   atomic.Int32
	closed chan int
	wg     sync.WaitGroup

	mu   sync.Mutex
	open []net.Conn
}

// scriptReply is what a scriptBackend does with one request: write raw,
// then hang up (hangup), or hold the connection until the proxy closes it
// (hold), or go on reading requests.
type scriptReply struct {
	raw    string
	hangup bool
	hold   bool
}

func newScriptBackend(t *testing.T, respond func(conn, req int, r *http.Request) scriptReply) *scriptBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptBackend{ln: ln, closed: make(chan int, 64)}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(b.conns.Add(1))
			b.mu.Lock()
			b.open = append(b.open, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						if errors.Is(err, io.EOF) || isReset(err) {
							b.closed <- n
						}
						return
					}
					io.Copy(io.Discard, r.Body)
					rep := respond(n, int(b.reqs.Add(1)), r)
					if _, err := io.WriteString(c, rep.raw); err != nil || rep.hangup {
						return
					}
					if rep.hold {
						// Until the proxy closes the connection (or the
						// test ends and closes the listener's conns).
						_, err := io.Copy(io.Discard, br)
						if err == nil || isReset(err) {
							b.closed <- n
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.kill(); b.wg.Wait() })
	return b
}

// kill closes every connection the backend accepted, so that a proxy
// stuck on one (on code with the defect under test) lets go and the test
// can end. Tests that hold connections defer it: deferred calls run
// before the Cleanup that closes the front server, which waits for the
// handler.
func (b *scriptBackend) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.open {
		c.Close()
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

func (b *scriptBackend) addr() string { return b.ln.Addr().String() }

// waitClosed waits until the proxy has closed one of the backend's
// connections, at most limit.
func (b *scriptBackend) waitClosed(t *testing.T, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-b.closed:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("%s: the proxy did not close the backend connection within %v", what, limit)
		return 0
	}
}

// pathReply answers with the request's own path as the body.
func pathReply(r *http.Request) string {
	p := r.URL.Path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(p), p)
}

func fwdGet(t *testing.T, c *http.Client, base, method, path string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a.example"
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestForwardHeaderTimeout504 runs the whole handler: a backend that does
// not answer within response_header_timeout gives 504.
func TestForwardHeaderTimeout504(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
				return scriptReply{hold: true} // reads, never answers
			})
			defer b.kill()
			f := newFwdEdge(t, fwdConfig(mode, b.addr(), `response_header_timeout = "150ms"`+"\n", "", ""))
			rec := httptest.NewRecorder()
			f.e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example/", nil))
			if rec.Code != http.StatusGatewayTimeout {
				t.Fatalf("status %d, want 504", rec.Code)
			}
			if n := f.metric(t, "gatehouse_upstream_errors_total", "upstream", "app", "kind", "timeout"); n != 1 {
				t.Errorf("gatehouse_upstream_errors_total{kind=timeout} = %v, want 1", n)
			}
		})
	}
}

// TestUnsolicitedBytesNotReused (issue 13.1): bytes a backend sends after
// the declared end of a response (after a Content-Length body, after a
// 204, after the head of a HEAD answer) must never be read as the answer
// to the next request on that connection, which may be another client's.
// The connection is closed instead of pooled, and counted.
func TestUnsolicitedBytesNotReused(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nstray"
	for _, mode := range clientModes {
		for _, tc := range []struct {
			name, method, first string
		}{
			{"after-content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + stray},
			{"after-204", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + stray},
			{"after-head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + stray},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
					if r.URL.Path == "/first" {
						return scriptReply{raw: tc.first}
					}
					return scriptReply{raw: pathReply(r)}
				})
				f := newFwdEdge(t, fwdConfig(mode, b.addr(), "", "", ""))
				base, c := f.serve(t, false)
				if _, _, err := fwdGet(t, c, base, tc.method, "/first", nil); err != nil {
					t.Fatalf("first request: %v", err)
				}
				for i, method := range []string{"POST", "GET"} {
					path := fmt.Sprintf("/next%d", i)
					code, body, err := fwdGet(t, c, base, method, path, strings.NewReader("x=1"))
					if err != nil || code != 200 || body != path {
						t.Fatalf("%s %s after the backend sent stray bytes: %d %q %v; want 200 %q (its own answer)", method, path, code, body, err, path)
					}
				}
				if mode == "gatehouse" {
					if n := f.metric(t, "gatehouse_upstream_unsolicited_responses_total", "upstream", "app"); n != 1 {
						t.Errorf("gatehouse_upstream_unsolicited_responses_total = %v, want 1", n)
					}
				}
			})
		}
	}
}

// Test1xxForwarded (issue 13.2): 1xx interim responses (103 Early Hints)
// are forwarded to HTTP/1.1 and HTTP/2 clients with their headers, and
// the final response still arrives in full.
func Test1xxForwarded(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "final")
	}))
	defer backend.Close()
	for _, mode := range clientModes {
		for _, h2 := range []bool{false, true} {
			name := mode + "/http1"
			if h2 {
				name = mode + "/http2"
			}
			t.Run(name, func(t *testing.T) {
				f := newFwdEdge(t, fwdConfig(mode, backend.Listener.Addr().String(), "", "", ""))
				base, c := f.serve(t, h2)
				var got []string
				trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
					return nil
				}}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/", nil)
				req.Host = "a.example"
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "final" {
					t.Fatalf("final response %d %q, want 200 \"final\"", resp.StatusCode, body)
				}
				if h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("served over %s, want h2=%v", resp.Proto, h2)
				}
				want := "103 </app.css>; rel=preload; as=style"
				if len(got) != 1 || got[0] != want {
					t.Fatalf("client saw interim responses %q, want [%q]", got, want)
				}
				if l := resp.Header.Get("Link"); l != "" {
					t.Errorf("the 103's Link header leaked into the final response: %q", l)
				}
			})
		}
	}
}

// TestEarlyHintsThenSlowAnswer (issue 13.2): after a 103 the wait for the
// final response keeps the response header timeout (60 s here); it used to
// fall to the client-context poll tick of 1 s and answer 504. The backend
// takes 1.5 s after its 103: longer than that tick.
func TestEarlyHintsThenSlowAnswer(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		time.Sleep(1500 * time.Millisecond) // a slow view, longer than the old 1 s tick
		io.WriteString(w, "slow but fine")
	}))
	t.Cleanup(backend.Close) // after the parallel subtests
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFwdEdge(t, fwdConfig(mode, backend.Listener.Addr().String(), "", "", ""))
			base, c := f.serve(t, false)
			code, body, err := fwdGet(t, c, base, "GET", "/", nil)
			if err != nil || code != 200 || body != "slow but fine" {
				t.Fatalf("103 then an answer 1.5 s later: %d %q %v; want 200 (header timeout 60 s)", code, body, err)
			}
		})
	}
}

// TestClientGoneEndsBodyRead (issue 13.3): a client that leaves while the
// response body streams ends the proxy's blocked read from a stalled
// backend at once: the backend connection is closed, the max_conns slot
// and the in-flight gauge come back.
func TestClientGoneEndsBodyRead(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
				return scriptReply{raw: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 1000\r\n\r\ndata: 1\n\n", hold: true}
			})
			defer b.kill()
			f := newFwdEdge(t, fwdConfig(mode, b.addr(), "", "", `, max_conns = 1`))
			base, c := f.serve(t, false)
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
			req.Host = "a.example"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || line != "data: 1\n" {
				t.Fatalf("first event %q %v", line, err)
			}
			// The proxy now waits for the rest of the body from a backend
			// that sends nothing more. The client leaves.
			cancel()
			resp.Body.Close()
			b.waitClosed(t, 10*time.Second, "client gone mid-body")
			select {
			case <-f.served:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler did not return after the client left")
			}
			if n := f.backendInFlight(); n != 0 {
				t.Errorf("backend in-flight %d after the client left, want 0 (max_conns slot leaked)", n)
			}
			if g := f.metric(t, "gatehouse_http_requests_in_flight"); g != 0 {
				t.Errorf("gatehouse_http_requests_in_flight = %v, want 0", g)
			}
		})
	}
}

// TestBodyGapTimeout (issue 13.3): a backend that sends part of a body and
// then stalls longer than read_timeout ends the request: the client's
// response is aborted (not taken for a whole one), the backend connection
// closed, the slot freed, and the stall counted.
func TestBodyGapTimeout(t *testing.T) {
	const gap = 300 * time.Millisecond
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
				return scriptReply{raw: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n", hold: true}
			})
			defer b.kill()
			f := newFwdEdge(t, fwdConfig(mode, b.addr(), "", `read_timeout = "300ms"`+"\n", `, max_conns = 1`))
			base, c := f.serve(t, false)
			req, _ := http.NewRequest("GET", base+"/events", nil)
			req.Host = "a.example"
			start := time.Now() // before the proxy's last read of the body, so the stall is at least gap
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := io.ReadAll(resp.Body)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("the stalled response ended as if complete; want it aborted")
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("a body stalled for 10 s was not ended by read_timeout = %v", gap)
			}
			if d := time.Since(start); d < gap {
				t.Fatalf("the response ended after %v, before the %v gap", d, gap)
			}
			resp.Body.Close()
			b.waitClosed(t, 10*time.Second, "stalled body")
			<-f.served
			if n := f.backendInFlight(); n != 0 {
				t.Errorf("backend in-flight %d after the timeout, want 0", n)
			}
			if n := f.metric(t, "gatehouse_upstream_errors_total", "upstream", "app", "kind", "body_timeout"); n != 1 {
				t.Errorf("gatehouse_upstream_errors_total{kind=body_timeout} = %v, want 1", n)
			}
		})
	}
}

// TestBackendDiesMidBody (issue 13.4): a backend that dies mid-body aborts
// the client's response, and the attempt still releases its max_conns
// slot and gauge and writes its access log line and metrics: with
// max_conns = 1 the next request is served, not answered 503.
func TestBackendDiesMidBody(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
				if r.URL.Path == "/dies" {
					return scriptReply{raw: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", hangup: true}
				}
				return scriptReply{raw: pathReply(r)}
			})
			f := newFwdEdge(t, fwdConfig(mode, b.addr(), "", "", `, max_conns = 1`))
			base, c := f.serve(t, false)
			if _, body, err := fwdGet(t, c, base, "GET", "/dies", nil); err == nil {
				t.Fatalf("truncated response read as complete (%q); want the client connection aborted", body)
			}
			<-f.served
			if n := f.backendInFlight(); n != 0 {
				t.Errorf("backend in-flight %d after the aborted response, want 0", n)
			}
			if g := f.metric(t, "gatehouse_http_requests_in_flight"); g != 0 {
				t.Errorf("gatehouse_http_requests_in_flight = %v after the aborted response, want 0", g)
			}
			code, body, err := fwdGet(t, c, base, "GET", "/next", nil)
			if err != nil || code != 200 || body != "/next" {
				t.Fatalf("request after a backend died mid-body: %d %q %v; want 200 (the max_conns slot must come back)", code, body, err)
			}
			<-f.served // the client has the response before ServeHTTP writes its log line
			logLines := f.log.String()
			if !strings.Contains(logLines, `"/dies"`) || !strings.Contains(logLines, `"/next"`) {
				t.Errorf("access log lacks the aborted request's line:\n%s", logLines)
			}
			if n := f.metric(t, "gatehouse_http_requests_total", "route", "/", "code", "2xx"); n != 2 {
				t.Errorf("gatehouse_http_requests_total{code=2xx} = %v, want 2 (the aborted one counted)", n)
			}
			if n := f.metric(t, "gatehouse_upstream_errors_total", "upstream", "app", "kind", "body"); n != 1 {
				t.Errorf("gatehouse_upstream_errors_total{kind=body} = %v, want 1", n)
			}
		})
	}
}

// TestIdleUpstreamConnReaped (issue 13, "Also"): an idle pooled backend
// connection is closed after keepalive_timeout by a timer, without another
// request touching the pool.
func TestIdleUpstreamConnReaped(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
				return scriptReply{raw: pathReply(r)}
			})
			f := newFwdEdge(t, fwdConfig(mode, b.addr(), "", `keepalive_timeout = "200ms"`+"\n", ""))
			base, c := f.serve(t, false)
			if code, _, err := fwdGet(t, c, base, "GET", "/once", nil); err != nil || code != 200 {
				t.Fatalf("GET: %d %v", code, err)
			}
			d := b.waitClosed(t, 10*time.Second, "idle pooled connection with keepalive_timeout 200ms")
			t.Logf("idle connection closed %v after the response", d.Round(time.Millisecond))
		})
	}
}

// TestProxyTrustHeaders (issue 12.11): headers that only a proxy may set
// (Forwarded, X-Forwarded-Port, X-Original-URL, True-Client-IP, ...) are
// removed when they come from a client that is not a trusted proxy, also
// spelled with underscores (which Django and most WSGI/ASGI servers read
// as the same header), and X-Forwarded-Port is the port the client
// connected to. From a trusted proxy they pass, X-Forwarded-Port kept.
func TestProxyTrustHeaders(t *testing.T) {
	spoofed := map[string]string{
		"Forwarded":          "for=6.6.6.6;proto=https",
		"X-Forwarded-Port":   "8443",
		"X-Original-URL":     "/admin/",
		"X-Rewrite-URL":      "/admin/",
		"True-Client-IP":     "6.6.6.6",
		"X-Client-IP":        "6.6.6.6",
		"CF-Connecting-IP":   "6.6.6.6",
		"X-Forwarded-Server": "evil.test",
		"X-Forwarded-Scheme": "https",
		"X-Scheme":           "https",
	}
	underscored := map[string]string{
		"X_Forwarded_For":   "6.6.6.6",
		"X_Forwarded_Proto": "https",
		"X_Real_IP":         "6.6.6.6",
		"X_Forwarded_Port":  "8443",
	}
	var mu sync.Mutex
	var last http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	seen := func() http.Header {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	for _, mode := range clientModes {
		for _, tc := range []struct {
			name        string
			trusted, h2 bool
		}{{"untrusted", false, false}, {"untrusted-h2", false, true}, {"trusted", true, false}} {
			trusted := tc.trusted
			cfg := fwdConfig(mode, backend.Listener.Addr().String(), "", "", "")
			if trusted {
				cfg = "trusted_proxies = [\"127.0.0.1/32\"]\n" + cfg
			}
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				f := newFwdEdge(t, cfg)
				base, c := f.serve(t, tc.h2)
				_, port, _ := net.SplitHostPort(base[strings.Index(base, "://")+3:])
				req, _ := http.NewRequest("GET", base+"/", nil)
				req.Host = "a.example"
				for k, v := range spoofed {
					req.Header.Set(k, v)
				}
				for k, v := range underscored {
					req.Header[k] = []string{v}
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				h := seen()
				for k, v := range spoofed {
					got := h.Values(k)
					switch {
					case k == "X-Forwarded-Port" && !trusted:
						if len(got) != 1 || got[0] != port {
							t.Errorf("X-Forwarded-Port %q, want [%q] (the port the client connected to)", got, port)
						}
					case trusted:
						if len(got) != 1 || got[0] != v {
							t.Errorf("from a trusted proxy %s = %q, want [%q] passed on", k, got, v)
						}
					case len(got) > 0:
						t.Errorf("client-supplied %s: %q reached the backend", k, got)
					}
				}
				for k := range underscored {
					if got, ok := h[textproto.CanonicalMIMEHeaderKey(k)]; ok {
						t.Errorf("client-supplied %s: %q reached the backend (read as %s by Django)", k, got, strings.ReplaceAll(k, "_", "-"))
					}
				}
				if !trusted {
					if got := h.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
						t.Errorf("X-Forwarded-For %q, want [127.0.0.1]", got)
					}
				}
			})
		}
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
