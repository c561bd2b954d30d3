package balancer

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{Servers: servers(1), QueueSize: 2, QueueTimeout: 5 * time.Second}
		o.Servers[0].MaxConns = 2
		p := mustNew(t, nil, o)
		b := p.Backends()[0]
		ctx := t.Context()

		r1, err1 := b.Acquire(ctx)
		r2, err2 := b.Acquire(ctx)
		if err1 != nil || err2 != nil {
			t.Fatalf("first two Acquire: %v, %v", err1, err2)
		}
		// Two waiters, in order.
		type res struct {
			id  int
			rel Slot
			err error
		}
		got := make(chan res, 2)
		for i := 3; i <= 4; i++ {
			go func() {
				r, err := b.Acquire(ctx)
				got <- res{i, r, err}
			}()
			synctest.Wait() // waiter i is queued before the next one starts
		}
		if b.QueueLen() != 2 || b.InFlight() != 2 {
			t.Fatalf("QueueLen=%d InFlight=%d, want 2, 2", b.QueueLen(), b.InFlight())
		}
		if _, err := b.Acquire(ctx); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("5th Acquire: %v, want ErrQueueFull", err)
		}
		if b.QueueFull() != 1 {
			t.Errorf("QueueFull() = %d", b.QueueFull())
		}
		r1.Release()
		r1.Release() // idempotent: must not free a second slot
		synctest.Wait()
		first := <-got
		if first.id != 3 || first.err != nil {
			t.Fatalf("after one release: waiter %d err %v, want waiter 3 served", first.id, first.err)
		}
		if b.InFlight() != 2 || b.QueueLen() != 1 {
			t.Fatalf("InFlight=%d QueueLen=%d, want 2, 1", b.InFlight(), b.QueueLen())
		}
		select {
		case r := <-got:
			t.Fatalf("waiter %d served without a free slot", r.id)
		default:
		}
		r2.Release()
		synctest.Wait()
		second := <-got
		if second.id != 4 || second.err != nil {
			t.Fatalf("waiter %d err %v, want waiter 4 served", second.id, second.err)
		}

		// Queue timeout: both slots held by waiters 3 and 4.
		start := time.Now()
		_, err := b.Acquire(ctx)
		if !errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("Acquire on full server: %v, want ErrQueueTimeout", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("timed out after %v, want 5s", d)
		}
		if b.QueueTimeouts() != 1 || b.QueueLen() != 0 {
			t.Errorf("QueueTimeouts=%d QueueLen=%d, want 1, 0", b.QueueTimeouts(), b.QueueLen())
		}
		// Context cancellation while queued.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := b.Acquire(cctx); done <- err }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Acquire: %v", err)
		}
		first.rel.Release()
		second.rel.Release()
		if b.InFlight() != 0 || b.QueueLen() != 0 {
			t.Errorf("end: InFlight=%d QueueLen=%d", b.InFlight(), b.QueueLen())
		}
	})
}

func TestQueueNoQueue(t *testing.T) {
	o := Options{Servers: servers(1)}
	o.Servers[0].MaxConns = 1
	p := mustNew(t, nil, o)
	b := p.Backends()[0]
	r, err := b.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(t.Context()); !errors.Is(err, ErrQueueFull) {
		t.Errorf("QueueSize 0: %v, want ErrQueueFull", err)
	}
	r.Release()
	if r, err := b.Acquire(t.Context()); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		r.Release()
	}
}

