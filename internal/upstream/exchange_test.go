package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeBackend dials in-memory connections (net.Pipe, which honours
// deadlines, so it runs in a synctest bubble) whose backend end is served
// by serve on its own goroutine. wait waits for those goroutines: a
// synctest bubble must not end while one sleeps.
func pipeBackend(serve func(c net.Conn, br *bufio.Reader)) (dial func(context.Context, string) (net.Conn, error), wait func()) {
	var wg sync.WaitGroup
	dial = func(context.Context, string) (net.Conn, error) {
		client, backend := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer backend.Close()
			serve(backend, bufio.NewReader(backend))
		}()
		return client, nil
	}
	return dial, wg.Wait
}

type interimLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *interimLog) Interim(code int, h http.Header) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%d %s", code, h.Get("Link")))
	return nil
}

func (l *interimLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestInterimKeepsHeaderTimeout (issue 13.2): after a 103 the wait for the
// final response keeps the header timeout, counted from the end of the
// request: an answer 30 s after the 103 within a 60 s timeout is read, one
// at 61 s is a timeout (a 1xx does not restart the clock). The 103 is
// handed to Request.Interim with its header.
func TestInterimKeepsHeaderTimeout(t *testing.T) {
	for _, impl := range impls {
		for _, tc := range []struct {
			name  string
			after time.Duration // from the 103 to the final answer
			ok    bool
		}{{"answer-in-time", 30 * time.Second, true}, {"answer-late", 61 * time.Second, false}} {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					dial, wait := pipeBackend(func(c net.Conn, br *bufio.Reader) {
						if _, err := http.ReadRequest(br); err != nil {
							return
						}
						io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
						time.Sleep(tc.after)
						io.WriteString(c, ok2)
						io.Copy(io.Discard, br)
					})
					defer wait()
					o := testOptions(4)
					o.Dial = dial
					c := impl.new(o)
					defer c.Close()
					rec := &interimLog{}
					start := time.Now()
					resp, err := c.Do(context.Background(), &Request{Addr: "b:80", Method: "GET", Target: "/", Host: "a",
						HeaderTimeout: 60 * time.Second, Interim: rec})
					if got := rec.get(); len(got) != 1 || got[0] != "103 </a.css>; rel=preload" {
						t.Errorf("interim responses %q, want the 103 with its Link", got)
					}
					if !tc.ok {
						if err != ErrHeaderTimeout {
							t.Fatalf("final answer %v after the 103: err %v, want ErrHeaderTimeout", tc.after, err)
						}
						if d := time.Since(start); d != 60*time.Second {
							t.Fatalf("timed out after %v, want the header timeout (60s) from the request", d)
						}
						return
					}
					if err != nil {
						t.Fatalf("final answer %v after a 103, header timeout 60s: %v", tc.after, err)
					}
					code := resp.StatusCode // the response lives in the connection until Close
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if code != 200 || string(body) != "ok" {
						t.Fatalf("got %d %q", code, body)
					}
				})
			})
		}
	}
}

// TestBodyTimeout (issue 13.3): a response body read waits at most
// BodyTimeout for the next bytes; a body that keeps moving within the gap
// is not cut however long it lasts.
func TestBodyTimeout(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dial, wait := pipeBackend(func(c net.Conn, br *bufio.Reader) {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
					for i := 0; i < 5; i++ {
						io.WriteString(c, "1\r\na\r\n")
						time.Sleep(9 * time.Second) // under the 10 s gap
					}
					io.Copy(io.Discard, br) // then stalls until closed
				})
				defer wait()
				o := testOptions(4)
				o.Dial = dial
				c := impl.new(o)
				defer c.Close()
				resp, err := c.Do(context.Background(), &Request{Addr: "b:80", Method: "GET", Target: "/", Host: "a",
					HeaderTimeout: time.Minute, BodyTimeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				var got []byte
				buf := make([]byte, 64)
				var last time.Time
				for {
					n, err := resp.Body.Read(buf)
					got = append(got, buf[:n]...)
					if n > 0 {
						last = time.Now()
					}
					if err != nil {
						if err != ErrBodyTimeout || !isTimeout(err) {
							t.Fatalf("body ended with %v, want ErrBodyTimeout", err)
						}
						break
					}
				}
				resp.Body.Close()
				if string(got) != "aaaaa" {
					t.Fatalf("body %q before the stall, want aaaaa (gaps of 9 s under a 10 s limit)", got)
				}
				if gap := time.Since(last); gap != 10*time.Second {
					t.Fatalf("the stall ended after %v, want the 10 s body timeout (the body began %v ago)", gap, time.Since(start))
				}
			})
		})
	}
}

// TestCancelMidBody (issue 13.3): cancelling the request's context while
// a body read waits for a backend that sends nothing more ends the read at
// once with ErrCanceled, and closes the connection.
func TestCancelMidBody(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			closed := make(chan struct{})
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
				io.Copy(io.Discard, br) // holds until the client closes
				close(closed)
			}()
			c := impl.new(testOptions(4))
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp, err := c.Do(ctx, &Request{Addr: ln.Addr().String(), Method: "GET", Target: "/", Host: "a"})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 7)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			readErr := make(chan error, 1)
			go func() {
				_, err := resp.Body.Read(buf)
				readErr <- err
			}()
			cancel()
			select {
			case err := <-readErr:
				if !errors.Is(err, ErrCanceled) {
					t.Fatalf("blocked read ended with %v, want ErrCanceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a body read blocked on a stalled backend did not end when the context was cancelled")
			}
			resp.Body.Close()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the backend connection was not closed after the cancel")
			}
		})
	}
}

