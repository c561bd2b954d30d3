package compress

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// sseEvent is the i-th event of the test stream: small JSON, like a
// Django Channels or django-eventstream message.
func sseEvent(i int) string {
	return fmt.Sprintf("id: %d\nevent: message\ndata: {\"room\":\"lobby\",\"user\":\"user%d\",\"text\":\"message number %d\"}\n\n", i, i%7, i)
}

// TestSSEEventsArriveOneByOne: each event is decodable by the client
// before the server sends the next one. The server waits for the client's
// go-ahead after every event, so if a Flush did not push the event through
// the encoder and the connection, the client's read would block and the
// request's deadline would fail the test: no sleeps, no timing.
func TestSSEEventsArriveOneByOne(t *testing.T) {
	const events = 20
	for _, e := range []Encoding{Gzip, Zstd, Brotli} {
		t.Run(e.String(), func(t *testing.T) {
			c := mustNew(t, Options{Encodings: []Encoding{e}})
			next := make(chan struct{})
			srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-cache")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush() // headers out before the first event
				for i := range events {
					io.WriteString(w, sseEvent(i))
					if err := http.NewResponseController(w).Flush(); err != nil {
						t.Errorf("Flush: %v", err)
						return
					}
					if i == events-1 {
						return
					}
					select {
					case <-next:
					case <-r.Context().Done():
						return
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			req.Header.Set("Accept-Encoding", e.String())
			res, err := rawClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if ce := res.Header.Get("Content-Encoding"); ce != e.String() {
				t.Fatalf("Content-Encoding %q, want %q", ce, e)
			}
			dec, err := decoder(e.String(), res.Body)
			if err != nil {
				t.Fatalf("decoder: %v", err)
			}
			br := bufio.NewReader(dec)
			for i := range events {
				want := sseEvent(i)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil {
					t.Fatalf("event %d: %v (the flush did not reach the client)", i, err)
				}
				if string(got) != want {
					t.Fatalf("event %d: %q, want %q", i, got, want)
				}
				if i < events-1 {
					next <- struct{}{}
				}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the last event: %q, %v; want a clean end", rest, err)
			}
		})
	}
}

// TestProxiedSSEThroughCompressor: an SSE backend behind
// httputil.ReverseProxy (FlushInterval -1, as for event streams) behind
// the compressor, event by event.
func TestProxiedSSEThroughCompressor(t *testing.T) {
	next := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 5 {
			io.WriteString(w, sseEvent(i))
			w.(http.Flusher).Flush()
			if i == 4 {
				return
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	c := mustNew(t, Options{})
	front := httptest.NewServer(c.Handler(rp))
	t.Cleanup(front.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	res, err := rawClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ce := res.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", ce)
	}
	dec, err := decoder("gzip", res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		want := sseEvent(i)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(dec, got); err != nil || string(got) != want {
			t.Fatalf("event %d: %q, %v; want %q", i, got, err, want)
		}
		if i < 4 {
			next <- struct{}{}
		}
	}
}

// TestHijackBypassesCompression: a handler that hijacks (as a WebSocket
// upgrade does, through http.ResponseController) gets the raw connection;
// nothing of the encoder reaches it, before or after.
func TestHijackBypassesCompression(t *testing.T) {
	hijackers := map[string]func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error){
		"ResponseController": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return http.NewResponseController(w).Hijack()
		},
		"type assertion": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			h, ok := w.(http.Hijacker)
			if !ok {
				return nil, nil, fmt.Errorf("%T is not an http.Hijacker", w)
			}
			return h.Hijack()
		},
	}
	for name, hijack := range hijackers {
		t.Run(name, func(t *testing.T) { testHijack(t, hijack) })
	}
}

func testHijack(t *testing.T, hijack func(http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error)) {
	c := mustNew(t, Options{})
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		conn, brw, err := hijack(w)
		if err != nil {
			t.Errorf("Hijack through the wrapper: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang, not a timing assertion
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br, zstd\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 || res.Header.Get("Content-Encoding") != "" {
		t.Fatalf("status %d, Content-Encoding %q; want 101 and none", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	msg := strings.Repeat("hello ", 300) + "\n" // compressible and above the minimum
	io.WriteString(conn, msg)
	got, err := br.ReadString('\n')
	if err != nil || got != "echo: "+msg {
		t.Fatalf("echo %q, %v; want %q", got, err, "echo: "+msg)
	}
	// The handler returned and Close ran: nothing more may arrive.
	rest, err := io.ReadAll(br)
	if len(rest) != 0 {
		t.Errorf("after the handler: %q (%v); want nothing", rest, err)
	}
	if n := c.EncodersInUse(); n != 0 {
		t.Errorf("%d encoders in use after the hijack", n)
	}
}

// TestWebSocketThroughReverseProxy: a real WebSocket (gorilla) through
// httputil.ReverseProxy behind the compressor: the upgrade hijacks through
// the Writer and messages pass uncompressed.
func TestWebSocketThroughReverseProxy(t *testing.T) {
	up := websocket.Upgrader{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			mt, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(mt, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	c := mustNew(t, Options{})
	front := httptest.NewServer(c.Handler(httputil.NewSingleHostReverseProxy(u)))
	t.Cleanup(front.Close)

	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	ws, res, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http"), http.Header{"Accept-Encoding": {"gzip, br, zstd"}})
	if err != nil {
		t.Fatalf("dial through the compressor: %v", err)
	}
	defer ws.Close()
	if ce := res.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("101 with Content-Encoding %q", ce)
	}
	msg := bytes.Repeat([]byte("compressible websocket text "), 200)
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %d bytes, %v; want the %d sent", i, len(got), err, len(msg))
		}
	}
}

// TestResponseControllerReachesWriter: deadlines and full duplex go to
// the wrapped writer through Unwrap instead of failing with
// ErrNotSupported.
func TestResponseControllerReachesWriter(t *testing.T) {
	c := mustNew(t, Options{})
	errs := make(chan error, 3)
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		errs <- rc.EnableFullDuplex()
		w.Header().Set("Content-Type", "text/plain")
		w.Write(text(4000))
	})
	res, body := get(t, rawClient(t), "GET", srv.URL, "Accept-Encoding", "gzip")
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("ResponseController through the Writer: %v", err)
		}
	}
	if got := decode(t, res.Header.Get("Content-Encoding"), body); !bytes.Equal(got, text(4000)) {
		t.Errorf("body changed")
	}
}

