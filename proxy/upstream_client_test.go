package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend is a loopback backend that reads requests with
// http.ReadRequest and answers each with what respond returns (raw bytes);
// close after the answer when respond says so.
type rawBackend struct {
	ln       net.Listener
	accepted atomic.Int32
	mu       sync.Mutex
	reqs     []*http.Request
	bodies   []string
	wg       sync.WaitGroup
}

func newRawBackend(t *testing.T, respond func(n int, r *http.Request) (resp string, closeAfter bool)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	var n atomic.Int32
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(r.Body)
					b.mu.Lock()
					b.reqs = append(b.reqs, r)
					b.bodies = append(b.bodies, string(body))
					b.mu.Unlock()
					resp, closeAfter := respond(int(n.Add(1)), r)
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

func (b *rawBackend) request(i int) (*http.Request, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reqs[i], b.bodies[i]
}

// plainHead writes one fixed header line.
type plainHead struct{}

func (plainHead) writeHeaders(w *bufio.Writer) { w.WriteString("X-Test: 1\r\n") }

func testClient(keepalive int) *upstreamClient {
	return newUpstreamClient(time.Second, keepalive, time.Minute, time.Now)
}

// get does one request and returns the status and body (the response
// itself is only valid until its body is closed).
func get(c *upstreamClient, addr, method string) (int, string, error) {
	resp, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: addr, method: method, uri: "/x",
		host: "app.test", head: plainHead{}, headerTimeout: 2 * time.Second, replayable: true})
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	code := resp.StatusCode
	resp.Body.Close()
	return code, string(body), err
}

const ok2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestUpstreamClientReuse: sequential requests share one pooled
// connection, and the request head is what the backend should see.
func TestUpstreamClientReuse(t *testing.T) {
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
	c := testClient(4)
	defer c.closeIdle(true)
	for i := 0; i < 5; i++ {
		code, body, err := get(c, b.addr(), "GET")
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %v %q", i, code, err, body)
		}
	}
	if n := b.accepted.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests, want 1", n)
	}
	if n := c.idleCount(b.addr()); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	r, _ := b.request(0)
	if r.Host != "app.test" || r.RequestURI != "/x" || r.Header.Get("X-Test") != "1" || r.ProtoMinor != 1 {
		t.Fatalf("backend saw %s %s Host %q X-Test %q", r.Method, r.RequestURI, r.Host, r.Header.Get("X-Test"))
	}
	if _, ok := r.Header["Content-Length"]; ok {
		t.Fatalf("GET without body sent Content-Length")
	}
}

// TestUpstreamClientKeepaliveZero: keepalive = 0 sends Connection: close
// and pools nothing.
func TestUpstreamClientKeepaliveZero(t *testing.T) {
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
	c := testClient(0)
	for i := 0; i < 2; i++ {
		if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
			t.Fatal(err, body)
		}
	}
	r, _ := b.request(0)
	if !r.Close || b.accepted.Load() != 2 || c.idleCount(b.addr()) != 0 {
		t.Fatalf("close %v, %d conns, %d idle; want Connection: close, 2, 0", r.Close, b.accepted.Load(), c.idleCount(b.addr()))
	}
}

