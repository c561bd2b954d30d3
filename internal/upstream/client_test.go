package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
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

func (plainHead) WriteFields(w FieldWriter) { w.Field("X-Test", []string{"1"}) }

// doer is what the proxy needs of either client.
type doer interface {
	Do(ctx context.Context, req *Request) (*http.Response, error)
	Close()
}

// impls are the two clients, for the tests both must pass.
var impls = []struct {
	name string
	new  func(Options) doer
}{
	{"gatehouse", func(o Options) doer { return New(o) }},
	{"net/http", func(o Options) doer { return NewNetHTTP(o) }},
}

func testOptions(keepalive int) Options {
	return Options{ConnectTimeout: time.Second, MaxIdle: keepalive, IdleTimeout: time.Minute}
}

func testClient(keepalive int) *Client { return New(testOptions(keepalive)) }

// get does one request and returns the status and body (the response
// itself is only valid until its body is closed).
func get(c doer, addr, method string) (int, string, error) {
	resp, err := c.Do(context.Background(), &Request{Addr: addr, Method: method, Target: "/x",
		Host: "app.test", Header: plainHead{}, HeaderTimeout: 2 * time.Second, Replayable: true})
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	code := resp.StatusCode
	resp.Body.Close()
	return code, string(body), err
}

const ok2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestClientReuse: sequential requests share one pooled connection, and
// the request head is what the backend should see.
func TestClientReuse(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
			c := impl.new(testOptions(4))
			defer c.Close()
			for i := 0; i < 5; i++ {
				code, body, err := get(c, b.addr(), "GET")
				if err != nil || code != 200 || body != "ok" {
					t.Fatalf("request %d: %d %v %q", i, code, err, body)
				}
			}
			if n := b.accepted.Load(); n != 1 {
				t.Fatalf("%d connections for 5 sequential requests, want 1", n)
			}
			r, _ := b.request(0)
			if r.Host != "app.test" || r.RequestURI != "/x" || r.Header.Get("X-Test") != "1" || r.ProtoMinor != 1 {
				t.Fatalf("backend saw %s %s Host %q X-Test %q", r.Method, r.RequestURI, r.Host, r.Header.Get("X-Test"))
			}
			if _, ok := r.Header["Content-Length"]; ok {
				t.Fatalf("GET without body sent Content-Length")
			}
			if ua, ok := r.Header["User-Agent"]; ok {
				t.Fatalf("a User-Agent the caller did not set was sent: %q", ua)
			}
		})
	}
}

// TestClientKeepaliveZero: keepalive = 0 sends Connection: close and
// pools nothing.
func TestClientKeepaliveZero(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
			c := impl.new(testOptions(0))
			defer c.Close()
			for i := 0; i < 2; i++ {
				if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
					t.Fatal(err, body)
				}
			}
			r, _ := b.request(0)
			if !r.Close || b.accepted.Load() != 2 {
				t.Fatalf("close %v, %d conns; want Connection: close, 2", r.Close, b.accepted.Load())
			}
		})
	}
}

// TestClientStaleRetry: a pooled connection the backend closed while
// idle is not used: a replayable request and a request with a one-shot
// body both go on a new connection, sent once.
func TestClientStaleRetry(t *testing.T) {
	// Answers, then closes without saying so: the pooled conn is stale.
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, true })
	c := testClient(4)
	defer c.Close()
	for i := 0; i < 3; i++ {
		if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
			t.Fatalf("GET %d on a stale pooled conn: %v %q, want it replaced by a fresh one", i, err, body)
		}
		waitFIN(t, c, b.addr())
	}
	resp, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: "POST", Target: "/",
		Host: "a", Header: plainHead{}, Body: strings.NewReader("abc"), ContentLength: 3})
	if err != nil {
		t.Fatalf("POST with a one-shot body after the pooled conn was closed: %v", err)
	}
	resp.Body.Close()
	if n := b.accepted.Load(); n != 4 {
		t.Fatalf("%d connections, want 4", n)
	}
	if r, body := b.request(3); r.Method != "POST" || body != "abc" {
		t.Fatalf("backend got %s %q, want the POST once", r.Method, body)
	}
}

// waitFIN waits until the backend's close of the idle connection to addr
// has reached the client's socket.
func waitFIN(t *testing.T, c *Client, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		list := c.idle[addr]
		st := idleOK
		if len(list) == 1 {
			st = peekIdle(list[0].conn)
		}
		c.mu.Unlock()
		if st != idleOK {
			return
		}
	}
	t.Fatal("the backend's close did not arrive in 5 s")
}

