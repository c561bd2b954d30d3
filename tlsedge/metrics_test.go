package tlsedge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFollowConfig(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ac, ak, al := ca.issue(t, issueOpts{names: []string{"a.test"}})
	bc, bk, bl := ca.issue(t, issueOpts{names: []string{"b.test"}})
	pa, pb := writePair(t, dir, "a", ac, ak), writePair(t, dir, "b", bc, bk)
	m, reg := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{pa, pb}, Names: []string{"a.test", "b.test"}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	c, err := dial(addr, "a.test", ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// In TLS 1.3 the client's handshake returns before the server has
	// verified the client's Finished (where the count happens): wait.
	waitFor(t, func() bool { return testutil.ToFloat64(m.met.handshakes[1]) != 0 })
	if got := testutil.ToFloat64(m.met.handshakes[1]); got != 1 {
		t.Errorf("handshakes_total{version=1.3} = %v, want 1", got)
	}
	for name, want := range map[string]float64{"a.test": float64(al.NotAfter.Unix()), "b.test": float64(bl.NotAfter.Unix())} {
		if err := testutilGatherHas(reg, "gatehouse_tls_certificate_not_after_seconds", name, want); err != nil {
			t.Error(err)
		}
	}
	// After a reload without b.test its series is gone.
	if err := m.Update(Config{Files: []FilePair{pa}, Names: []string{"a.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := testutilGatherHas(reg, "gatehouse_tls_certificate_not_after_seconds", "b.test", 0); err == nil || !strings.Contains(err.Error(), "not exposed") {
		t.Errorf("b.test after reload: %v, want not exposed", err)
	}
	lint, err := testutil.GatherAndLint(reg)
	if err != nil || len(lint) > 0 {
		t.Errorf("lint: %v %v", lint, err)
	}
}

func TestClassifyHandshakeErrors(t *testing.T) {
	m, _ := newTestManager(t, "", nil)
	w := errorLogWriter{m}
	w.Write([]byte("http: TLS handshake error from 1.2.3.4:5: tls: client offered only unsupported versions: [302]\n"))
	w.Write([]byte("http: TLS handshake error from 1.2.3.4:5: EOF\n"))
	w.Write([]byte("http: TLS handshake error from 1.2.3.4:5: tlsedge: no certificate for server name \"x\"\n"))
	if got := failures(m, reasonProtocol); got != 1 {
		t.Errorf("protocol = %v, want 1", got)
	}
	if got := failures(m, reasonOther); got != 1 {
		t.Errorf("other = %v, want 1", got)
	}
	if got := failures(m, reasonUnknownSNI); got != 0 {
		t.Errorf("unknown_sni = %v, want 0 (counted in GetCertificate, not the log)", got)
	}
	m.ObserveHandshakeError(errNoSNI)
	if got := failures(m, reasonUnknownSNI); got != 0 {
		t.Errorf("ObserveHandshakeError recounted a GetCertificate failure")
	}
}

func TestGetCertificateAllocs(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	wc, wk, _ := ca.issue(t, issueOpts{names: []string{"*.example.com"}})
	ec, ek, _ := ca.issue(t, issueOpts{names: []string{"api.example.com"}})
	m, _ := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{writePair(t, dir, "w", wc, wk), writePair(t, dir, "e", ec, ek)}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api.example.com", "www.example.com"} {
		hello := &tlsHello{ServerName: name}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := m.GetCertificate(hello); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("GetCertificate(%s): %v allocs, want 0", name, n)
		}
	}
}

func BenchmarkGetCertificate(b *testing.B) {
	ca := newTestCA(b)
	dir := b.TempDir()
	wc, wk, _ := ca.issue(b, issueOpts{names: []string{"*.example.com"}})
	ec, ek, _ := ca.issue(b, issueOpts{names: []string{"api.example.com"}})
	m, err := New(Options{StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Update(Config{Files: []FilePair{writePair(b, dir, "w", wc, wk), writePair(b, dir, "e", ec, ek)}}); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"api.example.com", "www.example.com"} {
		b.Run(name, func(b *testing.B) {
			hello := &tlsHello{ServerName: name}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.GetCertificate(hello)
				}
			})
		})
	}
}

func TestHTTPHandlerFallback(t *testing.T) {
	m, _ := newTestManager(t, "", nil)
	if err := m.Update(Config{SelfSigned: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	var fell int
	h := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fell++ }))
	for _, p := range []string{"/", "/.well-known/acme-challenge/token"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if fell != 2 {
		t.Errorf("fallback served %d of 2 requests without http-01 configured", fell)
	}
}
