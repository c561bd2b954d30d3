package balancer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Backend is one resolved address of a configured server, as seen by one
// [Pool]. Its configuration (name, id, weight, …) is immutable; its state
// (health, in-flight, counters, drain) lives in the [Registry] and is shared
// with any other pool holding the same (upstream, server, address).
//
// All methods are safe for concurrent use.
type Backend struct {
	pool    *Pool
	name    string // configured server name
	label   string // name, or name@addr when the name has several addresses
	id      string
	addr    netip.AddrPort
	addrStr string
	weight  int64 // configured weight × weightScale
	cfgW    int
	backup  bool
	drain   bool // configured drain
	maxConn int
	hashKey uint64 // ip_hash rendezvous key, derived from the id

	st *addrState
	ns *nameState

	cw int64 // smooth round-robin current weight; guarded by pool.rrMu
}

// Name returns the configured server name.
func (b *Backend) Name() string { return b.name }

// Label returns Name, or "Name@ip:port" when the server's host name
// resolved to several addresses. It is the server argument of
// OnStateChange.
func (b *Backend) Label() string { return b.label }

// ID returns the opaque sticky id (URL-safe, 16 characters).
func (b *Backend) ID() string { return b.id }

// Addr returns "ip:port" ("[ip6]:port" for IPv6).
func (b *Backend) Addr() string { return b.addrStr }

// AddrPort returns the address as a netip.AddrPort.
func (b *Backend) AddrPort() netip.AddrPort { return b.addr }

// Weight returns the configured weight.
func (b *Backend) Weight() int { return b.cfgW }

// Backup reports whether this is a backup server.
func (b *Backend) Backup() bool { return b.backup }

// MaxConns returns the configured slot limit (0 = unlimited).
func (b *Backend) MaxConns() int { return b.maxConn }

// Up reports the active-health state.
func (b *Backend) Up() bool { return b.st.up.Load() }

// Draining reports whether the server is drained, by configuration or at
// runtime (whether or not the drain deadline has passed).
func (b *Backend) Draining() bool { return b.drain || b.ns.drain.Load() != 0 }

// Available reports whether the backend may receive new picks at now: up,
// not excluded by passive health, and not draining.
func (b *Backend) Available(now time.Time) bool {
	return b.healthy(now.UnixNano()) && !b.Draining()
}

// InFlight returns how many slots are held (including long-lived streams).
func (b *Backend) InFlight() int64 { return b.st.inflight.Load() }

// QueueLen returns how many Acquire callers are waiting.
func (b *Backend) QueueLen() int64 { return b.st.queued.Load() }

// Picks counts how often the backend was returned by Pick.
func (b *Backend) Picks() uint64 { return b.st.picks.Load() }

// Failures counts ReportFailure calls.
func (b *Backend) Failures() uint64 { return b.st.failures.Load() }

// QueueTimeouts counts Acquire calls that gave up with ErrQueueTimeout.
func (b *Backend) QueueTimeouts() uint64 { return b.st.queueTimeouts.Load() }

// QueueFull counts Acquire calls rejected with ErrQueueFull.
func (b *Backend) QueueFull() uint64 { return b.st.queueFull.Load() }

// healthy: actively up and not passively excluded.
func (b *Backend) healthy(now int64) bool {
	return b.st.up.Load() && b.st.downTill.Load() <= now
}

// stickyOK: a cookie naming b may still be honoured at now.
func (b *Backend) stickyOK(now int64) bool {
	if !b.healthy(now) {
		return false
	}
	d := b.ns.drain.Load()
	return d == 0 || d == drainForever || now < d
}

// load is the least_conn / random_two measure.
func (b *Backend) load() int64 { return b.st.inflight.Load() + b.st.queued.Load() }

// full reports whether every slot is taken.
func (b *Backend) full() bool {
	return b.maxConn > 0 && b.st.inflight.Load() >= int64(b.maxConn)
}

