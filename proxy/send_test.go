package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-proxy/gatehouse/edgeserver"
)

// stuckWriter is the response writer of a client that reads nothing: a
// socket (HTTP/1) or stream window (HTTP/2) that takes no byte. Like
// net/http's writers it honours SetWriteDeadline: a Write or Flush
// blocks until the deadline and fails then, or for ever (until the test
// ends) without one; once one has failed, every later one fails at once
// (the connection or stream is gone). WriteHeader only records the head,
// as net/http's does (the head goes out with the first write or flush).
type stuckWriter struct {
	h      http.Header
	closed chan struct{} // closed at the end of the test

	mu       sync.Mutex
	deadline time.Time
	code     int
	writes   int
	flushes  int
	unarmed  []string // operations that blocked with no deadline
	broken   bool
}

func newStuckWriter(t *testing.T) *stuckWriter {
	w := &stuckWriter{h: http.Header{}, closed: make(chan struct{})}
	t.Cleanup(func() { close(w.closed) })
	return w
}

func (w *stuckWriter) Header() http.Header { return w.h }

func (w *stuckWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.code == 0 {
		w.code = code
	}
}

func (w *stuckWriter) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = d
	return nil
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return 0, w.block("write")
}

func (w *stuckWriter) FlushError() error { return w.block("flush") }

func (w *stuckWriter) block(op string) error {
	w.mu.Lock()
	if op == "write" {
		w.writes++
	} else {
		w.flushes++
	}
	if w.broken {
		w.mu.Unlock()
		return os.ErrDeadlineExceeded
	}
	d := w.deadline
	if d.IsZero() {
		w.unarmed = append(w.unarmed, op)
	}
	w.mu.Unlock()
	if d.IsZero() {
		<-w.closed
		return os.ErrClosed
	}
	t := time.NewTimer(time.Until(d))
	defer t.Stop()
	select {
	case <-t.C:
		w.mu.Lock()
		w.broken = true
		w.mu.Unlock()
		return os.ErrDeadlineExceeded
	case <-w.closed:
		return os.ErrClosed
	}
}

const sendConfig = `
[listeners.http]
address = "127.0.0.1:0"
[listeners.https]
address = ""
[listeners.admin]
address = ""
[timeouts]
send = "2s"
[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "off"
[[sites.app.routes]]
path = "/"
upstream = "app"
[[sites.app.routes]]
path = "/closed/"
upstream = "app"
deny = ["0.0.0.0/0"]
[upstreams.app]
servers = [{ name = "b1", address = "127.0.0.1:9", max_conns = 4 }]
client_share = 1
`

// TestSendTimeoutBoundsEveryWrite: a client that takes no byte holds the
// handler — and with it the backend slot — for the send timeout and no
// longer, whatever the response: the first write of a body (HTTP/1 and
// HTTP/2), a response with no body (HTTP/1 flushes its head under the
// deadline; HTTP/2 leaves the stream's deadline armed for the frames
// net/http writes after the handler), Gatehouse's own error pages.
func TestSendTimeoutBoundsEveryWrite(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("x", 65536)
	noBody := "HTTP/1.1 204 No Content\r\n\r\n"
	for _, c := range []struct {
		name     string
		upstream string
		path     string
		h2       bool
		took     time.Duration // until the handler returns
		// armed: whether a deadline is left when the handler returns
		// ("yes": HTTP/2, for net/http's last frames; "no": HTTP/1, for
		// the connection's next request; "": the writes failed, the
		// connection or stream is gone).
		armed string
	}{
		{"body over HTTP/1", big, "/big", false, 2 * time.Second, ""},
		{"body over HTTP/2", big, "/big", true, 2 * time.Second, ""},
		{"no body over HTTP/1", noBody, "/empty", false, 2 * time.Second, "no"},
		{"no body over HTTP/2", noBody, "/empty", true, 0, "yes"},
		{"error page over HTTP/1", big, "/closed/x", false, 2 * time.Second, ""},
		{"error page over HTTP/2", big, "/closed/x", true, 2 * time.Second, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, rt := startTestEdge(t, sendConfig, Deps{})
				useStaticUpstream(rt, c.upstream)
				b := rt.Pool("app").Backends()[0]
				w := newStuckWriter(t)
				req := httptest.NewRequest("GET", c.path, nil)
				req.Host = "app.test"
				if c.h2 {
					req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
				}
				ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10")}
				req = req.WithContext(edgeserver.WithConnInfo(context.Background(), ci))

				start := time.Now()
				done := make(chan struct{})
				go func() {
					defer close(done)
					e.ServeHTTP(w, req)
				}()
				select {
				case <-done:
				case <-time.After(3 * time.Second):
					w.mu.Lock()
					defer w.mu.Unlock()
					t.Fatalf("handler still writing 3 s after the request with a 2 s send timeout (writes blocked with no deadline: %v); backend slots held: %d",
						w.unarmed, b.InFlight())
				}
				if took := time.Since(start); took != c.took {
					t.Errorf("handler returned after %v, want %v", took, c.took)
				}
				w.mu.Lock()
				defer w.mu.Unlock()
				if len(w.unarmed) > 0 {
					t.Errorf("writes with no deadline: %v", w.unarmed)
				}
				if armed := !w.deadline.IsZero(); c.armed != "" && armed != (c.armed == "yes") {
					t.Errorf("write deadline left armed after the handler: %v, want %s", armed, c.armed)
				}
				if w.writes+w.flushes == 0 && c.armed != "yes" {
					t.Error("nothing was written or flushed under a deadline: the head goes out after the handler, unbounded")
				}
				if b.InFlight() != 0 {
					t.Errorf("backend slots held after the handler returned: %d", b.InFlight())
				}
			})
		})
	}
}
