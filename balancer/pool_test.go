package balancer

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func addrsOf(p *Pool) []string {
	var out []string
	for _, b := range p.Backends() {
		out = append(out, b.Label()+"="+b.Addr())
	}
	return out
}

func TestDNS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := newFakeResolver()
		res.set("django", nil, "10.88.0.5")
		var resolveErrs []string
		var mu sync.Mutex
		p := mustNew(t, nil, Options{
			Servers: []Server{
				{Name: "django", Host: "django", Port: 8000},
				{Name: "fixed", Host: "10.0.0.9", Port: 8000},
			},
			Resolver:        res,
			ResolveInterval: 30 * time.Second,
			OnResolveError: func(up, server string, err error) {
				mu.Lock()
				resolveErrs = append(resolveErrs, server)
				mu.Unlock()
			},
		})
		if !p.NeedsResolve() {
			t.Fatal("NeedsResolve = false with a host name")
		}
		// Before resolution, only the literal exists.
		if got := addrsOf(p); !slices.Equal(got, []string{"fixed=10.0.0.9:8000"}) {
			t.Fatalf("before resolve: %v", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		synctest.Wait()
		if got := addrsOf(p); !slices.Equal(got, []string{"django=10.88.0.5:8000", "fixed=10.0.0.9:8000"}) {
			t.Fatalf("after first resolve: %v", got)
		}
		dj := byName(t, p, "django")
		single := dj.ID()
		dj.SetUp(false, "marked") // state to check later

		// Address change followed at the next interval; single-address id is stable.
		res.set("django", nil, "10.88.0.6")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := addrsOf(p); !slices.Equal(got, []string{"django=10.88.0.6:8000", "fixed=10.0.0.9:8000"}) {
			t.Fatalf("after change: %v", got)
		}
		dj2 := byName(t, p, "django")
		if dj2.ID() != single {
			t.Errorf("single-address id changed with the address: %s → %s", single, dj2.ID())
		}
		if !dj2.Up() {
			t.Error("new address inherited the old address's health")
		}

		// Failure keeps the last good addresses.
		res.set("django", errors.New("server misbehaving"))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := addrsOf(p); !slices.Equal(got, []string{"django=10.88.0.6:8000", "fixed=10.0.0.9:8000"}) {
			t.Fatalf("after failed lookup: %v", got)
		}
		mu.Lock()
		if !slices.Equal(resolveErrs, []string{"django"}) {
			t.Errorf("OnResolveError calls %v", resolveErrs)
		}
		mu.Unlock()
		if b := byName(t, p, "django"); b != dj2 {
			t.Error("failed lookup replaced the backend")
		}

		// Several records → several backends with per-address ids; order sorted.
		res.set("django", nil, "10.88.0.8", "10.88.0.7", "10.88.0.8")
		time.Sleep(30 * time.Second)
		synctest.Wait()
		want := []string{"django@10.88.0.7:8000=10.88.0.7:8000", "django@10.88.0.8:8000=10.88.0.8:8000", "fixed=10.0.0.9:8000"}
		if got := addrsOf(p); !slices.Equal(got, want) {
			t.Fatalf("after several records: %v, want %v", got, want)
		}
		ids := map[string]bool{}
		for _, b := range p.Backends() {
			if ids[b.ID()] || len(b.ID()) != 16 || strings.Contains(b.ID(), "10.") {
				t.Errorf("bad or duplicate id %q", b.ID())
			}
			ids[b.ID()] = true
		}
		// The literal is never resolved.
		if n := res.callCount("10.0.0.9"); n != 0 {
			t.Errorf("literal looked up %d times", n)
		}
		if n := res.callCount("django"); n != 4 {
			t.Errorf("django looked up %d times, want 4", n)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return after cancel")
		}
	})
}

