package ratelimit

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Reasons a connection is refused, as passed to ListenerOptions.OnRefuse
// and usable as metric label values.
const (
	ReasonBanned      = "banned"       // the key is in the Jail
	ReasonPerKey      = "per_key"      // the key has ConnLimiter.PerKey connections open
	ReasonTotal       = "total"        // the listener has ConnLimiter.Total connections open
	ReasonProxyHeader = "proxy_header" // missing, invalid or late PROXY protocol header
	ReasonPending     = "pending"      // too many connections still sending their PROXY header
)

// ConnLimiter caps concurrent connections per key and in total (nginx
// limit_conn). It is safe for concurrent use. A key's entry exists only
// while it has open connections, so memory follows live connections.
type ConnLimiter struct {
	perKey atomic.Int64 // 0: no per-key cap
	total  atomic.Int64 // 0: no total cap
	open   atomic.Int64
	seed   uint64
	shards [16]connShard

	refusedPerKey, refusedTotal atomic.Uint64
}

type connShard struct {
	mu sync.Mutex
	m  map[Key]int32
	_  [40]byte
}

// NewConnLimiter returns a limiter allowing perKey connections per key and
// total connections overall; 0 (or less) disables either cap.
func NewConnLimiter(perKey, total int) *ConnLimiter {
	c := &ConnLimiter{seed: rand.Uint64()}
	for i := range c.shards {
		c.shards[i].m = make(map[Key]int32)
	}
	c.SetLimits(perKey, total)
	return c
}

// SetLimits changes both caps (on reload). Connections already open are
// kept even when they are now over a cap; new ones wait for room.
func (c *ConnLimiter) SetLimits(perKey, total int) {
	c.perKey.Store(int64(max(perKey, 0)))
	c.total.Store(int64(max(total, 0)))
}

// Limits returns the per-key and total caps (0: none).
func (c *ConnLimiter) Limits() (perKey, total int) {
	return int(c.perKey.Load()), int(c.total.Load())
}

// Acquire takes a connection slot for k. If ok, the caller must call
// release exactly when the connection closes; release may be called any
// number of times and frees the slot once. If not ok, release is nil.
func (c *ConnLimiter) Acquire(k Key) (release func(), ok bool) {
	release, reason := c.AcquireReason(k)
	return release, reason == ""
}

// AcquireReason is Acquire telling why it refused: "" when the slot was
// taken, ReasonPerKey or ReasonTotal otherwise. When both caps are full
// the reason is ReasonPerKey (the one that points at a single client).
func (c *ConnLimiter) AcquireReason(k Key) (release func(), reason string) {
	if reason = c.TakeSlot(k); reason != "" {
		return nil, reason
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			c.FreeSlot(k)
		}
	}, ""
}

// TakeSlot is Acquire without the release closure, for a caller that
// guards the single release itself (the listener's conns): "" when the slot
// was taken, else the reason. Every successful TakeSlot must be matched by
// exactly one FreeSlot.
func (c *ConnLimiter) TakeSlot(k Key) string {
	s := &c.shards[k.hash(c.seed)%uint64(len(c.shards))]
	s.mu.Lock()
	n := s.m[k]
	if per := c.perKey.Load(); per > 0 && int64(n) >= per {
		s.mu.Unlock()
		c.refusedPerKey.Add(1)
		return ReasonPerKey
	}
	if total := c.total.Load(); total > 0 && c.open.Add(1) > total {
		c.open.Add(-1)
		s.mu.Unlock()
		c.refusedTotal.Add(1)
		return ReasonTotal
	} else if total <= 0 {
		c.open.Add(1)
	}
	s.m[k] = n + 1
	s.mu.Unlock()
	return ""
}

// FreeSlot frees a slot taken with TakeSlot.
func (c *ConnLimiter) FreeSlot(k Key) {
	s := &c.shards[k.hash(c.seed)%uint64(len(c.shards))]
	s.mu.Lock()
	if n := s.m[k]; n > 1 {
		s.m[k] = n - 1
	} else if n == 1 {
		delete(s.m, k)
	} else {
		s.mu.Unlock()
		panic("ratelimit: ConnLimiter release of a key with no open connection")
	}
	s.mu.Unlock()
	c.open.Add(-1)
}

// Count returns the number of open connections of k.
func (c *ConnLimiter) Count(k Key) int {
	s := &c.shards[k.hash(c.seed)%uint64(len(c.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.m[k])
}

// Open returns the number of open connections.
func (c *ConnLimiter) Open() int { return int(c.open.Load()) }

// Keys returns the number of keys with open connections (the number of
// entries held).
func (c *ConnLimiter) Keys() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Refused returns how many acquisitions were refused by the per-key and by
// the total cap.
func (c *ConnLimiter) Refused() (perKey, total uint64) {
	return c.refusedPerKey.Load(), c.refusedTotal.Load()
}