func TestPassiveHealth(t *testing.T) {
	clk := newClock()
	var ev events
	p := mustNew(t, nil, Options{Servers: servers(1, 1), MaxFails: 3, FailTimeout: 10 * time.Second, Now: clk.Now, OnStateChange: ev.record})
	s0 := byName(t, p, "s0")

	// Two failures, then the window expires: the count restarts.
	s0.ReportFailure(clk.Now())
	clk.Add(5 * time.Second)
	s0.ReportFailure(clk.Now())
	clk.Add(6 * time.Second) // 11 s after the first failure
	s0.ReportFailure(clk.Now())
	if !s0.Available(clk.Now()) {
		t.Fatal("unavailable after failures spread over more than fail_timeout")
	}
	s0.ReportFailure(clk.Now())
	clk.Add(9 * time.Second)
	s0.ReportFailure(clk.Now()) // 3 within 10 s
	now := clk.Now()
	if s0.Available(now) {
		t.Fatal("available after max_fails failures within fail_timeout")
	}
	if !s0.Up() {
		t.Error("passive failure changed the active Up state")
	}
	if got := pickCounts(t, p, 10, Key{}); got["s0"] != 0 {
		t.Errorf("passively failed server picked: %v", got)
	}
	if got := ev.take(); !slices.Equal(got, []string{"app/s0 up=false 3 failures within 10s"}) {
		t.Errorf("events %q", got)
	}
	clk.Add(10*time.Second - 1)
	if s0.Available(clk.Now()) {
		t.Error("available before fail_timeout elapsed")
	}
	clk.Add(1)
	if !s0.Available(clk.Now()) {
		t.Error("unavailable after fail_timeout elapsed")
	}
	if s0.Failures() != 5 {
		t.Errorf("Failures() = %d, want 5", s0.Failures())
	}

	// MaxFails 0 disables passive health.
	q := mustNew(t, nil, Options{Servers: servers(1), Now: clk.Now})
	for range 100 {
		q.Backends()[0].ReportFailure(clk.Now())
	}
	if !q.Backends()[0].Available(clk.Now()) {
		t.Error("MaxFails 0: server excluded")
	}
}

// TestPassiveDownReportedOnce: a backend that keeps failing when it is
// tried again after fail_timeout is not reported down again (it was
// reported twice, and never up).
func TestPassiveDownReportedOnce(t *testing.T) {
	clk := newClock()
	var ev events
	p := mustNew(t, nil, Options{Servers: servers(1, 1), MaxFails: 2, FailTimeout: 10 * time.Second, Now: clk.Now, OnStateChange: ev.record})
	s0 := byName(t, p, "s0")
	for range 3 { // out, tried again after fail_timeout, out again...
		s0.ReportFailure(clk.Now())
		s0.ReportFailure(clk.Now())
		if s0.Available(clk.Now()) {
			t.Fatal("available after max_fails failures")
		}
		clk.Add(10 * time.Second)
	}
	if got := ev.take(); !slices.Equal(got, []string{"app/s0 up=false 2 failures within 10s"}) {
		t.Errorf("events %q, want one down", got)
	}
}

// TestPassiveUpReportedOnce: the first request a passively excluded
// backend answers after fail_timeout reports it up, once; failing again
// later is a new episode, reported again.
func TestPassiveUpReportedOnce(t *testing.T) {
	clk := newClock()
	var ev events
	p := mustNew(t, nil, Options{Servers: servers(1, 1), MaxFails: 1, FailTimeout: 10 * time.Second, Now: clk.Now, OnStateChange: ev.record})
	s0 := byName(t, p, "s0")
	s0.ReportSuccess() // up all along: nothing to report
	s0.ReportFailure(clk.Now())
	clk.Add(10 * time.Second)
	s0.ReportSuccess()
	s0.ReportSuccess()
	s0.ReportFailure(clk.Now())
	want := []string{"app/s0 up=false 1 failures within 10s", "app/s0 up=true answered a request after passive health took it out", "app/s0 up=false 1 failures within 10s"}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events %q\nwant %q", got, want)
	}
	// An active check bringing the backend up ends the passive episode:
	// the next success reports nothing more.
	s0.SetUp(false, "test")
	s0.SetUp(true, "test")
	s0.ReportSuccess()
	if got := ev.take(); !slices.Equal(got, []string{"app/s0 up=false test", "app/s0 up=true test"}) {
		t.Errorf("events %q after SetUp", got)
	}
}