// TestUpstreamClientStaleRetry: a pooled connection the backend closed
// while idle is retried once on a fresh one for a replayable request, and
// not for a request whose body cannot be sent again.
func TestUpstreamClientStaleRetry(t *testing.T) {
	// Answers, then closes without saying so: the pooled conn is stale.
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, true })
	c := testClient(4)
	defer c.closeIdle(true)
	for i := 0; i < 3; i++ {
		if i > 0 {
			waitFor(t, func() bool { return b.accepted.Load() == int32(i) })
			time.Sleep(20 * time.Millisecond) // let the FIN arrive
		}
		if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
			t.Fatalf("GET %d on a stale pooled conn: %v %q, want retried on a fresh one", i, err, body)
		}
	}
	waitFor(t, func() bool { return b.accepted.Load() == 3 })
	time.Sleep(20 * time.Millisecond)
	// A streamed body (not replayable) cannot be retried: the pooled
	// connection is probed first and, closed, replaced before anything is
	// sent.
	resp, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: "POST", uri: "/",
		host: "a", head: plainHead{}, body: strings.NewReader("abc"), contentLength: 3})
	if err != nil {
		t.Fatalf("POST with a one-shot body after the pooled conn was closed: %v", err)
	}
	resp.Body.Close()
	if n := b.accepted.Load(); n != 4 {
		t.Fatalf("%d connections, want 4 (the dead pooled one replaced)", n)
	}
	if r, body := b.request(3); r.Method != "POST" || body != "abc" {
		t.Fatalf("backend got %s %q, want the POST once", r.Method, body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not met in 1s")
}

// TestUpstreamClientBodies: each framing is read exactly, and only exact
// ends return the connection to the pool.
func TestUpstreamClientBodies(t *testing.T) {
	for _, tc := range []struct {
		name, method, resp, body string
		reused                   bool
		trailer                  string
	}{
		{"content-length", "GET", ok2, "ok", true, ""},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\nX-Sum: 5\r\n\r\n", "hello", true, "5"},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\n\r\nuntil close", "until close", false, ""},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", true, ""},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", true, ""},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "", true, ""},
		{"100-continue", "GET", "HTTP/1.1 100 Continue\r\n\r\n" + ok2, "ok", true, ""},
		{"connection-close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", false, ""},
		{"http10", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closeAfter := !tc.reused
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return tc.resp, closeAfter })
			c := testClient(4)
			defer c.closeIdle(true)
			resp, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: tc.method,
				uri: "/", host: "a", head: plainHead{}, headerTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != tc.body {
				t.Fatalf("body %q, %v; want %q", body, err, tc.body)
			}
			if tc.trailer != "" && resp.Trailer.Get("X-Sum") != tc.trailer {
				t.Fatalf("trailer %v, want X-Sum %s", resp.Trailer, tc.trailer)
			}
			if _, ok := resp.Header["Transfer-Encoding"]; ok {
				t.Fatalf("Transfer-Encoding left in the header map")
			}
			resp.Body.Close()
			want := 0
			if tc.reused {
				want = 1
			}
			if n := c.idleCount(b.addr()); n != want {
				t.Fatalf("%d idle connections after the body, want %d", n, want)
			}
		})
	}
}

// TestUpstreamClientEarlyClose: closing a body before its end closes the
// connection (it would desynchronise the next exchange), unless the rest
// is already buffered.
func TestUpstreamClientEarlyClose(t *testing.T) {
	big := strings.Repeat("x", 256<<10)
	b := newRawBackend(t, func(n int, r *http.Request) (string, bool) {
		if r.URL.Path == "/big" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 262144\r\n\r\n" + big, false
		}
		return ok2, false
	})
	c := testClient(4)
	defer c.closeIdle(true)
	resp, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: "GET", uri: "/big", host: "a", head: plainHead{}})
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	resp.Body.Read(one[:])
	resp.Body.Close()
	if n := c.idleCount(b.addr()); n != 0 {
		t.Fatalf("a half-read body left its connection in the pool")
	}
	resp, err = c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: "GET", uri: "/", host: "a", head: plainHead{}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the 2 bytes are in the buffer
	resp.Body.Close()
	if n := c.idleCount(b.addr()); n != 1 {
		t.Fatalf("unread but buffered body: %d idle, want 1", n)
	}
}

// TestUpstreamClientFraming: responses a proxy could be desynchronised by
// are refused.
func TestUpstreamClientFraming(t *testing.T) {
	for name, resp := range map[string]string{
		"cl-and-te":      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"conflicting-cl": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"bad-cl":         "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"te-gzip":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"folded":         "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
		"space-colon":    "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
		"status":         "HTTP/1.1 2000 OK\r\n\r\n",
		"http2":          "HTTP/2 200 OK\r\n\r\n",
		"101":            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return resp, true })
			c := testClient(4)
			defer c.closeIdle(true)
			_, _, err := get(c, b.addr(), "GET")
			var pe *upstreamProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want an upstream protocol error", err)
			}
			if k := classify(context.Background(), err); k != errProtocol || k.status(err) != http.StatusBadGateway {
				t.Fatalf("classified %v, want protocol → 502", k)
			}
		})
	}
}

// TestUpstreamClientHeaderTimeout: no response head within the timeout is
// a timeout (504); a refused connection is a *DialError (retryable).
func TestUpstreamClientHeaderTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c) // reads, never answers
			c.Close()
		}
	}()
	c := testClient(4)
	defer c.closeIdle(true)
	start := time.Now()
	_, err = c.roundTrip(&upRequest{ctx: context.Background(), addr: ln.Addr().String(), method: "GET", uri: "/",
		host: "a", head: plainHead{}, headerTimeout: 100 * time.Millisecond})
	if k := classify(context.Background(), err); k != errTimeout || k.status(err) != http.StatusGatewayTimeout {
		t.Fatalf("err %v classified %v, want timeout → 504", err, k)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	ln.Close()
	<-done

	_, err = c.roundTrip(&upRequest{ctx: context.Background(), addr: ln.Addr().String(), method: "GET", uri: "/", host: "a", head: plainHead{}})
	var de *DialError
	if !errors.As(err, &de) || classify(context.Background(), err) != errDial {
		t.Fatalf("closed port: %v, want a *DialError", err)
	}
}

