package wstunnel

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSweepInterval is the sweeper period used when
// RegistryOptions.SweepInterval is zero. It is the resolution of idle and
// ping timeouts, and the granularity of the activity clock, so the hot path
// never reads the time.
const DefaultSweepInterval = time.Second

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	// SweepInterval is how often the sweeper checks idle and ping timeouts
	// and sends Pings. Zero means DefaultSweepInterval.
	SweepInterval time.Duration

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Registry owns live tunnels: their goroutines, one sweeper goroutine that
// enforces idle and ping timeouts for all of them, and the goroutines that
// spread closes over time. Create one with NewRegistry and stop it with
// Close. Its methods are safe for concurrent use.
type Registry struct {
	now        func() time.Time
	sweepEvery time.Duration
	clock      atomic.Int64             // UnixNano of the last sweep: the coarse activity clock
	bufs       sync.Pool                // *[bufSize]byte lent to pipes while data moves
	dorm       atomic.Pointer[dormancy] // idle pipes without goroutines; see dormancy()
	quit       chan struct{}
	wg         sync.WaitGroup // pipes, sweeper, spreaders

	pingTimeouts atomic.Uint64

	mu       sync.Mutex // guards the fields below
	tunnels  map[*Tunnel]struct{}
	draining bool // Shutdown or Close started: new tunnels are closed at once
	closed   bool
	noDorm   bool // the registry closed: dormancy() makes no more

	sweepMu sync.Mutex // serialises sweep; guards scratch
	scratch []sweepAction

	// testHookArmed, if set (before the first Start), is called by a
	// parking pipe between its registration and its move to dormant.
	testHookArmed func(*pipe)
}

type sweepAction struct {
	t    *Tunnel
	what uint8
}

const (
	actPing uint8 = iota
	actIdle
	actPingTimeout
	actShrink // hand crypto/tls-grown pipes over to fresh goroutines
	actSleep  // park quiet pipes without a goroutine (dormancy)
)

// NewRegistry returns a Registry and starts its sweeper.
func NewRegistry(o RegistryOptions) *Registry {
	r := &Registry{
		now:        o.Now,
		sweepEvery: o.SweepInterval,
		quit:       make(chan struct{}),
		tunnels:    make(map[*Tunnel]struct{}),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.sweepEvery <= 0 {
		r.sweepEvery = DefaultSweepInterval
	}
	r.bufs.New = func() any { return new([bufSize]byte) }
	r.clock.Store(r.now().UnixNano())
	r.wg.Add(1)
	go r.sweeper()
	return r
}

// Start hands an upgraded connection pair to a new tunnel and returns it.
// client and backend are the hijacked client conn and the backend conn after
// the 101 response; clientBuffered and backendBuffered are bytes already
// read past the handshake (from the hijacked bufio.Reader and from the
// backend response reader), forwarded first. Start takes ownership of both
// conns and the two slices (they must not change afterwards). When a conn
// is a *net.TCPConn or *net.UnixConn (or Options.ClientSocket or
// Options.ClientTLS is set) the tunnel waits for its data holding no
// buffer; other conns are read through a small buffer per direction.
//
// If the registry is shutting down the tunnel is closed at once with
// CauseShutdown; if it is closed, the conns are closed and the returned
// tunnel has already ended.
func (r *Registry) Start(client net.Conn, clientBuffered []byte, backend net.Conn, backendBuffered []byte, o Options) *Tunnel {
	if o.PingTimeout <= 0 {
		o.PingTimeout = o.PingInterval
	}
	t := &Tunnel{
		r:       r,
		o:       o,
		client:  client,
		backend: backend,
		start:   r.now(),
		done:    make(chan struct{}),
	}
	m := rand.Uint64()
	for i := range t.marker {
		t.marker[i] = byte(m >> (8 * i))
	}
	now := r.clock.Load()
	t.last.Store(now)
	t.lastClient.Store(now)
	t.pingAt = now
	t.c2b.init(t, client, backend, o.ClientSocket, nil, o.ClientTLS, sideClient, clientBuffered)
	t.b2c.init(t, backend, client, nil, o.ClientSocket, nil, sideBackend, backendBuffered)
	// Writes to a TLS client go through crypto/tls: that pipe hands over
	// to a fresh goroutine before it parks, as the one reading it does.
	t.b2c.handoff = t.c2b.tls != nil && t.b2c.raw != nil

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		t.cause = CauseShutdown
		t.ended = 2
		t.closeConns()
		t.finish()
		return t
	}
	r.tunnels[t] = struct{}{}
	draining := r.draining
	r.mu.Unlock()
	// A pipe with nothing to forward yet starts dormant: a tunnel that
	// stays quiet never has a goroutine. A TLS client's pipe starts
	// running, as crypto/tls may hold bytes that came with the handshake.
	for _, p := range []*pipe{&t.c2b, &t.b2c} {
		if p.tls == nil && p.canSleep() && r.dormancy().park(p) {
			continue
		}
		r.wg.Add(1)
		go p.run()
	}
	if draining {
		t.Close(CloseGoingAway, "", CauseShutdown)
	}
	return t
}

