package h1guard

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileListener wraps each accepted *net.TCPConn in a readFromConn, then
// in a guard.
type fileListener struct {
	net.Listener
	mu   sync.Mutex
	seen []string // what reached the TCP conns' ReadFrom: "file" or "other"
}

func (l *fileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(&readFromConn{TCPConn: c.(*net.TCPConn), l: l}, Options{}), nil
}

func (l *fileListener) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

type readFromConn struct {
	*net.TCPConn
	l *fileListener
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	kind := "other"
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			kind = "file"
		}
	}
	c.l.mu.Lock()
	c.l.seen = append(c.l.seen, kind)
	c.l.mu.Unlock()
	return c.TCPConn.ReadFrom(r)
}

const switch101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

// startFileServer runs an http.Server behind the guard, wired as
// edgeserver wires it. /file answers with the file at path through
// http.ServeContent (net/http's response.ReadFrom, so the guard's
// ReadFrom), upgrade request or not; /ws hijacks, copies its 101 into the
// conn with io.Copy (so with the conn's ReadFrom), and echoes the next
// echo bytes; the marker request gets 400.
func startFileServer(t *testing.T, path string, echo int) (string, *fileListener, *recorder) {
	t.Helper()
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &fileListener{Listener: ln}
	rec := &recorder{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := r.Context().Value(connKey{}).(*Conn)
			if reason, ok := g.Rejected(); ok && r.URL.Path == MarkerPath {
				rec.add("REJECTED " + reason)
				w.Header().Set("Connection", "close")
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			upgrade := r.Header.Get("Upgrade") != ""
			switch r.URL.Path {
			case "/file":
				rec.add(fmt.Sprintf("FILE upgrade=%v", upgrade))
				f, err := os.Open(path)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				defer f.Close()
				http.ServeContent(w, r, "big.bin", time.Time{}, f)
			case "/ws":
				rec.add("UPGRADE")
				nc, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					rec.add("hijack: " + err.Error())
					return
				}
				defer nc.Close()
				// A reader without WriteTo: io.Copy uses the conn's
				// ReadFrom.
				if _, err := io.Copy(nc, struct{ io.Reader }{strings.NewReader(switch101)}); err != nil {
					rec.add("101: " + err.Error())
					return
				}
				buf := make([]byte, echo)
				if _, err := io.ReadFull(brw, buf); err != nil {
					rec.add("echo: " + err.Error())
					return
				}
				nc.Write(buf)
			default:
				http.NotFound(w, r)
			}
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
		srv.Serve(fl)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String(), fl, rec
}

// TestReadFromFile: a response body net/http hands to the guard's
// ReadFrom reaches the socket's ReadFrom as the file (sendfile(2)), and
// the status watch still sees the status line, which net/http writes
// through Write before it calls ReadFrom: an upgrade request answered 200
// with a file leaves the guard on, and a smuggling attempt pipelined
// after it is refused.
func TestReadFromFile(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	path := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, fl, rec := startFileServer(t, path, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	plain := "GET /file HTTP/1.1\r\nHost: a\r\n\r\n"
	upgrade := "GET /file HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	io.WriteString(c, plain+upgrade+clte)
	br := bufio.NewReader(c)
	var statuses []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		got, err := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && (err != nil || !bytes.Equal(got, body)) {
			t.Errorf("response %d: %d bytes, %v; want the %d bytes of the file", len(statuses)+1, len(got), err, len(body))
		}
		statuses = append(statuses, resp.StatusCode)
	}
	if fmt.Sprint(statuses) != "[200 200 400]" {
		t.Errorf("statuses %v, want [200 200 400] and the connection closed", statuses)
	}
	if got := rec.lines(); len(got) != 3 || got[0] != "FILE upgrade=false" || got[1] != "FILE upgrade=true" || !strings.HasPrefix(got[2], "REJECTED ") {
		t.Errorf("handler saw %q, want the two files and the rejection", got)
	}
	if got := fl.kinds(); fmt.Sprint(got) != "[file file]" {
		t.Errorf("the TCP conn's ReadFrom got %v, want the file twice", got)
	}
}

// TestReadFromUpgradeWatch: a hijacking handler that writes its 101 with
// the conn's ReadFrom is seen by the status watch (the bytes go through
// Write while the response to an upgrade request is unknown), so the
// stream switches over and the bytes sent with the handshake reach the
// handler.
func TestReadFromUpgradeWatch(t *testing.T) {
	addr, fl, rec := startFileServer(t, "", len(binary))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, wsHead+binary)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response %v, %v; want 101", resp, err)
	}
	got := make([]byte, len(binary))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != binary {
		t.Fatalf("echo %q, %v; want %q", got, err, binary)
	}
	if lines := rec.lines(); len(lines) != 1 || lines[0] != "UPGRADE" {
		t.Errorf("handler saw %q", lines)
	}
	if got := fl.kinds(); len(got) != 0 {
		t.Errorf("the 101 bypassed the guard: the TCP conn's ReadFrom got %v", got)
	}
}