// TestUpstreamClientCancel: a client that goes away stops the wait for
// the backend, classified as client gone (499), not a backend failure.
func TestUpstreamClientCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c := testClient(4)
	defer c.closeIdle(true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.roundTrip(&upRequest{ctx: ctx, addr: ln.Addr().String(), method: "GET", uri: "/", host: "a", head: plainHead{}})
	if k := classify(ctx, err); k != errClientGone {
		t.Fatalf("err %v classified %v, want client_gone", err, k)
	}
}

// TestUpstreamClientRequestBodies: declared-length bodies go with
// Content-Length, unknown-length ones chunked with their trailers.
func TestUpstreamClientRequestBodies(t *testing.T) {
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
	c := testClient(4)
	defer c.closeIdle(true)
	send := func(body io.Reader, n int64, tr http.Header) {
		t.Helper()
		resp, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: "POST", uri: "/",
			host: "a", head: plainHead{}, body: body, contentLength: n, trailer: tr})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(strings.NewReader("hello"), 5, nil)
	send(io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), -1, http.Header{"X-Check": {"7"}})
	r, body := b.request(0)
	if r.ContentLength != 5 || body != "hello" {
		t.Fatalf("fixed body: length %d body %q", r.ContentLength, body)
	}
	r, body = b.request(1)
	if len(r.TransferEncoding) != 1 || body != "abcdef" || r.Trailer.Get("X-Check") != "7" {
		t.Fatalf("chunked body: TE %v body %q trailer %v", r.TransferEncoding, body, r.Trailer)
	}
	// A body shorter than declared is the client's fault, not the backend's.
	_, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b.addr(), method: "POST", uri: "/",
		host: "a", head: plainHead{}, body: strings.NewReader("ab"), contentLength: 5})
	var be *bodyError
	if !errors.As(err, &be) {
		t.Fatalf("short body: %v, want a body error", err)
	}
}

// TestForwardHeaderTimeout504 runs the whole handler: a backend that does
// not answer within response_header_timeout gives 504, a refused one 502.
func TestForwardHeaderTimeout504(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	conns.Add(1)
	go func() {
		defer conns.Done()
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	e := newTestEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
response_header_timeout = "150ms"
[upstreams.app]
retries = 0
servers = [{ name = "s", address = "`+ln.Addr().String()+`" }]
`)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example/", nil))
	if rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", rec.Code)
	}
	ln.Close()
	conns.Wait()
}

// TestUpstreamClientPooledTimeout: on a pooled connection (where the
// first read waits for readability without a system call) the header
// timeout and the context still end the wait, and a later answer is read.
func TestUpstreamClientPooledTimeout(t *testing.T) {
	c := testClient(4)
	defer c.closeIdle(true)
	hold := make(chan struct{})
	b2 := newRawBackend(t, func(n int, r *http.Request) (string, bool) {
		if n == 2 {
			<-hold
		}
		return ok2, false
	})
	defer close(hold)
	if _, body, err := get(c, b2.addr(), "GET"); err != nil || body != "ok" {
		t.Fatalf("first: %v %q", err, body)
	}
	_, err := c.roundTrip(&upRequest{ctx: context.Background(), addr: b2.addr(), method: "GET", uri: "/", host: "a",
		head: plainHead{}, headerTimeout: 100 * time.Millisecond})
	if k := classify(context.Background(), err); k != errTimeout {
		t.Fatalf("pooled conn, no answer: %v classified %v, want timeout", err, k)
	}
	if b2.accepted.Load() != 1 {
		t.Fatalf("%d connections, want the pooled one reused", b2.accepted.Load())
	}
}

// TestUpstreamClientDroppedNewConn: a new connection the backend drops
// before answering (a server shutting down resets its accept queue) is
// retried once for a GET, never for a POST.
func TestUpstreamClientDroppedNewConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err == nil && n%2 == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			}
			c.Close() // odd connections: dropped after the request
		}
	}()
	c := testClient(4)
	defer c.closeIdle(true)
	if code, body, err := get(c, ln.Addr().String(), "GET"); err != nil || code != 200 || body != "ok" {
		t.Fatalf("GET: %d %q %v, want retried once on a new connection", code, body, err)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	_, err = c.roundTrip(&upRequest{ctx: context.Background(), addr: ln.Addr().String(), method: "POST", uri: "/",
		host: "a", head: plainHead{}, body: strings.NewReader("x"), contentLength: 1, replayable: true})
	if err == nil || accepted.Load() != 3 {
		t.Fatalf("POST on a dropped connection: err %v after %d connections; want an error, not sent twice", err, accepted.Load())
	}
	ln.Close()
	wg.Wait()
}