// TestUnsolicitedBytes (issue 13.1): bytes the backend sends after a
// response's end — in the same write as the response, after a 204, or
// later while the connection is idle — are never read as the next
// request's answer: the connection is closed (and counted) instead of
// reused.
func TestUnsolicitedBytes(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"
	for _, impl := range impls {
		for _, tc := range []struct {
			name, first string
			later       bool // stray bytes sent once the connection is idle
		}{
			{"after-content-length", ok2 + stray, false},
			{"after-204", "HTTP/1.1 204 No Content\r\n\r\n" + stray, false},
			{"while-idle", ok2, true},
		} {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) {
				if tc.later && impl.name != "gatehouse" {
					t.Skip("http.Transport's own read loop handles bytes on an idle connection; nothing to wait on here")
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				sendStray := make(chan struct{})
				strayed := make(chan struct{})
				var wg sync.WaitGroup
				defer wg.Wait()
				defer ln.Close()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						wg.Add(1)
						go func(first bool) {
							defer wg.Done()
							defer c.Close()
							br := bufio.NewReader(c)
							for {
								r, err := http.ReadRequest(br)
								if err != nil {
									return
								}
								if first {
									first = false
									io.WriteString(c, tc.first)
									if tc.later {
										<-sendStray
										io.WriteString(c, stray)
										close(strayed)
									}
									continue
								}
								fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
							}
						}(n == 0)
					}
				}()
				var count atomic.Int32
				o := testOptions(4)
				o.OnUnsolicited = func(string) { count.Add(1) }
				c := impl.new(o)
				defer c.Close()
				do := func(method, path string) (int, string) {
					t.Helper()
					resp, err := c.Do(context.Background(), &Request{Addr: ln.Addr().String(), Method: method, Target: path, Host: "a",
						HeaderTimeout: 5 * time.Second, Body: strings.NewReader("x"), ContentLength: 1})
					if err != nil {
						t.Fatalf("%s %s: %v", method, path, err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, string(b)
				}
				do("POST", "/first")
				if tc.later {
					close(sendStray)
					<-strayed
					waitFIN(t, c.(*Client), ln.Addr().String()) // the stray bytes reached the client's socket
				}
				for _, p := range []string{"/second", "/third"} {
					if code, body := do("POST", p); code != 200 || body != p {
						t.Fatalf("POST %s after stray bytes: %d %q, want its own answer", p, code, body)
					}
				}
				if _, ok := c.(*Client); ok && count.Load() != 1 {
					t.Errorf("OnUnsolicited called %d times, want 1", count.Load())
				}
			})
		}
	}
}

// TestReapIdle (issue 13, "Also"): Run closes connections idle longer than
// the idle timeout without any request touching the pool.
func TestReapIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		backendSawClose := make(chan struct{})
		dial, wait := pipeBackend(func(c net.Conn, br *bufio.Reader) {
			for {
				if _, err := http.ReadRequest(br); err != nil {
					close(backendSawClose)
					return
				}
				io.WriteString(c, ok2)
			}
		})
		defer wait()
		o := testOptions(4)
		o.Dial, o.IdleTimeout = dial, time.Minute
		c := New(o)
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx)
		if _, body, err := get(c, "b:80", "GET"); err != nil || body != "ok" {
			t.Fatalf("GET: %q %v", body, err)
		}
		start := time.Now()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := c.idleCount("b:80"); n != 1 {
			t.Fatalf("%d idle connections at the idle timeout, want 1 (not before)", n)
		}
		<-backendSawClose
		if d := time.Since(start); d <= time.Minute || d > time.Minute+c.reapInterval() {
			t.Fatalf("idle connection closed after %v, want within one reap interval (%v) past the 1m idle timeout", d, c.reapInterval())
		}
		if n := c.idleCount("b:80"); n != 0 {
			t.Fatalf("%d idle connections after the reap, want 0", n)
		}
	})
}

// TestReapClosedByBackend: Reap drops an idle connection the backend has
// closed, before its idle timeout.
func TestReapClosedByBackend(t *testing.T) {
	b := newRawBackend(t, func(int, *http.Request) (string, bool) { return ok2, true })
	c := testClient(4)
	defer c.Close()
	if _, body, err := get(c, b.addr(), "GET"); err != nil || body != "ok" {
		t.Fatalf("GET: %q %v", body, err)
	}
	waitFIN(t, c, b.addr())
	c.Reap(time.Now())
	if n := c.idleCount(b.addr()); n != 0 {
		t.Fatalf("%d idle connections after Reap, want 0 (the backend closed it)", n)
	}
}

// TestRoundTripper: both clients serve an http.Client (the health checks
// use them so): headers as given, 1xx through httptrace, trailers and the
// response valid after Body.Close.
func TestRoundTripper(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			b := newRawBackend(t, func(int, *http.Request) (string, bool) {
				return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-Kind: test\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 2\r\n\r\n", false
			})
			rt := impl.new(testOptions(1))
			defer rt.Close()
			c := &http.Client{Transport: rt.(http.RoundTripper)}
			req, _ := http.NewRequest("GET", "http://"+b.addr()+"/health/?x=1", nil)
			req.Host = "app.test"
			req.Header.Set("User-Agent", "probe")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("X-Kind") != "test" || resp.Trailer.Get("X-Sum") != "2" {
				t.Fatalf("got %d %q header %v trailer %v", resp.StatusCode, body, resp.Header, resp.Trailer)
			}
			r, _ := b.request(0)
			if r.Host != "app.test" || r.RequestURI != "/health/?x=1" || r.UserAgent() != "probe" {
				t.Fatalf("backend saw Host %q target %q UA %q", r.Host, r.RequestURI, r.UserAgent())
			}
		})
	}
}
