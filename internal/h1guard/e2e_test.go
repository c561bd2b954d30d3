package h1guard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

type connKey struct{}

// guardListener wraps every accepted connection in a guard.
type guardListener struct {
	net.Listener
	opts Options
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c, l.opts), nil
}

// recorder keeps what the handler saw, one line per request.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// startServer runs an http.Server on 127.0.0.1:0 behind the guard, wired
// as a server must be: the guard learns of hijacks through ConnState. The
// handler answers 400 to the marker request; hijacks upgrade requests to
// /ws, answers 101 and echoes the next echo bytes; answers an upgrade
// request to /hints with 103 Early Hints, then 200; lets net/http write a
// 101 itself, without a hijack, for /raw101; and otherwise records method,
// path and body and answers 200.
func startServer(t *testing.T, o Options, echo int) (addr string, rec *recorder) {
	t.Helper()
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := r.Context().Value(connKey{}).(*Conn)
			if reason, ok := g.Rejected(); ok && r.URL.Path == MarkerPath {
				rec.add("REJECTED " + reason)
				w.Header().Set("Connection", "close")
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			upgrade := r.Header.Get("Upgrade") != "" && hasUpgradeToken(r.Header.Values("Connection"))
			switch {
			case upgrade && r.URL.Path == "/hints":
				rec.add("HINTS")
				w.Header().Set("Link", "</s.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				io.WriteString(w, "ok")
				return
			case upgrade && r.URL.Path == "/raw101":
				rec.add("RAW101")
				w.WriteHeader(http.StatusSwitchingProtocols)
				return
			}
			if upgrade && r.URL.Path == "/ws" {
				rec.add("UPGRADE " + r.URL.Path)
				nc, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					rec.add("hijack: " + err.Error())
					return
				}
				defer nc.Close()
				io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				buf := make([]byte, echo)
				if _, err := io.ReadFull(brw, buf); err != nil {
					rec.add("echo: " + err.Error())
					return
				}
				nc.Write(buf)
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				rec.add(fmt.Sprintf("%s %s body error after %q", r.Method, r.URL.Path, body))
				return
			}
			rec.add(fmt.Sprintf("%s %s %q", r.Method, r.URL.Path, body))
			fmt.Fprintf(w, "ok %s", r.URL.Path)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c.(*Conn))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateHijacked {
				c.(*Conn).Hijacked()
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(guardListener{ln, o})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), rec
}

