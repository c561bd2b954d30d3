package edgeserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// sendTimeoutServer runs a Server with send timeout to whose handler is
// h, plaintext or over TLS (HTTP/1.1 and h2 offered), and returns a
// dialer of raw HTTP/1.1 client connections (TLS already shaken; small:
// with a 4 KiB receive buffer, so that the server's writes wait soon),
// and the server's address.
func sendTimeoutServer(t *testing.T, useTLS bool, to time.Duration, h http.HandlerFunc) (func(small bool) net.Conn, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cfg, client *tls.Config
	if useTLS {
		cert, pool := testCert(t)
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		client = &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	}
	s := NewServer(ServerOptions{
		Name:              "test",
		Listener:          NewListener(inner, ListenerOptions{}),
		TLSConfig:         cfg,
		HTTP2:             true,
		HandshakeTimeout:  5 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		SendTimeout:       to,
		Handler:           h,
	})
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return func(small bool) net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if small {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		t.Cleanup(func() { c.Close() })
		if client == nil {
			return c
		}
		tc := tls.Client(c, client)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}, s.Addr().String()
}

// writeAll writes n bytes to w in 32 KiB writes, with no deadline of its
// own, and returns the first error.
func writeAll(w io.Writer, n int) error {
	buf := make([]byte, 32<<10)
	for ; n > 0; n -= len(buf) {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// TestServerSendTimeout: on HTTP/1 (plaintext and TLS) the connection
// itself bounds the writes to a client that takes no byte by the send
// timeout, with no deadline set by the handler (ConnInfo.SendBound tells
// a handler on plaintext that it need set none; over TLS it is the
// backstop); a client that keeps reading, each time within the timeout,
// gets the whole response though it takes longer than the timeout.
func TestServerSendTimeout(t *testing.T) {
	if !sockio.Supported {
		t.Skip("no raw socket I/O on this platform: the handler bounds its writes itself")
	}
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			type result struct {
				bound time.Duration
				err   error
				took  time.Duration
			}
			res := make(chan result, 1)
			h := func(w http.ResponseWriter, r *http.Request) {
				n := 64 << 20
				if r.URL.Path == "/steady" {
					n = 8 << 20
				}
				start := time.Now()
				err := writeAll(w, n)
				res <- result{ConnInfoOf(r).SendBound, err, time.Since(start)}
			}
			dial, _ := sendTimeoutServer(t, useTLS, 300*time.Millisecond, h)
			// The steady client's server has a 1 s timeout: the client's
			// pauses stay well under it on a loaded machine too.
			dialSteady, _ := sendTimeoutServer(t, useTLS, time.Second, h)

			stuck := dial(true)
			fmt.Fprintf(stuck, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
			select {
			case r := <-res:
				if want := map[bool]time.Duration{false: 300 * time.Millisecond, true: 0}[useTLS]; r.bound != want {
					t.Errorf("ConnInfo.SendBound = %v, want %v (the send timeout on plaintext; none over TLS, where the connection's bound is the backstop)", r.bound, want)
				}
				if r.err == nil {
					t.Fatalf("64 MiB written to a client that reads nothing, in %v", r.took)
				}
				if !errors.Is(r.err, os.ErrDeadlineExceeded) {
					t.Errorf("write error after %v: %v; want the send timeout's", r.took, r.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the handler's writes to a client that reads nothing still run 20 s later; want them cut by the 300 ms send timeout")
			}

			slow := dialSteady(false)
			fmt.Fprintf(slow, "GET /steady HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			buf := make([]byte, 16<<10)
			var got int
			start := time.Now()
			slow.SetReadDeadline(time.Now().Add(60 * time.Second))
			for {
				n, err := slow.Read(buf)
				got += n
				if err != nil {
					break
				}
				time.Sleep(3 * time.Millisecond) // about 5 MiB/s at most: 8 MiB take over 1.5 s
			}
			took := time.Since(start)
			r := <-res
			if r.err != nil || got < 8<<20 {
				t.Fatalf("a client reading steadily got %d bytes in %v, handler's write error %v; want the whole 8 MiB", got, took, r.err)
			}
			if took < time.Second {
				t.Logf("the steady read took %v, less than the send timeout: this run proves little", took)
			}
		})
	}
}

// TestServerSendTimeoutHijacked: a hijacked connection's writes (a
// WebSocket tunnel's) are not bound by the send timeout: the tunnel owns
// its deadlines, and a client that reads nothing for longer is not cut by
// the connection underneath.
func TestServerSendTimeoutHijacked(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			res := make(chan error, 1)
			dial, _ := sendTimeoutServer(t, useTLS, 300*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
				c, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					res <- err
					return
				}
				defer c.Close()
				res <- writeAll(c, 64<<20)
			})
			c := dial(true)
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			select {
			case err := <-res:
				t.Fatalf("the hijacked connection's write ended within 1.5 s (send timeout 300 ms) with %v; want it to wait for the client", err)
			case <-time.After(1500 * time.Millisecond):
			}
			c.Close()
			select {
			case err := <-res:
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("write = %v after the client closed, want the closed connection's error", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the hijacked connection's write still waits 10 s after the client closed")
			}
		})
	}
}

// TestServerSendBoundHTTP2: an HTTP/2 connection's streams share it, so
// the connection keeps no per-write bound for a handler to rely on
// (ConnInfo.SendBound is zero: the handler bounds its stream's writes).
func TestServerSendBoundHTTP2(t *testing.T) {
	bound := make(chan time.Duration, 1)
	_, addr := sendTimeoutServer(t, true, 300*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		bound <- ConnInfoOf(r).SendBound
	})
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	if b := <-bound; b != 0 {
		t.Errorf("ConnInfo.SendBound on HTTP/2 = %v, want 0", b)
	}
}
