package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRetryBufferedBody: a POST whose body fits retry_body_limit is sent
// again to the next server after a 502 listed in fail_statuses; a larger
// one is not (the backend saw it, and it was not kept).
func TestRetryBufferedBody(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) { testRetryBufferedBody(t, mode) })
	}
}

func testRetryBufferedBody(t *testing.T, mode string) {
	var badHits, goodHits atomic.Int32
	var goodBody atomic.Value
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		goodBody.Store(string(b))
		io.WriteString(w, "ok")
	}))
	defer good.Close()
	cfg := `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
policy = "first"
retries = 1
retry_body_limit = "1k"
fail_statuses = [502]
` + clientLine(mode) + `
servers = [{ name = "bad", address = "` + bad.Listener.Addr().String() + `" }, { name = "good", address = "` + good.Listener.Addr().String() + `" }]
`
	e := newTestEdge(t, cfg)
	post := func(body string) int {
		req := httptest.NewRequest("POST", "http://a.example/form", strings.NewReader(body))
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := post("small=1"); got != http.StatusOK {
		t.Fatalf("small POST: status %d, want 200 from the second server", got)
	}
	if badHits.Load() != 1 || goodHits.Load() != 1 || goodBody.Load() != "small=1" {
		t.Fatalf("small POST: bad %d, good %d hits, body %q; want 1, 1, the whole body", badHits.Load(), goodHits.Load(), goodBody.Load())
	}
	big := strings.Repeat("x", 2048)
	if got := post(big); got != http.StatusBadGateway {
		t.Fatalf("large POST: status %d, want the backend's 502 (not retried)", got)
	}
	if goodHits.Load() != 1 {
		t.Fatalf("large POST reached the second server: not buffered, so it must not be replayed")
	}
}

// TestRetryNothingLeftAnswersLastError: with one server, refusing
// connections, the retry finds no other server; the client gets 502 for
// the failed connection, not 503 "no server".
func TestRetryNothingLeftAnswersLastError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) { testRetryNothingLeft(t, mode, addr) })
	}
}

func testRetryNothingLeft(t *testing.T, mode, addr string) {
	e := newTestEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
retries = 1
`+clientLine(mode)+`
servers = [{ name = "only", address = "`+addr+`" }]
`)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example/", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 for a refused connection", rec.Code)
	}
}

// TestRetryDroppedTwice (nginx proxy_next_upstream error): a server that
// drops every request before answering (a backend dying: its accept queue
// reset) gets an idempotent request twice, the second time on a new
// connection (the upstream client's rule), then the request goes to the
// next server; a POST, even with its body kept, is sent once and answered
// 502: the dropped server may have acted on it.
func TestRetryDroppedTwice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dropped atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dropped.Add(1)
			http.ReadRequest(bufio.NewReader(c))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	var goodHits atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer good.Close()
	e := newTestEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
policy = "first"
retries = 1
servers = [{ name = "dying", address = "`+ln.Addr().String()+`" }, { name = "good", address = "`+good.Listener.Addr().String()+`" }]
`)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example/", nil))
	if rec.Code != http.StatusOK || dropped.Load() != 2 || goodHits.Load() != 1 {
		t.Fatalf("GET: status %d after %d dropped connections and %d requests to the next server; want 200 after 2 and 1", rec.Code, dropped.Load(), goodHits.Load())
	}
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("POST", "http://a.example/form", strings.NewReader("a=1")))
	if rec.Code != http.StatusBadGateway || dropped.Load() != 3 || goodHits.Load() != 1 {
		t.Fatalf("POST: status %d, %d dropped connections in all, next server hit %d times in all; want 502, 3 (the POST sent once) and the POST never sent there", rec.Code, dropped.Load(), goodHits.Load())
	}
}