// TestClientBodies: each framing is read exactly, and only exact ends
// return the connection to the pool.
func TestClientBodies(t *testing.T) {
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
		{"duplicate-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "ok", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closeAfter := !tc.reused
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return tc.resp, closeAfter })
			c := testClient(4)
			defer c.Close()
			resp, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: tc.method,
				Target: "/", Host: "a", Header: plainHead{}, HeaderTimeout: 2 * time.Second})
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
			if cl := resp.Header["Content-Length"]; len(cl) > 1 {
				t.Fatalf("Content-Length %q: duplicates must be merged", cl)
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

// TestClientEarlyClose: closing a body before its end closes the
// connection (it would desynchronise the next exchange), unless the rest
// is already buffered.
func TestClientEarlyClose(t *testing.T) {
	big := strings.Repeat("x", 256<<10)
	b := newRawBackend(t, func(n int, r *http.Request) (string, bool) {
		if r.URL.Path == "/big" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 262144\r\n\r\n" + big, false
		}
		return ok2, false
	})
	c := testClient(4)
	defer c.Close()
	resp, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: "GET", Target: "/big", Host: "a", Header: plainHead{}})
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	resp.Body.Read(one[:])
	resp.Body.Close()
	if n := c.idleCount(b.addr()); n != 0 {
		t.Fatalf("a half-read body left its connection in the pool")
	}
	resp, err = c.Do(context.Background(), &Request{Addr: b.addr(), Method: "GET", Target: "/", Host: "a", Header: plainHead{}})
	if err != nil {
		t.Fatal(err)
	}
	// The 2 body bytes came with the head (one write by the backend).
	resp.Body.Close()
	if n := c.idleCount(b.addr()); n != 1 {
		t.Fatalf("unread but buffered body: %d idle, want 1", n)
	}
}

// TestClientFraming: responses a proxy could be desynchronised by are
// refused.
func TestClientFraming(t *testing.T) {
	for name, resp := range map[string]string{
		"cl-and-te":        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"conflicting-cl":   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"cl-list":          "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
		"cl-leading-zero":  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc",
		"bad-cl":           "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"te-gzip":          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"folded":           "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
		"space-colon":      "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
		"status":           "HTTP/1.1 2000 OK\r\n\r\n",
		"http2":            "HTTP/2 200 OK\r\n\r\n",
		"101":              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"1xx-bad-cl":       "HTTP/1.1 103 Early Hints\r\nContent-Length: x\r\n\r\n" + ok2,
		"trailer-bare-lf":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\n",
		"too-many-interim": strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", max1xx+1) + ok2,
	} {
		t.Run(name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return resp, true })
			c := testClient(4)
			defer c.Close()
			_, _, err := get(c, b.addr(), "GET")
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want an upstream protocol error", err)
			}
		})
	}
}

// TestClientHeaderTimeout: no response head within the timeout is
// ErrHeaderTimeout; a refused connection is a *DialError.
func TestClientHeaderTimeout(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
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
			c := impl.new(testOptions(4))
			defer c.Close()
			_, err = c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: "GET", Target: "/",
				Host: "a", Header: plainHead{}, HeaderTimeout: 100 * time.Millisecond})
			if err != ErrHeaderTimeout || !isTimeout(err) {
				t.Fatalf("err %v, want ErrHeaderTimeout (a timeout)", err)
			}
			c.Close()
			ln.Close()
			<-done

			_, err = c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: "GET", Target: "/", Host: "a", Header: plainHead{}})
			var de *DialError
			if !errors.As(err, &de) {
				t.Fatalf("closed port: %v, want a *DialError", err)
			}
		})
	}
}

// TestClientCancelWaitingForHead: a client that goes away stops the wait
// for the backend's head at once, with ErrCanceled.
func TestClientCancelWaitingForHead(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan struct{})
			go func() {
				c, err := ln.Accept()
				if err == nil {
					http.ReadRequest(bufio.NewReader(c))
					close(got)
					io.Copy(io.Discard, c)
					c.Close()
				}
			}()
			c := impl.new(testOptions(4))
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { <-got; cancel() }()
			_, err = c.Do(ctx, &Request{Addr: ln.Addr().String(), Method: "GET", Target: "/", Host: "a", Header: plainHead{}})
			if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want ErrCanceled", err)
			}
		})
	}
}