// TestAbortLeavesNoValidTrailer: a handler that panics with
// http.ErrAbortHandler (a proxy whose upstream broke mid-body) must not
// produce a complete coded body, and its encoder goes back to the pool.
func TestAbortLeavesNoValidTrailer(t *testing.T) {
	c := mustNew(t, Options{})
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(text(50 << 10))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := rawClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dec, err := decoder("gzip", res.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(dec)
	if err == nil {
		t.Fatalf("read %d bytes and a clean end; want an error for the cut-off response", len(got))
	}
	if n := c.EncodersInUse(); n != 0 {
		t.Errorf("%d encoders in use after the abort, want 0", n)
	}
}

// TestFailedHijackAfterCodedBody: a Hijack that fails (here: a writer that
// cannot hijack, as on HTTP/2) after the coded body began leaves the
// Writer closed, not broken: later writes fail cleanly.
func TestFailedHijackAfterCodedBody(t *testing.T) {
	c := mustNew(t, Options{})
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rw := &discardWriter{h: http.Header{"Content-Type": {"text/html"}}}
	w := c.Wrap(rw, req)
	w.Write(text(4000))
	w.Flush()
	if w.Coding() != Gzip {
		t.Fatalf("coding %v, want gzip", w.Coding())
	}
	if _, _, err := w.Hijack(); err == nil {
		t.Fatal("Hijack on a writer that cannot: no error")
	}
	if _, err := w.Write([]byte("more")); err != ErrClosed {
		t.Errorf("Write after the failed hijack: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := c.EncodersInUse(); n != 0 {
		t.Errorf("%d encoders in use, want 0", n)
	}
}