func TestRiseFall(t *testing.T) {
	clk := newClock()
	var ev events
	p := mustNew(t, nil, Options{Servers: servers(1), Rise: 2, Fall: 3, StartDown: true, Now: clk.Now, OnStateChange: ev.record})
	b := p.Backends()[0]
	if b.Up() {
		t.Fatal("StartDown: server starts up")
	}
	if x, _ := p.Pick(Key{}); x != nil {
		t.Fatal("picked a down server")
	}
	steps := []struct {
		ok   bool
		want bool
	}{
		{true, false}, {false, false}, {true, false}, {true, true}, // rise needs 2 consecutive
		{false, true}, {false, true}, {true, true}, // streak broken
		{false, true}, {false, true}, {false, false}, // fall after 3
		{false, false}, {true, false}, {true, true},
	}
	for i, s := range steps {
		b.ReportCheck(s.ok, map[bool]string{true: "200 OK", false: "status 503"}[s.ok])
		if b.Up() != s.want {
			t.Fatalf("step %d (ok=%v): Up=%v, want %v", i, s.ok, b.Up(), s.want)
		}
	}
	want := []string{"app/s0 up=true 200 OK", "app/s0 up=false status 503", "app/s0 up=true 200 OK"}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	b.SetUp(true, "admin") // no change, no event
	b.SetUp(false, "admin")
	if got := ev.take(); !slices.Equal(got, []string{"app/s0 up=false admin"}) {
		t.Errorf("SetUp events %q", got)
	}

	// Default start state is up; Rise/Fall 0 mean 1.
	q := mustNew(t, nil, Options{Servers: servers(1)})
	qb := q.Backends()[0]
	if !qb.Up() {
		t.Error("default start state is down")
	}
	qb.ReportCheck(false, "")
	if qb.Up() {
		t.Error("Fall 0 (=1): still up after one failure")
	}
	qb.ReportCheck(true, "")
	if !qb.Up() {
		t.Error("Rise 0 (=1): still down after one pass")
	}
}

func TestSlowStart(t *testing.T) {
	clk := newClock()
	p := mustNew(t, nil, Options{Servers: servers(1, 1), SlowStart: 100 * time.Second, Now: clk.Now, MaxFails: 1, FailTimeout: 10 * time.Second})
	s0, s1 := byName(t, p, "s0"), byName(t, p, "s1")
	full := int64(weightScale)
	if w := s0.effWeight(clk.Now().UnixNano()); w != full {
		t.Fatalf("initial weight %d, want full %d (no slow start at boot)", w, full)
	}
	s0.SetUp(false, "")
	clk.Add(time.Second)
	s0.SetUp(true, "")
	for _, c := range []struct {
		after time.Duration
		want  int64
	}{{0, full / 10}, {50 * time.Second, full * 55 / 100}, {90 * time.Second, full * 91 / 100}, {100 * time.Second, full}} {
		at := clk.Now().Add(c.after).UnixNano()
		if w := s0.effWeight(at); w != c.want {
			t.Errorf("effWeight after %v = %d, want %d", c.after, w, c.want)
		}
	}
	// Round robin share right after coming up: 10 : 100.
	got := pickCounts(t, p, 1100, Key{})
	if got["s0"] != 100 || got["s1"] != 1000 {
		t.Errorf("slow-start share %v, want s0=100 s1=1000", got)
	}
	// A passive exclusion ending also ramps.
	clk.Add(200 * time.Second)
	s1.ReportFailure(clk.Now())
	clk.Add(10 * time.Second)
	if w := s1.effWeight(clk.Now().UnixNano()); w != full/10 {
		t.Errorf("after passive exclusion: weight %d, want %d", w, full/10)
	}
}

// TestQueueLimitRaisedOnReload: a reload that raises MaxConns serves
// queued waiters at once.
func TestQueueLimitRaisedOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		o := Options{Servers: servers(1), QueueSize: 5}
		o.Servers[0].MaxConns = 1
		p := mustNew(t, reg, o)
		b := p.Backends()[0]
		rel, _ := b.Acquire(t.Context())
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				r, err := b.Acquire(t.Context())
				if err == nil {
					defer r.Release()
				}
				errs <- err
			}()
		}
		synctest.Wait()
		if b.QueueLen() != 2 {
			t.Fatalf("QueueLen = %d, want 2", b.QueueLen())
		}
		o.Servers[0].MaxConns = 3
		mustNew(t, reg, o)
		synctest.Wait()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("waiter: %v", err)
			}
		}
		rel.Release()
		if b.InFlight() != 0 || b.QueueLen() != 0 {
			t.Errorf("InFlight=%d QueueLen=%d", b.InFlight(), b.QueueLen())
		}
	})
}

