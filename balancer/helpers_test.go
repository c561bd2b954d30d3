package balancer

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// servers returns n literal servers s0..s(n-1) on 10.0.0.(i+1):8000.
func servers(weights ...int) []Server {
	out := make([]Server, len(weights))
	for i, w := range weights {
		out[i] = Server{Name: fmt.Sprintf("s%d", i), Host: fmt.Sprintf("10.0.0.%d", i+1), Port: 8000, Weight: w}
	}
	return out
}

func mustNew(t testing.TB, reg *Registry, o Options) *Pool {
	t.Helper()
	if reg == nil {
		reg = NewRegistry()
	}
	if o.Name == "" {
		o.Name = "app"
	}
	p, err := New(reg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func byName(t testing.TB, p *Pool, name string) *Backend {
	t.Helper()
	for _, b := range p.Backends() {
		if b.Name() == name {
			return b
		}
	}
	t.Fatalf("no backend %q", name)
	return nil
}

// pickCounts picks n times (releasing immediately, i.e. no load) and counts
// per server name.
func pickCounts(t testing.TB, p *Pool, n int, k Key) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		b, _ := p.Pick(k)
		if b == nil {
			t.Fatalf("Pick returned nil")
		}
		got[b.Name()]++
	}
	return got
}

// checkShares checks that counts follow weights within tol (absolute
// fraction of n).
func checkShares(t *testing.T, got map[string]int, n int, weights []int, tol float64) {
	t.Helper()
	sum := 0
	for _, w := range weights {
		sum += w
	}
	for i, w := range weights {
		name := fmt.Sprintf("s%d", i)
		want := float64(w) / float64(sum)
		frac := float64(got[name]) / float64(n)
		if frac < want-tol || frac > want+tol {
			t.Errorf("%s: share %.4f, want %.4f±%.3f (counts %v)", name, frac, want, tol, got)
		}
	}
}

// fakeResolver answers from a mutable table and records lookups.
type fakeResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	errs  map[string]error
	calls map[string]int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{addrs: map[string][]netip.Addr{}, errs: map[string]error{}, calls: map[string]int{}}
}

func (r *fakeResolver) set(host string, err error, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[host] = err
	r.addrs[host] = nil
	for _, a := range addrs {
		r.addrs[host] = append(r.addrs[host], netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[host]++
	if network != "ip" {
		return nil, fmt.Errorf("unexpected network %q", network)
	}
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	if a, ok := r.addrs[host]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, fmt.Errorf("no such host %q", host)
}

func (r *fakeResolver) callCount(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// events records OnStateChange calls.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) record(upstream, server string, up bool, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf("%s/%s up=%v %s", upstream, server, up, reason))
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.log
	e.log = nil
	return l
}
