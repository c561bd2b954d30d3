package balancer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is one upstream: its backends, policy and runtime controls. The
// backend set is an immutable snapshot behind an atomic pointer, swapped
// when DNS answers change, so Pick never blocks on resolution.
//
// A Pool is safe for concurrent use. Release it with Close once it no
// longer serves (after the pool that replaces it has been built).
type Pool struct {
	o      Options // normalised copy; read-only after New
	reg    *Registry
	policy policyKind
	specs  []serverSpec
	now    func() time.Time

	set  atomic.Pointer[backendSet]
	rrMu sync.Mutex // guards Backend.cw of every backend of this pool

	mu       sync.Mutex              // guards the fields below and set swaps
	resolved map[string][]netip.Addr // last good lookup per server name
	closed   bool
}

// backendSet is immutable once published.
type backendSet struct {
	all       []*Backend // primaries then backups, each in configuration order
	primaries []*Backend
	backups   []*Backend
	byID      map[string]*Backend
	// capacity is the sum of the primaries' MaxConns; 0 when one of them
	// is unlimited or there is none.
	capacity int
}

// Key carries what a Pick may depend on.
type Key struct {
	// Cookie is the sticky id from the client's cookie; empty for none.
	Cookie string
	// Client is the client address, hashed by ip_hash. When invalid,
	// ip_hash falls back to round robin.
	Client netip.Addr
	// Tried holds the backends already tried for this request; Pick skips
	// them (retries).
	Tried Tried
}

// MaxTried is how many tried backends a [Tried] remembers.
const MaxTried = 8

// Tried is a fixed-size set of backends already tried, so that retries can
// exclude them without allocating. Beyond MaxTried entries, Add is a no-op.
type Tried struct {
	n int
	b [MaxTried]*Backend
}

// Add records b.
func (t *Tried) Add(b *Backend) {
	if t.n < MaxTried && b != nil && !t.Has(b) {
		t.b[t.n] = b
		t.n++
	}
}

// Has reports whether b was added.
func (t *Tried) Has(b *Backend) bool {
	for i := range t.n {
		if t.b[i] == b {
			return true
		}
	}
	return false
}

// Len returns how many backends were added.
func (t *Tried) Len() int { return t.n }

// New builds a pool and attaches its backends' state in reg. It does no
// I/O: servers given by host name have no backends until [Pool.Resolve] or
// [Pool.Run] has looked them up. Validation errors name the field.
func New(reg *Registry, o Options) (*Pool, error) {
	if reg == nil {
		return nil, fmt.Errorf("balancer: upstream %q: nil registry", o.Name)
	}
	pol, specs, err := validate(&o)
	if err != nil {
		return nil, fmt.Errorf("balancer: upstream %q: %w", o.Name, err)
	}
	o.Servers = append([]Server(nil), o.Servers...)
	o.StickySecret = append([]byte(nil), o.StickySecret...)
	p := &Pool{
		o:        o,
		reg:      reg,
		policy:   pol,
		specs:    specs,
		now:      o.Now,
		resolved: make(map[string][]netip.Addr),
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.mu.Lock()
	p.rebuildLocked()
	p.mu.Unlock()
	return p, nil
}

// Name returns the upstream name.
func (p *Pool) Name() string { return p.o.Name }

// Policy returns the policy name.
func (p *Pool) Policy() string { return Policies()[p.policy] }

// Backends returns the current backends (primaries then backups). The
// slice is a copy; use it for metrics and admin views, not per request.
func (p *Pool) Backends() []*Backend {
	return append([]*Backend(nil), p.set.Load().all...)
}

// Capacity returns how many slots the upstream's primary servers offer
// together: the sum of their MaxConns over every resolved address. It is
// 0 when a primary server has no MaxConns (the upstream's capacity is not
// bounded here) or no primary address is known. Backup servers are not
// counted: they only serve while no primary can. It does not allocate.
func (p *Pool) Capacity() int { return p.set.Load().capacity }

// Lookup returns the backend whose sticky id is id, or nil.
func (p *Pool) Lookup(id string) *Backend { return p.set.Load().byID[id] }

// Close releases the pool's references in the registry; state no other
// pool references is forgotten. Pick keeps working on a closed pool (for
// requests still finishing) but DNS updates stop. Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, b := range p.set.Load().all {
		p.reg.detach(b.st, b.ns)
	}
}

