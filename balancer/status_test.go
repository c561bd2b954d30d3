package balancer

import (
	"testing"
	"time"
)

// TestStatusViews: the read-only views a status page shows follow the
// state they describe: last check, slow start, passive exclusion, drain
// and the response sums.
func TestStatusViews(t *testing.T) {
	clk := newClock()
	reg := NewRegistry()
	o := Options{Servers: servers(1, 1), SlowStart: 100 * time.Second, Now: clk.Now, MaxFails: 1, FailTimeout: 10 * time.Second, Rise: 1, Fall: 1}
	o.Servers[1].Drain = true
	p := mustNew(t, reg, o)
	s0, s1 := byName(t, p, "s0"), byName(t, p, "s1")

	if _, ok := s0.LastCheck(); ok {
		t.Error("LastCheck before any check: ok, want none")
	}
	s0.ReportCheck(false, "status 500 from /health")
	if c, ok := s0.LastCheck(); !ok || c.OK || c.Reason != "status 500 from /health" || !c.At.Equal(clk.Now()) {
		t.Errorf("LastCheck after a failed check = %+v, %v", c, ok)
	}
	clk.Add(time.Second)
	s0.ReportCheck(true, "status 200")
	if c, _ := s0.LastCheck(); !c.OK || c.Reason != "status 200" || !c.At.Equal(clk.Now()) {
		t.Errorf("LastCheck after a passing check = %+v", c)
	}
	until, ok := s0.SlowStartUntil(clk.Now().Add(50 * time.Second))
	if want := clk.Now().Add(100 * time.Second); !ok || !until.Equal(want) {
		t.Errorf("SlowStartUntil 50 s after coming up = %v, %v; want %v, true", until, ok, want)
	}
	if _, ok := s0.SlowStartUntil(clk.Now().Add(100 * time.Second)); ok {
		t.Error("SlowStartUntil once the ramp is over: still in slow start")
	}
	if _, ok := s1.SlowStartUntil(clk.Now()); ok {
		t.Error("a server that never went down is in slow start")
	}

	s0.ReportFailure(clk.Now())
	if until, ok := s0.PassiveDownUntil(clk.Now()); !ok || !until.Equal(clk.Now().Add(10*time.Second)) {
		t.Errorf("PassiveDownUntil after max_fails = %v, %v", until, ok)
	}
	if _, ok := s0.PassiveDownUntil(clk.Now().Add(10 * time.Second)); ok {
		t.Error("PassiveDownUntil after fail_timeout: still out")
	}

	if d, ok := s1.DrainDeadline(); !ok || !d.IsZero() {
		t.Errorf("configured drain: DrainDeadline = %v, %v; want no deadline, true", d, ok)
	}
	if _, ok := s0.DrainDeadline(); ok {
		t.Error("s0 draining before any drain")
	}
	dl := clk.Now().Add(time.Minute)
	if err := p.Drain("s0", dl); err != nil {
		t.Fatal(err)
	}
	if d, ok := s0.DrainDeadline(); !ok || !d.Equal(dl) {
		t.Errorf("runtime drain: DrainDeadline = %v, %v; want %v", d, ok, dl)
	}

	s0.ObserveResponse(200, 10*time.Millisecond)
	s0.ObserveResponse(503, 30*time.Millisecond)
	s0.ObserveResponse(404, 20*time.Millisecond)
	if got, want := s0.ResponseStats(), (ResponseStats{Responses: 3, Errors: 1, Latency: 60 * time.Millisecond}); got != want {
		t.Errorf("ResponseStats = %+v, want %+v", got, want)
	}
	// The sums live in the registry: a reloaded pool with the same server
	// keeps them, as it keeps health.
	p2 := mustNew(t, reg, o)
	if got := byName(t, p2, "s0").ResponseStats().Responses; got != 3 {
		t.Errorf("ResponseStats after a reload: %d responses, want 3", got)
	}
}

// TestObserveResponseAllocs: the hot-path hook allocates nothing.
func TestObserveResponseAllocs(t *testing.T) {
	p := mustNew(t, nil, Options{Servers: servers(1)})
	b := p.Backends()[0]
	if n := testing.AllocsPerRun(1000, func() { b.ObserveResponse(200, time.Millisecond) }); n != 0 {
		t.Errorf("ObserveResponse: %v allocs, want 0", n)
	}
}

// BenchmarkObserveResponse is the per-request cost of the status page's
// response statistics, from every core at once on one backend (the
// contended case).
func BenchmarkObserveResponse(b *testing.B) {
	p := mustNew(b, nil, Options{Servers: servers(1)})
	be := p.Backends()[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be.ObserveResponse(200, time.Millisecond)
		}
	})
}