// effWeight is the scaled weight at now, reduced during slow start.
func (b *Backend) effWeight(now int64) int64 {
	ss := int64(b.pool.o.SlowStart)
	if ss <= 0 {
		return b.weight
	}
	origin := max(b.st.upSince.Load(), b.st.downTill.Load())
	if origin == 0 || now >= origin+ss || now < origin {
		return b.weight
	}
	frac := 0.1 + 0.9*float64(now-origin)/float64(ss)
	return max(1, int64(float64(b.weight)*frac))
}

// Slot is a slot taken with [Backend.Acquire]. Its zero value holds
// nothing: Release on it does nothing. A Slot is a small value, kept by the
// caller (on its stack or in its request state), so taking and giving back
// a slot allocates nothing.
type Slot struct {
	s *addrState
}

// Release gives the slot back. It is idempotent: calls after the first do
// nothing. Release must not be called on the same Slot from two goroutines
// at once; the slot is one request's or one stream's, released by whoever
// ends it.
func (sl *Slot) Release() {
	if s := sl.s; s != nil {
		sl.s = nil
		s.release()
	}
}

// Held reports whether the slot is taken and not yet released.
func (sl *Slot) Held() bool { return sl.s != nil }

// Acquire takes a slot on the backend, to be held for the whole request or
// stream (WebSockets included) and given back with [Slot.Release], which is
// idempotent. The slot counts as in-flight load for least_conn and
// random_two. Acquire and Release allocate nothing when no waiting is
// needed.
//
// When MaxConns slots are taken, the caller waits in a FIFO queue of at most
// QueueSize waiters: beyond that Acquire returns ErrQueueFull; after
// QueueTimeout it returns ErrQueueTimeout; if ctx is done first it returns
// ctx.Err(). A released slot goes to the oldest waiter. On error the Slot
// is the zero Slot.
//
// A request whose ctx is already done gets no slot (ctx.Err()), neither at
// once nor after waiting: a client that went away — an HTTP/2 stream the
// client reset — must not be sent to the backend.
func (b *Backend) Acquire(ctx context.Context) (Slot, error) {
	if err := ctx.Err(); err != nil {
		return Slot{}, err
	}
	s := b.st
	s.mu.Lock()
	if s.maxConns <= 0 || (s.inflight.Load() < int64(s.maxConns) && len(s.queue) == 0) {
		s.inflight.Add(1)
		s.mu.Unlock()
		return Slot{s}, nil
	}
	if len(s.queue) >= b.pool.o.QueueSize {
		s.mu.Unlock()
		s.queueFull.Add(1)
		return Slot{}, ErrQueueFull
	}
	w := &waiter{ch: make(chan struct{})}
	s.queue = append(s.queue, w)
	s.queued.Add(1)
	s.mu.Unlock()

	var timeout <-chan time.Time
	if qt := b.pool.o.QueueTimeout; qt > 0 {
		t := time.NewTimer(qt)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ch:
		if err := ctx.Err(); err != nil {
			// Granted as the client went away: pass the slot on.
			s.release()
			return Slot{}, err
		}
		return Slot{s}, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrQueueTimeout
	}
	s.mu.Lock()
	i := slices.Index(s.queue, w)
	if i < 0 {
		// Granted concurrently with the timeout: the slot is ours; give it
		// back through the normal path so the next waiter gets it.
		s.mu.Unlock()
		s.release()
		return Slot{}, err
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	s.queued.Add(-1)
	s.mu.Unlock()
	if err == ErrQueueTimeout {
		s.queueTimeouts.Add(1)
	}
	return Slot{}, err
}

// release gives a slot back, handing it to the oldest waiter if the limit
// allows.
func (s *addrState) release() {
	s.mu.Lock()
	if len(s.queue) > 0 && (s.maxConns <= 0 || s.inflight.Load() <= int64(s.maxConns)) {
		w := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.queued.Add(-1)
		s.mu.Unlock()
		close(w.ch) // the slot passes to w: inflight is unchanged
		return
	}
	s.inflight.Add(-1)
	s.mu.Unlock()
}

// grantLocked hands free slots to waiters. s.mu must be held.
func (s *addrState) grantLocked() {
	for len(s.queue) > 0 && (s.maxConns <= 0 || s.inflight.Load() < int64(s.maxConns)) {
		w := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.queued.Add(-1)
		s.inflight.Add(1)
		close(w.ch)
	}
}

// ReportFailure records one failed request at now for passive health
// (nginx max_fails/fail_timeout): MaxFails failures within a FailTimeout
// window make the backend unavailable until now+FailTimeout. The caller
// decides what counts as a failure (not client cancellations).
//
// Taking the backend out is reported (OnStateChange, down) only when it
// was not already out by passive health: a backend that keeps failing
// when its fail_timeout ends and it is tried again is taken out again
// silently, until a request succeeds (ReportSuccess).
func (b *Backend) ReportFailure(now time.Time) {
	b.st.failures.Add(1)
	o := &b.pool.o
	if o.MaxFails <= 0 {
		return
	}
	n := now.UnixNano()
	s := b.st
	s.mu.Lock()
	if s.failCount == 0 || n-s.failWindow >= int64(o.FailTimeout) {
		s.failWindow = n
		s.failCount = 0
	}
	s.failCount++
	tripped := s.failCount >= o.MaxFails
	report := false
	if tripped {
		s.failCount = 0
		s.downTill.Store(n + int64(o.FailTimeout))
		report = !s.passiveDown.Swap(true)
	}
	s.mu.Unlock()
	if report {
		b.notify(false, fmt.Sprintf("%d failures within %v", o.MaxFails, o.FailTimeout))
	}
}

// ReportSuccess records a request the backend answered (a response that
// is not a failure). The first success after passive health took the
// backend out reports it up again (OnStateChange). It costs one atomic
// load otherwise, so call it for every such response.
func (b *Backend) ReportSuccess() {
	s := b.st
	if s.passiveDown.Load() && s.passiveDown.CompareAndSwap(true, false) {
		b.notify(true, "answered a request after passive health took it out")
	}
}

// ReportCheck records one active health-check result. Rise consecutive
// passes bring a down backend up (starting slow start); Fall consecutive
// failures take an up backend down. Transitions call OnStateChange with
// reason. A down→up transition also ends any passive-health exclusion.
func (b *Backend) ReportCheck(ok bool, reason string) {
	o := &b.pool.o
	s := b.st
	s.lastCheck.Store(&CheckResult{At: b.pool.now(), OK: ok, Reason: reason})
	changed := false
	s.mu.Lock()
	if ok {
		s.failRun = 0
		s.okRun++
		if !s.up.Load() && s.okRun >= max(o.Rise, 1) {
			changed = true
			s.setUp(true, b.pool.now())
		}
	} else {
		s.okRun = 0
		s.failRun++
		if s.up.Load() && s.failRun >= max(o.Fall, 1) {
			changed = true
			s.setUp(false, time.Time{})
		}
	}
	up := s.up.Load()
	s.mu.Unlock()
	if changed {
		b.notify(up, reason)
	}
}

// SetUp forces the active-health state, resetting the rise/fall counters.
// A change calls OnStateChange with reason.
func (b *Backend) SetUp(up bool, reason string) {
	s := b.st
	s.mu.Lock()
	s.okRun, s.failRun = 0, 0
	changed := s.up.Load() != up
	if changed {
		s.setUp(up, b.pool.now())
	}
	s.mu.Unlock()
	if changed {
		b.notify(up, reason)
	}
}

// setUp must be called with s.mu held.
func (s *addrState) setUp(up bool, now time.Time) {
	if up {
		s.upSince.Store(now.UnixNano())
		// A server the active check has just seen come back (a restarted
		// container) is not kept out for the rest of a passive
		// fail_timeout earned while it was down.
		s.downTill.Store(0)
		s.failCount = 0
		s.passiveDown.Store(false) // reported up by the active check
	}
	s.up.Store(up)
}

func (b *Backend) notify(up bool, reason string) {
	if f := b.pool.o.OnStateChange; f != nil {
		f(b.pool.o.Name, b.label, up, reason)
	}
}