// dormancy returns the registry's dormancy, made with its goroutine on
// first use (a registry whose conns have no sockets, as in tests over
// net.Pipe, never has one), or nil where there is none (not Linux, the
// registry closed, or no epoll set could be made just now).
func (r *Registry) dormancy() *dormancy {
	if d := r.dorm.Load(); d != nil {
		return d
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.dorm.Load(); d != nil || r.noDorm {
		return d
	}
	d := newDormancy()
	if d == nil {
		// Unsupported here, or out of descriptors for the moment: the
		// next pipe to park asks again.
		return nil
	}
	r.dorm.Store(d)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		d.run()
	}()
	return d
}

func (r *Registry) remove(t *Tunnel) {
	r.mu.Lock()
	delete(r.tunnels, t)
	r.mu.Unlock()
}

// Len returns the number of live tunnels.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tunnels)
}

// Range calls f for each live tunnel (a snapshot, so f may call any method)
// until f returns false.
func (r *Registry) Range(f func(*Tunnel) bool) {
	for _, t := range r.snapshot(nil) {
		if !f(t) {
			return
		}
	}
}

// PingTimeouts returns how many tunnels have been closed because the client
// did not answer a Ping.
func (r *Registry) PingTimeouts() uint64 { return r.pingTimeouts.Load() }

func (r *Registry) snapshot(match func(*Tunnel) bool) []*Tunnel {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := make([]*Tunnel, 0, len(r.tunnels))
	for t := range r.tunnels {
		if match == nil || match(t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// CloseMatching gracefully closes every live tunnel for which match returns
// true (all of them if match is nil) and returns how many it matched. match
// is called with the registry locked and must not call its methods. With
// spread > 0 the closes are spread uniformly over that window in random
// order, each at a random point of its own 1/n slot, so that clients do not
// all reconnect at once; a goroutine owned by the registry does this and
// stops when the registry is closed. With spread <= 0 all are closed now.
func (r *Registry) CloseMatching(match func(*Tunnel) bool, code uint16, reason, cause string, spread time.Duration) int {
	ts := r.snapshot(match)
	if spread <= 0 || len(ts) < 2 {
		for _, t := range ts {
			t.Close(code, reason, cause)
		}
		return len(ts)
	}
	rand.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return len(ts)
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.spreadClose(ts, code, reason, cause, spread)
	return len(ts)
}

// spreadClose closes ts one by one over spread; it is owned by the registry.
func (r *Registry) spreadClose(ts []*Tunnel, code uint16, reason, cause string, spread time.Duration) {
	defer r.wg.Done()
	start := r.now()
	slot := spread / time.Duration(len(ts))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, t := range ts {
		at := slot*time.Duration(i) + rand.N(slot+1)
		if d := at - r.now().Sub(start); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.quit:
				return
			}
		}
		t.Close(code, reason, cause)
	}
}

// Shutdown closes every tunnel gracefully with code and reason
// (CauseShutdown) and waits until all have ended or ctx is done. Tunnels
// started during Shutdown are closed at once. When ctx ends first, the
// remaining tunnels are closed abruptly and ctx.Err() is returned; their
// goroutines exit shortly after (Close waits for them).
func (r *Registry) Shutdown(ctx context.Context, code uint16, reason string) error {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	for _, t := range r.snapshot(nil) {
		t.Close(code, reason, CauseShutdown)
	}
	for {
		ts := r.snapshot(nil)
		if len(ts) == 0 {
			return nil
		}
		for _, t := range ts {
			select {
			case <-t.Done():
			case <-ctx.Done():
				for _, t := range r.snapshot(nil) {
					t.abort(CauseShutdown)
				}
				return ctx.Err()
			}
		}
	}
}

// Close stops the sweeper and pending spread closes, closes every tunnel's
// conns at once (CauseShutdown) and waits for all goroutines of the
// registry to return. Call Shutdown first for a graceful close.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed, r.draining = true, true
	close(r.quit)
	r.mu.Unlock()
	for _, t := range r.snapshot(nil) {
		t.abort(CauseShutdown)
	}
	r.mu.Lock()
	r.noDorm = true
	r.mu.Unlock()
	r.dorm.Load().close()
	r.wg.Wait()
	return nil
}

