package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gatehouse-proxy/gatehouse/edgeserver"
)

// allocsH2Edge is what an HTTP/2 request through the Edge allocates
// beyond what net/http's HTTP/2 server and the client spend on the same
// request to a bare handler answering the same head and body: the
// handler's own as on HTTP/1 (allocsServeHTTPCancel: the request ID, the
// balancer's release closure, the upstream client's cancellation hook,
// the response head's value), what that hook costs on a stream's fresh
// context (its done channel and child map), and one send-timeout setting
// on the stream (the closure handed to the connection's serve loop and
// the timer it starts). Before the body's last write kept its bound
// (sendbound.Bound.Copy), a small response set it three times: 18.
const allocsH2Edge = allocsServeHTTPCancel + 6

// TestH2RequestAllocs is the allocation guard of the HTTP/2 request path:
// a real TLS listener (edgeserver.Server, h2 by ALPN) in front of the
// Edge, a minimal HTTP/2 client on one connection, one GET at a time.
// The process's allocations per request are measured twice, through the
// Edge and through a bare handler behind the same kind of server, and
// the difference is Gatehouse's.
func TestH2RequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	e, _, _ := allocsEdge(t, benchConfigFor("off", "gatehouse"))
	edge := newH2AllocClient(t, serveH2ForAllocs(t, e))
	bare := newH2AllocClient(t, serveH2ForAllocs(t, http.HandlerFunc(bareOK)))

	measure := func(c *h2AllocClient) float64 {
		c.get(t) // warm pools, the HPACK tables and lazily built state
		return testing.AllocsPerRun(300, func() { c.get(t) })
	}
	// Interleaved, the lowest of three each: a stray allocation of a
	// background goroutine (a timer, a GC worker) only raises a figure.
	edgeAllocs, bareAllocs := 1e9, 1e9
	for range 3 {
		edgeAllocs = min(edgeAllocs, measure(edge))
		bareAllocs = min(bareAllocs, measure(bare))
	}
	if got := edgeAllocs - bareAllocs; got > allocsH2Edge+0.5 {
		t.Errorf("HTTP/2 GET through the Edge: %.1f allocs/op, a bare handler %.1f: %.1f more, recorded figure %d (docs/performance.md)",
			edgeAllocs, bareAllocs, got, allocsH2Edge)
	} else {
		t.Logf("HTTP/2 GET through the Edge: %.1f allocs/op, a bare handler %.1f: %.1f more (limit %d)", edgeAllocs, bareAllocs, got, allocsH2Edge)
	}
}

// Response fields of bareOK, shared: the bare handler allocates nothing
// of its own.
var (
	bareType = []string{"text/plain"}
	bareLen  = []string{"2"}
	bareID   = []string{"0123456789abcdef0123456789abcdef"}
	bareBody = []byte("ok")
)

// bareOK answers what the Edge answers from staticOK, with a request ID
// of the same length.
func bareOK(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Content-Type"], h["Content-Length"], h["X-Request-Id"] = bareType, bareLen, bareID
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(bareBody)
}

// serveH2ForAllocs serves h on an edgeserver.Server with TLS and HTTP/2,
// as the https listener does, and returns its address.
func serveH2ForAllocs(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := edgeserver.NewServer(edgeserver.ServerOptions{
		Name: "https", Listener: ln, Handler: h,
		TLSConfig:        &tls.Config{Certificates: []tls.Certificate{h2TestCert(t)}, NextProtos: []string{"h2", "http/1.1"}},
		HandshakeTimeout: 10 * time.Second, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		HTTP2: true, HTTP2MaxStreams: 128, HTTP2MaxResets: 200, SendTimeout: time.Minute,
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve() }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

func h2TestCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// h2AllocClient is a minimal HTTP/2 client on one connection: one GET at
// a time, its frames read without decoding the response head, the
// connection's window given back as DATA arrives. It allocates the same
// per request whatever server it talks to.
type h2AllocClient struct {
	conn   *tls.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	block  bytes.Buffer
	stream uint32
}

func newH2AllocClient(t *testing.T, addr string) *h2AllocClient {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	c := &h2AllocClient{conn: conn, fr: http2.NewFramer(conn, conn), stream: 1}
	c.fr.SetReuseFrames()
	c.enc = hpack.NewEncoder(&c.block)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// get sends GET https://app.test/api/items?page=2 and reads frames until
// its stream ends; it fails the test unless the answer is a 200 (the
// status is the first field of the head, one byte in HPACK's static
// table: 0x88).
func (c *h2AllocClient) get(t *testing.T) {
	c.block.Reset()
	for _, f := range [...]hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "app.test"}, {Name: ":path", Value: "/api/items?page=2"},
		{Name: "user-agent", Value: "bench/1.0"}, {Name: "accept", Value: "application/json"},
	} {
		_ = c.enc.WriteField(f)
	}
	id := c.stream
	c.stream += 2
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	status := false
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY: %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.HeadersFrame:
			if f.StreamID == id {
				if b := f.HeaderBlockFragment(); len(b) == 0 || b[0] != 0x88 {
					t.Fatalf("response head % x, want :status 200 (0x88) first", b)
				}
				status = true
			}
		case *http2.DataFrame:
			if n := len(f.Data()); n > 0 {
				_ = c.fr.WriteWindowUpdate(0, uint32(n))
			}
		}
		if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
			if !status {
				t.Fatal("stream ended without a response head")
			}
			return
		}
	}
}
