package balancer

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Registry holds the per-server state that must outlive a configuration
// reload: health, passive failure window, in-flight count and queue, runtime
// drain and the slow-start origin. Create one per process with [NewRegistry]
// and pass it to every [New]; a reload that keeps a server (same upstream
// name, server name and resolved address) keeps its state.
//
// State is reference counted: every live [Pool] holds a reference on the
// state of each backend it currently has, and [Pool.Close] (or a DNS change
// that removes an address) drops it. State whose count reaches zero is
// forgotten, so build the new pool before closing the old one.
//
// A Registry is safe for concurrent use.
type Registry struct {
	mu    sync.Mutex             // guards addrs and names and the refs fields of their values
	addrs map[addrKey]*addrState // per (upstream, server, address)
	names map[nameKey]*nameState // per (upstream, server): runtime drain
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		addrs: make(map[addrKey]*addrState),
		names: make(map[nameKey]*nameState),
	}
}

// Len reports how many per-address states are currently retained.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.addrs)
}

type nameKey struct{ upstream, server string }

type addrKey struct {
	upstream, server string
	addr             netip.AddrPort
}

// nameState is shared by every address of one configured server.
type nameState struct {
	key  nameKey
	refs int // guarded by Registry.mu

	// drain is 0 when not drained at runtime, drainForever when drained
	// without a deadline, else the deadline in Unix nanoseconds.
	drain atomic.Int64
}

const drainForever = int64(^uint64(0) >> 1)

// addrState is the state of one resolved backend address.
type addrState struct {
	key  addrKey
	refs int // guarded by Registry.mu

	up       atomic.Bool
	upSince  atomic.Int64 // Unix ns of the last down→up transition; 0 = never (no slow start)
	downTill atomic.Int64 // Unix ns until which passive health keeps it out; 0 = none
	// passiveDown is set when passive health takes the backend out and
	// cleared by the next success (or an active check bringing it up): it
	// makes each of the two transitions reported once.
	passiveDown atomic.Bool

	inflight atomic.Int64 // slots held (requests and streams in progress)
	queued   atomic.Int64 // waiters in queue

	picks, failures, queueTimeouts, queueFull atomic.Uint64

	// Response statistics for status views (see ObserveResponse).
	responses, responses5xx atomic.Uint64
	latency                 atomic.Int64 // sum of response times, ns
	lastCheck               atomic.Pointer[CheckResult]

	mu         sync.Mutex // guards the fields below
	okRun      int        // consecutive passing checks
	failRun    int        // consecutive failing checks
	failCount  int        // passive failures in the current window
	failWindow int64      // Unix ns start of the current passive window
	maxConns   int        // limit of the most recently attached pool; 0 = unlimited
	queue      []*waiter  // FIFO of Acquire callers waiting for a slot
}

type waiter struct{ ch chan struct{} }

// attach returns the states for key, creating them if needed, and takes a
// reference on both. startUp is the initial health of a new state.
func (r *Registry) attach(k addrKey, startUp bool, maxConns int) (*addrState, *nameState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.addrs[k]
	if !ok {
		s = &addrState{key: k}
		s.up.Store(startUp)
		r.addrs[k] = s
	}
	s.refs++
	nk := nameKey{k.upstream, k.server}
	n, ok := r.names[nk]
	if !ok {
		n = &nameState{key: nk}
		r.names[nk] = n
	}
	n.refs++
	s.mu.Lock()
	s.maxConns = maxConns
	s.grantLocked() // a reload may have raised the limit
	s.mu.Unlock()
	return s, n
}

// detach drops one reference on each state and forgets states that reach zero.
func (r *Registry) detach(s *addrState, n *nameState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if s.refs <= 0 && r.addrs[s.key] == s {
		delete(r.addrs, s.key)
	}
	n.refs--
	if n.refs <= 0 && r.names[n.key] == n {
		delete(r.names, n.key)
	}
}
