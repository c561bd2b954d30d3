package tlsedge

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/certmagic"
)

// TestACMETwoInstancesShareStorage: two Managers (two Gatehouse
// instances behind one name) share one file storage. The CA reaches only
// instance B's port 80, yet A's order validates: B answers A's challenge
// from the storage. Later both want a new name at once and the storage's
// lock lets exactly one of them order it; both serve the same
// certificates.
func TestACMETwoInstancesShareStorage(t *testing.T) {
	tlsLnA, _ := listen(t)
	_, tlsPort := listen(t)
	httpLnB, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	shared := &certmagic.FileStorage{Path: t.TempDir()}
	cfg := acmeConfig(p, true, false, "one.example.com")

	// B serves port 80 but does not run yet: it orders nothing.
	b, _ := newTestManagerWith(t, Options{Storage: shared})
	if err := b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	var bHits atomic.Int64
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bHits.Add(1)
		b.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fallback") })).ServeHTTP(w, r)
	})}
	go hs.Serve(httpLnB)
	t.Cleanup(func() { hs.Close() })

	a := startEdge(t, t.TempDir(), cfg, tlsLnA, nil, Options{Storage: shared})
	c, err := dialSlow(a.tlsAddr, "one.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("instance A (challenge answered by B): %v", err)
	}
	first := leafOf(c).SerialNumber
	c.Close()
	if bHits.Load() == 0 {
		t.Error("the CA's validation never reached B")
	}

	// B starts: it loads A's certificate. Then both want a second name.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	bTLS := serveTLS(t, b, b.TLSConfig(Policy{}))
	c, err = dialSlow(bTLS, "one.example.com", p.certRoots)
	if err != nil {
		t.Fatal(err)
	}
	if got := leafOf(c).SerialNumber; got.Cmp(first) != 0 {
		t.Errorf("B serves serial %v, want A's %v", got, first)
	}
	c.Close()
	if got := p.orders.Load(); got != 1 {
		t.Fatalf("orders = %d, want 1", got)
	}

	cfg2 := acmeConfig(p, true, false, "one.example.com", "two.example.com")
	for _, m := range []*Manager{a.m, b} {
		if err := m.Update(cfg2); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := dialSlow(a.tlsAddr, "two.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("A, second name: %v", err)
	}
	defer ca.Close()
	cb, err := dialSlow(bTLS, "two.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("B, second name: %v", err)
	}
	defer cb.Close()
	if leafOf(ca).SerialNumber.Cmp(leafOf(cb).SerialNumber) != 0 {
		t.Errorf("A and B serve different certificates for two.example.com")
	}
	quiesce(t, a.m)
	quiesce(t, b)
	if got := p.orders.Load(); got != 2 {
		t.Errorf("orders = %d, want 2 (one per name between both instances)", got)
	}
}
