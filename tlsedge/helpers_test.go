package tlsedge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ocsp"
)

// testClock is a settable clock shared by a Manager and test responders.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Now().Truncate(time.Second)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsedge test CA"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

type issueOpts struct {
	names      []string
	notBefore  time.Time // zero: now - 24h
	notAfter   time.Time // zero: now + 30 days
	ocspURL    string
	mustStaple bool
	key        crypto.Signer // nil: a new P-256 key
}

var serialCounter atomic.Int64

// issue returns a fullchain PEM (leaf + CA), the key PEM and the leaf.
func (ca *testCA) issue(t testing.TB, o issueOpts) ([]byte, []byte, *x509.Certificate) {
	t.Helper()
	key := o.key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(30 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1000 + serialCounter.Add(1)),
		Subject:      pkix.Name{CommonName: o.names[0]},
		DNSNames:     o.names,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.ocspURL != "" {
		tmpl.OCSPServer = []string{o.ocspURL}
	}
	if o.mustStaple {
		v, _ := asn1.Marshal([]int{5})
		// id-pe-tlsfeature (RFC 7633) with status_request (5).
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}, Value: v}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), leaf
}

// writePair writes cert and key PEM into dir under base and returns the pair.
func writePair(t testing.TB, dir, base string, certPEM, keyPEM []byte) FilePair {
	t.Helper()
	fp := FilePair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	replaceFile(t, fp.CertFile, certPEM)
	replaceFile(t, fp.KeyFile, keyPEM)
	return fp
}

// replaceFile swaps a file atomically, as certbot's symlink flip does.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// responder is an OCSP responder for a testCA.
type responder struct {
	ca     atomic.Pointer[testCA] // nil: answers 503
	clock  *testClock
	window atomic.Int64 // NextUpdate - ThisUpdate, nanoseconds
	down   atomic.Bool
	status atomic.Int32 // ocsp.Good etc.
	// stale makes the responder answer with an already expired response.
	stale atomic.Bool
	hits  atomic.Int64
	// arrived receives a value (without blocking) as each request arrives.
	arrived chan struct{}
	// gate, when set, holds every request until the channel is closed.
	gate atomic.Pointer[chan struct{}]
	srv  *httptest.Server
}

func newResponder(t *testing.T, ca *testCA, clock *testClock) *responder {
	r := &responder{clock: clock, arrived: make(chan struct{}, 64)}
	if ca != nil {
		r.ca.Store(ca)
	}
	r.window.Store(int64(4 * time.Hour))
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// awaitRequest waits for the next request to reach the responder.
func (r *responder) awaitRequest(t *testing.T) {
	t.Helper()
	select {
	case <-r.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no OCSP request reached the responder within 30s")
	}
}

// drain forgets requests that arrived so far.
func (r *responder) drain() {
	for {
		select {
		case <-r.arrived:
		default:
			return
		}
	}
}

func (r *responder) serve(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	if g := r.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-req.Context().Done():
			return
		}
	}
	if r.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	oreq, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := r.clock.Now()
	this, window := now, time.Duration(r.window.Load())
	if r.stale.Load() {
		this = now.Add(-2 * window)
	}
	ca := r.ca.Load()
	if ca == nil {
		http.Error(w, "no CA yet", http.StatusServiceUnavailable)
		return
	}
	raw, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
		Status:       int(r.status.Load()),
		SerialNumber: oreq.SerialNumber,
		ThisUpdate:   this,
		NextUpdate:   this.Add(window),
		RevokedAt:    this,
	}, ca.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(raw)
}

// newTestManager returns a Manager on a temp (or given) state dir with a
// fresh registry.
func newTestManager(t *testing.T, dir string, clock *testClock) (*Manager, *prometheus.Registry) {
	t.Helper()
	o := Options{StateDir: dir}
	if clock != nil {
		o.Now = clock.Now
	}
	return newTestManagerWith(t, o)
}

// newTestManagerWith is newTestManager with more options: an empty
// StateDir is a temporary one, a nil Logger logs to t.
func newTestManagerWith(t *testing.T, o Options) (*Manager, *prometheus.Registry) {
	t.Helper()
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	reg := prometheus.NewPedanticRegistry()
	o.Registerer = reg
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// logBuffer passes log lines to t.Log and keeps them for assertions.
type logBuffer struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

// newLogBuffer returns a debug-level text logger writing into a logBuffer.
func newLogBuffer(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.t.Log(string(p))
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(p))
	return len(p), nil
}

// find returns the first line logged at level (e.g. "ERROR") that
// contains every one of subs.
func (b *logBuffer) find(level string, subs ...string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
next:
	for _, l := range b.lines {
		if !strings.Contains(l, "level="+level+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return l, true
	}
	return "", false
}

// serveTLS runs an HTTPS server with cfg on 127.0.0.1:0 answering "ok".
func serveTLS(t *testing.T, m *Manager, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: m.HandshakeErrorLog(),
	}
	tl := tls.NewListener(ln, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tl)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// dial performs a TLS handshake to addr with SNI name, trusting roots.
func dial(addr, name string, roots *x509.CertPool, mod func(*tls.Config)) (*tls.Conn, error) {
	cfg := &tls.Config{ServerName: name, RootCAs: roots}
	if mod != nil {
		mod(cfg)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, nil
}

// leafOf returns the serial of the certificate the server presented.
func leafOf(c *tls.Conn) *x509.Certificate {
	return c.ConnectionState().PeerCertificates[0]
}

// get performs one HTTP/1.1 request on an open TLS connection.
func get(c *tls.Conn) (string, error) {
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func failures(m *Manager, reason string) float64 {
	return testutil.ToFloat64(m.met.failures[reason])
}

type (
	tlsConfig = tls.Config
	tlsHello  = tls.ClientHelloInfo
	tlsConn   = tls.Conn
)

// testutilGatherHas checks that reg exposes metric{name=label} == want.
func testutilGatherHas(reg *prometheus.Registry, metric, label string, want float64) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, lp := range mm.GetLabel() {
				if lp.GetValue() == label {
					if got := mm.GetGauge().GetValue(); got != want {
						return fmt.Errorf("%s{%s} = %v, want %v", metric, label, got, want)
					}
					return nil
				}
			}
		}
	}
	return fmt.Errorf("%s{%s} not exposed", metric, label)
}

func rsaKey(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitFor polls cond for up to 20 s (for effects of server goroutines;
// the limit only decides how long a failing test takes).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	waitUntil(t, "condition met", cond)
}

// waitUntil is waitFor with a description of what is awaited.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		<-tick.C
	}
}

// counterValue returns the value of the counter metric{labels} in reg
// (0 when the series does not exist).
func counterValue(t *testing.T, reg *prometheus.Registry, metric string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	series:
		for _, mm := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range mm.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			return mm.GetCounter().GetValue()
		}
	}
	return 0
}

func newRegistry() *prometheus.Registry { return prometheus.NewPedanticRegistry() }

// monitorHello is a ClientHello of an ECDSA-capable modern client (no
// connection: only for names served without certmagic's handshake code).
func monitorHello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        name,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}