func TestResolveOnceAndNoHosts(t *testing.T) {
	res := newFakeResolver()
	res.set("api", nil, "2001:db8::5", "::ffff:10.1.1.1")
	p := mustNew(t, nil, Options{Servers: []Server{{Host: "api", Port: 9000}}, Resolver: res})
	if err := p.Resolve(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(p); !slices.Equal(got, []string{"api:9000@10.1.1.1:9000=10.1.1.1:9000", "api:9000@[2001:db8::5]:9000=[2001:db8::5]:9000"}) {
		t.Errorf("backends %v", got)
	}
	if err := p.Drain("api:9000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range p.Backends() {
		if !b.Draining() {
			t.Errorf("%s not draining after Drain of its server", b.Label())
		}
	}
	res.set("api", nil)
	if err := p.Resolve(t.Context()); err == nil || !strings.Contains(err.Error(), `resolve server "api:9000" (api): no addresses`) {
		t.Errorf("empty answer: err = %v", err)
	}
	if len(p.Backends()) != 2 {
		t.Error("empty answer dropped the last good addresses")
	}
	// A pool of literals: Run returns at once.
	q := mustNew(t, nil, Options{Servers: servers(1)})
	q.Run(t.Context())
}

func TestRegistryReload(t *testing.T) {
	clk := newClock()
	reg := NewRegistry()
	o := Options{Name: "app", Servers: servers(1, 1, 1), Now: clk.Now, MaxFails: 2, FailTimeout: time.Minute}
	o.Servers[0].MaxConns = 4
	p1 := mustNew(t, reg, o)
	a, b, c := byName(t, p1, "s0"), byName(t, p1, "s1"), byName(t, p1, "s2")
	rel, _ := a.Acquire(t.Context())
	a.ReportFailure(clk.Now()) // one of two
	b.SetUp(false, "probe")
	if err := p1.Drain("s2", time.Time{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		p1.Pick(Key{})
	}
	if reg.Len() != 3 {
		t.Fatalf("registry holds %d states, want 3", reg.Len())
	}

	// Reload: s0, s1, s2 kept (weights changed), s3 added.
	o2 := o
	o2.Servers = append(servers(2, 2, 2), Server{Name: "s3", Host: "10.0.0.4", Port: 8000})
	p2 := mustNew(t, reg, o2)
	p1.Close()
	a2, b2, c2 := byName(t, p2, "s0"), byName(t, p2, "s1"), byName(t, p2, "s2")
	if a2.InFlight() != 1 || b2.Up() || !c2.Draining() {
		t.Errorf("state lost across reload: inflight=%d up=%v draining=%v", a2.InFlight(), b2.Up(), c2.Draining())
	}
	if a2.Picks()+b2.Picks()+c2.Picks() != 3 {
		t.Error("pick counters reset by reload")
	}
	a2.ReportFailure(clk.Now()) // second failure within the window → out
	if a2.Available(clk.Now()) {
		t.Error("passive failure window reset by reload")
	}
	if a2.ID() != a.ID() || c2.ID() != c.ID() {
		t.Error("sticky ids changed across reload")
	}
	rel.Release() // release through the old generation's backend
	if a2.InFlight() != 0 {
		t.Errorf("release via old backend not seen by new: %d", a2.InFlight())
	}
	if reg.Len() != 4 {
		t.Errorf("registry holds %d states, want 4", reg.Len())
	}

	// Reload dropping s1 and s2: their state is forgotten.
	o3 := o
	o3.Servers = []Server{{Name: "s0", Host: "10.0.0.1", Port: 8000}, {Name: "s3", Host: "10.0.0.4", Port: 8000}}
	p3 := mustNew(t, reg, o3)
	p2.Close()
	p2.Close() // idempotent
	if reg.Len() != 2 {
		t.Errorf("registry holds %d states after dropping two servers, want 2", reg.Len())
	}
	// A server coming back later starts fresh.
	o4 := o
	p4 := mustNew(t, reg, o4)
	p3.Close()
	if !byName(t, p4, "s1").Up() || byName(t, p4, "s2").Draining() {
		t.Error("forgotten state came back")
	}
	p4.Close()
	if reg.Len() != 0 {
		t.Errorf("registry holds %d states after closing every pool", reg.Len())
	}
	// Same names in another upstream do not share state.
	x := mustNew(t, reg, Options{Name: "other", Servers: servers(1)})
	y := mustNew(t, reg, Options{Name: "app", Servers: servers(1)})
	x.Backends()[0].SetUp(false, "")
	if !y.Backends()[0].Up() {
		t.Error("state shared between upstreams")
	}
	if x.Backends()[0].ID() == y.Backends()[0].ID() {
		t.Error("same id in two upstreams")
	}
}

func TestStickyIDs(t *testing.T) {
	mk := func(secret string) *Backend {
		p := mustNew(t, nil, Options{Name: "app", Servers: servers(1), StickySecret: []byte(secret)})
		return p.Backends()[0]
	}
	a, a2, b := mk(""), mk(""), mk("k3y")
	if a.ID() != a2.ID() {
		t.Error("ids not deterministic")
	}
	if a.ID() == b.ID() {
		t.Error("secret does not change the id")
	}
	for _, id := range []string{a.ID(), b.ID()} {
		if len(id) != 16 || strings.ContainsAny(id, "+/=.:") {
			t.Errorf("id %q not 16 URL-safe characters", id)
		}
	}
}

// TestConcurrent exercises Pick, Acquire, health changes, drains and DNS
// swaps together; run with -race.
func TestConcurrent(t *testing.T) {
	res := newFakeResolver()
	res.set("web", nil, "10.0.1.1", "10.0.1.2")
	reg := NewRegistry()
	o := Options{
		Name: "app", Policy: PolicyLeastConn, Resolver: res, MaxFails: 3, FailTimeout: time.Millisecond,
		QueueSize: 4, QueueTimeout: time.Millisecond, SlowStart: time.Millisecond,
		Servers: append(servers(1, 2, 3), Server{Name: "web", Host: "web", Port: 80, MaxConns: 2}),
	}
	for _, pol := range Policies() {
		o.Policy = pol
		p := mustNew(t, reg, o)
		if err := p.Resolve(t.Context()); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				var k Key
				k.Client = netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
				for i := range 300 {
					b, _ := p.Pick(k)
					if b == nil {
						continue
					}
					rel, err := b.Acquire(t.Context())
					if err == nil {
						if i%7 == 0 {
							b.ReportFailure(time.Now())
						}
						rel.Release()
						rel.Release()
					}
					k.Cookie = b.ID()
				}
			})
		}
		wg.Go(func() {
			for i := range 200 {
				bs := p.Backends()
				b := bs[i%len(bs)]
				b.ReportCheck(i%3 != 0, "x")
				b.SetUp(i%5 != 0, "y")
				_ = b.Available(time.Now())
				_, _, _ = b.InFlight(), b.QueueLen(), b.Picks()
				if i%10 == 0 {
					_ = p.Drain(b.Name(), time.Now().Add(time.Millisecond))
				} else {
					_ = p.Undrain(b.Name())
				}
			}
		})
		wg.Go(func() {
			for i := range 50 {
				if i%2 == 0 {
					res.set("web", nil, "10.0.1.1", "10.0.1.2")
				} else {
					res.set("web", nil, "10.0.1.3")
				}
				_ = p.Resolve(t.Context())
			}
		})
		wg.Wait()
		for _, b := range p.Backends() {
			if b.InFlight() != 0 || b.QueueLen() != 0 {
				t.Errorf("%s %s: InFlight=%d QueueLen=%d after all released", pol, b.Label(), b.InFlight(), b.QueueLen())
			}
		}
		p.Close()
	}
	if reg.Len() != 0 {
		t.Errorf("registry holds %d states after closing", reg.Len())
	}
}