// hasUpgradeToken reports whether the Connection field values hold the
// "upgrade" token.
func hasUpgradeToken(vs []string) bool {
	for _, v := range vs {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// goRequests parses stream with Go's own parser, the way the server would
// (skipping blank lines between requests), and describes each request the
// way the test handler records it.
func goRequests(t *testing.T, stream string) []string {
	t.Helper()
	var out []string
	br := bufio.NewReader(strings.NewReader(stream))
	for {
		for {
			b, err := br.Peek(1)
			if err != nil || (b[0] != '\r' && b[0] != '\n') {
				break
			}
			br.Discard(1)
		}
		if _, err := br.Peek(1); err != nil {
			return out
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("go cannot parse the expected stream: %v", err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("go cannot read the expected body: %v", err)
		}
		if req.Method == "OPTIONS" && req.RequestURI == "*" {
			continue // net/http answers OPTIONS * itself
		}
		out = append(out, fmt.Sprintf("%s %s %q", req.Method, req.URL.Path, body))
	}
}

const probe = "GET /probe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

// send writes stream to a new connection to addr, whole or one byte per
// write, and reads n responses. If the server then closes the connection,
// open is false; otherwise send writes the probe request, which must be
// answered with 200, and open is true.
func send(t *testing.T, addr, stream string, bytewise bool, n int) (statuses []int, open bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.(*net.TCPConn).SetNoDelay(true)
	if bytewise {
		for i := range len(stream) {
			if _, err := c.Write([]byte{stream[i]}); err != nil {
				break // the server may close early after a rejection
			}
		}
	} else {
		c.Write([]byte(stream))
	}
	br := bufio.NewReader(c)
	read := func() (int, bool) {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return 0, false
			}
			t.Fatalf("read response %d: %v", len(statuses), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, true
	}
	for len(statuses) < n {
		code, ok := read()
		if !ok {
			return statuses, false
		}
		statuses = append(statuses, code)
	}
	if _, err := io.WriteString(c, probe); err != nil {
		return statuses, false
	}
	code, ok := read()
	if !ok {
		return statuses, false
	}
	if code != http.StatusOK {
		t.Errorf("probe status %d", code)
	}
	return statuses, true
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// TestEndToEnd sends every stream of the table through a real http.Server
// behind the guard, whole and byte by byte, and checks what the handler saw
// and what the client got: accepted requests reach the handler exactly as
// Go parses them; a rejected head never reaches it, the marker does, the
// client gets 400 and the server closes the connection.
func TestEndToEnd(t *testing.T) {
	for _, tc := range streamCases {
		if tc.bodyErr || tc.pass {
			continue // see TestEndToEndChunkError and TestEndToEndUpgrade
		}
		t.Run(tc.name, func(t *testing.T) {
			valid := tc.in
			if tc.reason != "" {
				valid = tc.prefix
			}
			want := goRequests(t, valid)
			wantStatuses := make([]int, len(want))
			for i := range wantStatuses {
				wantStatuses[i] = http.StatusOK
			}
			if tc.reason != "" {
				want = append(want, "REJECTED "+tc.reason)
				wantStatuses = append(wantStatuses, http.StatusBadRequest)
			}
			http10 := strings.Contains(tc.in, "HTTP/1.0\r\n") && !strings.Contains(tc.in, "keep-alive") && tc.reason == ""
			for _, bytewise := range []bool{false, true} {
				addr, rec := startServer(t, Options{MaxHeadBytes: tc.max}, 0)
				statuses, open := send(t, addr, tc.in, bytewise, len(wantStatuses))
				if fmt.Sprint(statuses) != fmt.Sprint(wantStatuses) {
					t.Errorf("bytewise=%v: statuses %v, want %v", bytewise, statuses, wantStatuses)
				}
				if (tc.reason == "" && !http10) != open {
					t.Errorf("bytewise=%v: connection open = %v", bytewise, open)
				}
				got := rec.lines()
				if open && len(got) > 0 && got[len(got)-1] == `GET /probe ""` {
					got = got[:len(got)-1]
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("bytewise=%v: handler saw\n%s\nwant\n%s", bytewise, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

// TestEndToEndChunkError checks a framing error inside a chunked body: the
// head was valid and reached the handler, the body read fails, and nothing
// after the error reaches the handler.
func TestEndToEndChunkError(t *testing.T) {
	addr, rec := startServer(t, Options{}, 0)
	stream := chunkHd + "5\r\nhelloX\r\n0\r\n\r\n" + getA
	_, open := send(t, addr, stream, false, 2)
	if open {
		t.Errorf("connection still open after a chunk framing error")
	}
	want := `POST /c body error after "hello"`
	if got := rec.lines(); len(got) != 1 || got[0] != want {
		t.Errorf("handler saw %q, want [%q]", got, want)
	}
}

// TestEndToEndUpgrade checks that after a WebSocket handshake the bytes that
// follow, including ones that look like a smuggled request or are not HTTP at
// all, reach the hijacked connection unchanged, both those sent with the
// handshake and those sent after the 101.
func TestEndToEndUpgrade(t *testing.T) {
	later := "\x00\x01\x02 Transfer-Encoding: chunked\r\n\r\n\xff"
	payload := binary + later
	addr, rec := startServer(t, Options{}, len(payload))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, wsHead+binary); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if _, err := io.WriteString(c, later); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, []byte(payload)) {
		t.Fatalf("echo %q, want %q", got, payload)
	}
	if lines := rec.lines(); len(lines) != 1 || lines[0] != "UPGRADE /ws" {
		t.Fatalf("handler saw %q", lines)
	}
}

// TestEndToEndUpgradeNotSwitched checks, through net/http, that an
// upgrade request answered without a switch leaves the guard on, with the
// next requests pipelined in the same write: a 103 Early Hints, then 200,
// then the guard refuses each kind of smuggling attempt that pass-through
// used to let through, and nothing of it reaches the handler.
func TestEndToEndUpgradeNotSwitched(t *testing.T) {
	for name, attack := range map[string]string{"CL+TE": clte, "obs-fold": fold, "TE on HTTP/1.0": te10} {
		t.Run(name, func(t *testing.T) {
			addr, rec := startServer(t, Options{}, 0)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			hints := "GET /hints HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
			if _, err := io.WriteString(c, hints+attack); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			var statuses []int
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
				statuses = append(statuses, resp.StatusCode)
			}
			if fmt.Sprint(statuses) != "[103 200 400]" {
				t.Errorf("statuses %v, want [103 200 400] and the connection closed", statuses)
			}
			got := rec.lines()
			if len(got) != 2 || got[0] != "HINTS" || !strings.HasPrefix(got[1], "REJECTED ") {
				t.Errorf("handler saw %q, want HINTS and the rejection only", got)
			}
		})
	}
}

// TestEndToEndRaw101 checks a handler that lets net/http write a 101
// without hijacking the conn: net/http goes on reading requests, and the
// guard, which switches only on a hijacked conn, keeps holding the bytes
// after the upgrade request; they never reach the handler, and the server
// ends the connection.
func TestEndToEndRaw101(t *testing.T) {
	addr, rec := startServer(t, Options{}, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /raw101 HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response %v, %v; want 101", resp, err)
	}
	io.WriteString(c, clte)
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil && !isReset(err) {
		t.Fatalf("reading to the end: %v", err)
	}
	if strings.Contains(string(rest), " 200 ") {
		t.Errorf("a request after the 101 was served: %q", rest)
	}
	if got := rec.lines(); len(got) != 1 || got[0] != "RAW101" {
		t.Errorf("handler saw %q, want only RAW101", got)
	}
}

// checkLeaks fails the test if it leaves more goroutines running than it
// found, once its cleanups (registered later, so run earlier) are done.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for range 200 {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left running, had %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	})
}