// TestAcquireClientGone: a request whose client went away (an HTTP/2
// stream reset while it waited for a rate limit or in the queue) gets no
// slot, and the slot it would have had goes to the next waiter.
func TestAcquireClientGone(t *testing.T) {
	o := Options{Servers: servers(1), QueueSize: 4, QueueTimeout: time.Minute}
	o.Servers[0].MaxConns = 1
	p := mustNew(t, nil, o)
	b := p.Backends()[0]

	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if r, err := b.Acquire(gone); !errors.Is(err, context.Canceled) || r.Held() {
		t.Fatalf("Acquire with a done context: err %v; want context.Canceled and no slot", err)
	}
	if b.InFlight() != 0 {
		t.Fatalf("InFlight = %d after a refused Acquire, want 0", b.InFlight())
	}

	// The client goes away as its queued request is granted the slot:
	// the waiter wakes for the grant, sees its context done, and passes
	// the slot on. goneCtx reports the cancellation without waking the
	// waiter through Done, so the grant is what it wakes for.
	synctest.Test(t, func(t *testing.T) {
		hold, err := b.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ctx := &goneCtx{Context: context.Background()}
		done := make(chan error, 1)
		go func() {
			r, err := b.Acquire(ctx)
			r.Release() // nothing when refused
			done <- err
		}()
		synctest.Wait() // queued
		ctx.gone.Store(true)
		hold.Release()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("waiter granted a slot after its client went away: err %v, want context.Canceled", err)
		}
		if b.InFlight() != 0 || b.QueueLen() != 0 {
			t.Fatalf("InFlight=%d QueueLen=%d, want 0, 0", b.InFlight(), b.QueueLen())
		}
	})
}

// goneCtx is a context whose Err turns to Canceled when gone is set; its
// Done never closes.
type goneCtx struct {
	context.Context
	gone atomic.Bool
}

func (c *goneCtx) Err() error {
	if c.gone.Load() {
		return context.Canceled
	}
	return nil
}

func TestCapacity(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxConns []int
		backup   int // index of a backup server, -1 for none
		want     int
	}{
		{"sum of primaries", []int{4, 6}, -1, 10},
		{"an unlimited primary", []int{4, 0}, -1, 0},
		{"backups not counted", []int{4, 6, 2}, 2, 10},
		{"unlimited backup ignored", []int{3, 0}, 1, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Options{Servers: servers(slices.Repeat([]int{1}, len(c.maxConns))...)}
			for i, m := range c.maxConns {
				o.Servers[i].MaxConns = m
				o.Servers[i].Backup = i == c.backup
			}
			if got := mustNew(t, nil, o).Capacity(); got != c.want {
				t.Errorf("Capacity() = %d, want %d", got, c.want)
			}
		})
	}
}

// TestAcquireAllocs: taking and releasing a slot allocates nothing, with
// and without a max_conns limit (issue 17.5: the release closure and its
// once-flag cost two allocations per request).
func TestAcquireAllocs(t *testing.T) {
	for _, mc := range []int{0, 1 << 20} {
		o := Options{Servers: servers(1)}
		o.Servers[0].MaxConns = mc
		b := mustNew(t, nil, o).Backends()[0]
		ctx := t.Context()
		if a := testing.AllocsPerRun(200, func() {
			s, err := b.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Release()
			s.Release()
		}); a != 0 {
			t.Errorf("max_conns=%d: Acquire+Release allocates %.1f times per run, want 0", mc, a)
		}
		if b.InFlight() != 0 {
			t.Errorf("max_conns=%d: InFlight = %d after release, want 0", mc, b.InFlight())
		}
	}
}