// TestClientRequestBodies: declared-length bodies go with Content-Length,
// unknown-length ones chunked with their trailers; a body shorter than
// declared is a *BodyError.
func TestClientRequestBodies(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, false })
			c := impl.new(testOptions(4))
			defer c.Close()
			send := func(body io.Reader, n int64, tr http.Header) {
				t.Helper()
				resp, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: "POST", Target: "/",
					Host: "a", Header: plainHead{}, Body: body, ContentLength: n, Trailer: tr})
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
			_, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: "POST", Target: "/",
				Host: "a", Header: plainHead{}, Body: &failingBody{}, ContentLength: 5})
			var be *BodyError
			if !errors.As(err, &be) {
				t.Fatalf("failing body: %v, want a *BodyError", err)
			}
		})
	}
}

// failingBody fails after two bytes, as a client that resets mid-upload.
type failingBody struct{ n int }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.n > 0 {
		return 0, errors.New("client reset")
	}
	b.n = 2
	return copy(p, "ab"), nil
}

// TestClientPooledTimeout: on a pooled connection the header timeout
// still ends the wait.
func TestClientPooledTimeout(t *testing.T) {
	hold := make(chan struct{})
	b := newRawBackend(t, func(n int, r *http.Request) (string, bool) {
		if n == 2 {
			<-hold
		}
		return ok2, false
	})
	defer close(hold)
	c := testClient(4)
	defer c.Close()
	if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
		t.Fatalf("first: %v %q", err, body)
	}
	_, err := c.Do(context.Background(), &Request{Addr: b.addr(), Method: "GET", Target: "/", Host: "a",
		Header: plainHead{}, HeaderTimeout: 100 * time.Millisecond})
	if err != ErrHeaderTimeout {
		t.Fatalf("pooled conn, no answer: %v, want ErrHeaderTimeout", err)
	}
	if b.accepted.Load() != 1 {
		t.Fatalf("%d connections, want the pooled one reused", b.accepted.Load())
	}
}

// TestClientDroppedNewConn: a new connection the backend drops before
// answering (a server shutting down resets its accept queue) is retried
// once for a GET, never for a POST.
func TestClientDroppedNewConn(t *testing.T) {
	// Odd connections: dropped after the request.
	ln, accepted, stop := droppingServer(t, func(n int32) bool { return n%2 == 0 })
	c := testClient(4)
	defer c.Close()
	if code, body, err := get(c, ln.Addr().String(), "GET"); err != nil || code != 200 || body != "ok" {
		t.Fatalf("GET: %d %q %v, want retried once on a new connection", code, body, err)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	_, err := c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: "POST", Target: "/",
		Host: "a", Header: plainHead{}, Body: strings.NewReader("x"), ContentLength: 1, Replayable: true})
	if err == nil || accepted.Load() != 3 {
		t.Fatalf("POST on a dropped connection: err %v after %d connections; want an error, not sent twice", err, accepted.Load())
	}
	stop()
}

// droppingServer accepts connections, reads a request from each and
// answers 200 on the n-th connection (from 1) when answer(n), else closes
// it unanswered. stop closes the listener and waits for the loop.
func droppingServer(t *testing.T, answer func(n int32) bool) (ln net.Listener, accepted *atomic.Int32, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
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
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil && answer(n) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			}
			c.Close()
		}
	}()
	stop = sync.OnceFunc(func() { ln.Close(); wg.Wait() })
	t.Cleanup(stop)
	return ln, accepted, stop
}

// TestClientDroppedTwice: a server that drops every connection after
// reading the request: a GET is sent twice (the second time on a new
// connection) and fails with ErrNoResponse, which tells the caller it may
// try another server; a POST is sent once and its error is not
// ErrNoResponse.
func TestClientDroppedTwice(t *testing.T) {
	ln, accepted, stop := droppingServer(t, func(int32) bool { return false })
	c := testClient(4)
	defer c.Close()
	_, err := c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: "GET", Target: "/", Host: "a", Header: plainHead{}})
	if !errors.Is(err, ErrNoResponse) || accepted.Load() != 2 {
		t.Fatalf("GET to a server dropping every connection: %v after %d connections; want ErrNoResponse after 2", err, accepted.Load())
	}
	_, err = c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: "POST", Target: "/",
		Host: "a", Header: plainHead{}, Body: strings.NewReader("x"), ContentLength: 1, Replayable: true})
	if err == nil || errors.Is(err, ErrNoResponse) || accepted.Load() != 3 {
		t.Fatalf("POST: %v after %d connections; want an error other than ErrNoResponse, sent once", err, accepted.Load())
	}
	stop()
}