// sweeper runs sweep every SweepInterval until Close.
func (r *Registry) sweeper() {
	defer r.wg.Done()
	tick := time.NewTicker(r.sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			r.sweep(r.now())
		case <-r.quit:
			return
		}
	}
}

// sweep advances the activity clock to now, closes idle and unresponsive
// tunnels and asks quiet clients for a Pong.
func (r *Registry) sweep(now time.Time) {
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	n := now.UnixNano()
	// Data stamps its tunnel with the clock of the sweep before it, so a
	// tunnel stamped before the previous sweep moved nothing for a whole
	// sweep interval (comparing durations would also catch a tunnel busy
	// all along, stamped a sweep interval ago).
	prev := r.clock.Swap(n)
	acts := r.scratch[:0]
	dorm := r.dorm.Load()
	r.mu.Lock()
	for t := range r.tunnels {
		if t.closing.Load() {
			continue
		}
		if quiet := t.last.Load() < prev; quiet && dorm.usable() {
			// Quiet for a sweep interval: let the pipes give up their
			// goroutines (see dormancy).
			if t.c2b.wantSleep() || t.b2c.wantSleep() {
				acts = append(acts, sweepAction{t, actSleep})
			}
		} else if quiet && (t.c2b.grown.Load() || t.b2c.grown.Load()) {
			// Quiet for a sweep interval after crypto/tls work: let the
			// pipes park on fresh, small stacks (see pipe.handoff).
			acts = append(acts, sweepAction{t, actShrink})
		}
		o := &t.o
		if o.IdleTimeout > 0 && n-t.last.Load() >= int64(o.IdleTimeout) {
			acts = append(acts, sweepAction{t, actIdle})
			continue
		}
		if o.PingInterval <= 0 {
			continue
		}
		if t.pingOut.Load() {
			if n-t.pingAt >= int64(o.PingTimeout) {
				acts = append(acts, sweepAction{t, actPingTimeout})
			}
			continue
		}
		if n-t.lastClient.Load() >= int64(o.PingInterval) && n-t.pingAt >= int64(o.PingInterval) {
			t.pingAt = n
			t.pingOut.Store(true)
			acts = append(acts, sweepAction{t, actPing})
		}
	}
	r.mu.Unlock()
	for i, a := range acts {
		switch a.what {
		case actShrink:
			for _, p := range []*pipe{&a.t.c2b, &a.t.b2c} {
				if p.grown.Load() {
					p.shrink.Store(true)
					p.wake()
				}
			}
		case actSleep:
			for _, p := range []*pipe{&a.t.c2b, &a.t.b2c} {
				if p.wantSleep() {
					p.sleep.Store(true)
					p.wake()
				}
			}
		case actPing:
			a.t.b2c.request(injPing)
		case actIdle:
			a.t.Close(CloseGoingAway, "idle timeout", CauseIdleTimeout)
		case actPingTimeout:
			r.pingTimeouts.Add(1)
			a.t.close(CloseGoingAway, "ping timeout", CausePingTimeout, true)
		}
		acts[i] = sweepAction{}
	}
	r.scratch = acts[:0]
}