// Drain stops new picks of every backend of server; clients whose cookie
// names it keep it until deadline (a zero deadline means until Undrain).
// The drain is kept in the registry and survives a reload that keeps the
// server.
func (p *Pool) Drain(server string, deadline time.Time) error {
	ns := p.nameState(server)
	if ns == nil {
		return fmt.Errorf("balancer: upstream %q: drain %q: %w", p.o.Name, server, ErrUnknownServer)
	}
	d := drainForever
	if !deadline.IsZero() {
		d = max(deadline.UnixNano(), 1)
	}
	ns.drain.Store(d)
	return nil
}

// Undrain cancels a runtime Drain. A drain set in the configuration
// (Server.Drain) stays.
func (p *Pool) Undrain(server string) error {
	ns := p.nameState(server)
	if ns == nil {
		return fmt.Errorf("balancer: upstream %q: undrain %q: %w", p.o.Name, server, ErrUnknownServer)
	}
	ns.drain.Store(0)
	return nil
}

func (p *Pool) nameState(server string) *nameState {
	for _, b := range p.set.Load().all {
		if b.name == server {
			return b.ns
		}
	}
	return nil
}

// rebuildLocked builds and publishes a new backend set from the specs and
// the last resolved addresses, reusing unchanged backends and attaching or
// detaching registry state for the difference. p.mu must be held.
func (p *Pool) rebuildLocked() {
	old := p.set.Load()
	oldBy := map[string]*Backend{}
	if old != nil {
		for _, b := range old.all {
			oldBy[b.id] = b
		}
	}
	ns := &backendSet{byID: map[string]*Backend{}}
	for _, sp := range p.specs {
		addrs := p.resolved[sp.Name]
		if sp.literal.IsValid() {
			addrs = []netip.Addr{sp.literal}
		}
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, uint16(sp.Port))
			b := p.newBackend(sp, ap, len(addrs) > 1)
			if ob, ok := oldBy[b.id]; ok && ob.addr == ap {
				b = ob
				delete(oldBy, b.id)
			} else if !p.closed {
				b.st, b.ns = p.reg.attach(addrKey{p.o.Name, sp.Name, ap}, !p.o.StartDown, sp.MaxConns)
			} else {
				continue
			}
			ns.byID[b.id] = b
			if sp.Backup {
				ns.backups = append(ns.backups, b)
			} else {
				ns.primaries = append(ns.primaries, b)
			}
		}
	}
	ns.all = append(append(make([]*Backend, 0, len(ns.primaries)+len(ns.backups)), ns.primaries...), ns.backups...)
	for _, b := range ns.primaries {
		if b.maxConn <= 0 {
			ns.capacity = 0
			break
		}
		ns.capacity += b.maxConn
	}
	p.set.Store(ns)
	if !p.closed {
		for _, b := range oldBy {
			p.reg.detach(b.st, b.ns)
		}
	}
}

func (p *Pool) newBackend(sp serverSpec, ap netip.AddrPort, multi bool) *Backend {
	label := sp.Name
	if multi {
		label = sp.Name + "@" + ap.String()
	}
	mac := hmac.New(sha256.New, p.o.StickySecret)
	mac.Write([]byte(p.o.Name + "/" + label))
	sum := mac.Sum(nil)
	return &Backend{
		pool:    p,
		name:    sp.Name,
		label:   label,
		id:      base64.RawURLEncoding.EncodeToString(sum)[:16],
		addr:    ap,
		addrStr: ap.String(),
		weight:  int64(sp.Weight) * weightScale,
		cfgW:    sp.Weight,
		backup:  sp.Backup,
		drain:   sp.Drain,
		maxConn: sp.MaxConns,
		hashKey: binary.BigEndian.Uint64(sum[16:24]),
	}
}
