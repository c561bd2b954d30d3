package edgeserver

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// readFromListener wraps each accepted *net.TCPConn so that what reaches
// its ReadFrom is recorded: that is where Go uses sendfile(2).
type readFromListener struct {
	net.Listener
	mu   sync.Mutex
	seen []string
}

func (l *readFromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readFromConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

// kinds returns what the connections' ReadFrom got since the last call:
// "file" for an *os.File (inside the io.LimitedReader of
// http.ServeContent), "other" for anything else.
func (l *readFromListener) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen
	l.seen = nil
	return s
}

type readFromConn struct {
	*net.TCPConn
	l *readFromListener
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

// startFileServer runs a Server whose handler sends the file at path with
// http.ServeContent, on a listener that records the TCP conns' ReadFrom.
// proxy puts a PROXY protocol listener in the chain.
func startFileServer(t *testing.T, path string, tlsConfig *tls.Config, proxy bool) (*Server, *readFromListener) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &readFromListener{Listener: inner}
	s := NewServer(ServerOptions{
		Name:              "test",
		Listener:          NewListener(rl, ListenerOptions{ProxyProtocol: proxy}),
		TLSConfig:         tlsConfig,
		HandshakeTimeout:  5 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "big.bin", time.Time{}, f)
		}),
	})
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return s, rl
}

// TestServerSendfile: over plaintext HTTP/1 a file served with
// http.ServeContent reaches the TCP socket's ReadFrom as the *os.File
// itself (sendfile(2)), through every wrapper the Server puts between
// net/http and the socket: the framing guard, the connection counter, the
// raw socket I/O, and the accept gates, also when a PROXY header and the
// request came in one read (the gates then hold the request's bytes, and
// the raw socket I/O is left out). Over TLS nothing reaches it (crypto/tls
// encrypts in user space) and the file still arrives whole.
func TestServerSendfile(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	path := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("status %d, %d bytes, %v; want 200 with the %d bytes of the file", resp.StatusCode, len(got), err, len(body))
		}
	}

	t.Run("plaintext", func(t *testing.T) {
		s, rl := startFileServer(t, path, nil, false)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		for i := range 2 { // a fresh and a kept-alive connection
			resp, err := (&http.Client{Transport: tr}).Get("http://" + s.Addr().String() + "/big.bin")
			check(t, resp, err)
			if got := rl.kinds(); len(got) != 1 || got[0] != "file" {
				t.Errorf("request %d: the TCP conn's ReadFrom got %v, want the *os.File once", i+1, got)
			}
		}
	})

	t.Run("PROXY header and request in one read", func(t *testing.T) {
		s, rl := startFileServer(t, path, nil, true)
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "PROXY TCP4 198.51.100.7 192.0.2.1 51234 80\r\nGET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		check(t, resp, err)
		if got := rl.kinds(); len(got) != 1 || got[0] != "file" {
			t.Errorf("the TCP conn's ReadFrom got %v, want the *os.File once", got)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		cert, pool := testCert(t)
		s, rl := startFileServer(t, path, &tls.Config{Certificates: []tls.Certificate{cert}}, false)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + s.Addr().String() + "/big.bin")
		check(t, resp, err)
		if got := rl.kinds(); len(got) != 0 {
			t.Errorf("the TCP conn's ReadFrom got %v under TLS, want nothing", got)
		}
	})
}

// testCert makes a self-signed certificate for localhost and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
