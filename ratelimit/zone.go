package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Mode says what a [Zone] does with requests beyond its rate.
type Mode uint8

const (
	// NoDelay (nginx `nodelay`) serves up to Burst requests at once from a
	// full bucket and refuses the rest until tokens come back.
	NoDelay Mode = iota
	// Delay (nginx limit_req without nodelay) serves one request at once and
	// queues up to Burst more, each released one token interval after the
	// previous one; the caller is told how long to hold each. Requests
	// beyond the queue are refused.
	Delay
)

// String returns "nodelay" or "delay".
func (m Mode) String() string {
	if m == Delay {
		return "delay"
	}
	return "nodelay"
}

// DefaultMaxKeys is the number of keys a zone tracks when
// ZoneOptions.MaxKeys is 0.
const DefaultMaxKeys = 100_000

// ZoneOptions configures a [Zone].
type ZoneOptions struct {
	// Name is for the caller's logs and metrics; the zone does not use it.
	Name string
	// Rate is the sustained rate in requests per second (5 r/m is 5.0/60).
	// It must be positive and finite.
	Rate float64
	// Burst is the bucket size in NoDelay mode (requests served at once)
	// and the queue length in Delay mode. Values below 1 mean 1.
	Burst int
	// Mode is NoDelay (the zero value) or Delay.
	Mode Mode
	// MaxKeys bounds the number of buckets kept; 0 means DefaultMaxKeys.
	// When the zone is full, the least recently used bucket is dropped (an
	// eviction). The bound is kept per shard, so eviction is LRU within a
	// shard and approximately LRU overall.
	MaxKeys int
}

// ZoneStats are a zone's counters since it was created.
type ZoneStats struct {
	Keys      int    // buckets tracked now
	Allowed   uint64 // requests served at once
	Delayed   uint64 // requests served after a wait (Delay mode)
	Rejected  uint64 // requests refused
	Evictions uint64 // buckets dropped because the zone was full
	Expired   uint64 // refilled buckets dropped (they carried no state)
}

// Zone is a set of token buckets, one per [Key] (nginx limit_req_zone). It is
// safe for concurrent use. A hit on a key already tracked does not allocate.
type Zone struct {
	name   string
	mode   Mode
	seed   uint64
	mask   uint64
	shards []zoneShard
}

type zoneShard struct {
	mu sync.Mutex
	m  map[Key]*entry
	// LRU list: head is the most recently used entry, tail the least.
	lru lruList[entry, *entry]
	cap int
	// Bucket parameters for this shard's limiters (copied into each shard so
	// the hot path reads only the shard's cache lines). Guarded by mu.
	limit    rate.Limit
	burst    int           // the limiters' burst: Burst, or 1 in Delay mode
	maxDelay time.Duration // Delay mode: longest wait handed out

	n                                            atomic.Int64
	allowed, delayed, rejected, evicted, expired atomic.Uint64
	_                                            [64]byte // keep shards on separate cache lines
}

type entry struct {
	lim *rate.Limiter
	key Key
	lruLinks[entry]
}

// zoneShardMinKeys keeps shards big enough that per-shard LRU is close to
// global LRU.
const (
	zoneMaxShards   = 32
	zoneShardMinKey = 1024
)

// NewZone returns an empty zone. It fails if the rate is not positive and
// finite or the mode is unknown.
func NewZone(o ZoneOptions) (*Zone, error) {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		return nil, fmt.Errorf("ratelimit: zone %q: rate %v: %w", o.Name, o.Rate, errRate)
	}
	if o.Mode > Delay {
		return nil, fmt.Errorf("ratelimit: zone %q: unknown mode %d", o.Name, o.Mode)
	}
	maxKeys := o.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	n := 1
	for n < zoneMaxShards && maxKeys/(n*2) >= zoneShardMinKey {
		n *= 2
	}
	z := &Zone{
		name:   o.Name,
		mode:   o.Mode,
		seed:   rand.Uint64(),
		mask:   uint64(n - 1),
		shards: make([]zoneShard, n),
	}
	lim, burst, maxDelay := bucketParams(o.Mode, o.Rate, o.Burst)
	for i := range z.shards {
		s := &z.shards[i]
		s.m = make(map[Key]*entry)
		s.cap = maxKeys / n
		if i < maxKeys%n {
			s.cap++
		}
		s.limit, s.burst, s.maxDelay = lim, burst, maxDelay
	}
	return z, nil
}

var errRate = errors.New("must be a positive number of requests per second")

func bucketParams(m Mode, r float64, burst int) (rate.Limit, int, time.Duration) {
	if burst < 1 {
		burst = 1
	}
	if m == Delay {
		return rate.Limit(r), 1, time.Duration(float64(burst) / r * float64(time.Second))
	}
	return rate.Limit(r), burst, 0
}

// Name returns ZoneOptions.Name.
func (z *Zone) Name() string { return z.name }

// Mode returns the zone's mode.
func (z *Zone) Mode() Mode { return z.mode }

func (z *Zone) shard(k Key) *zoneShard {
	return &z.shards[k.hash(z.seed)&z.mask]
}

// AllowAt takes a token for key k at time now.
//
// If ok, the request may be served after wait (always 0 in NoDelay mode; in
// Delay mode the time the caller must hold the request first). If not ok,
// retryAfter is how long from now until a request from k would be accepted
// (exact, not rounded: rounding up to whole seconds for a Retry-After header
// is the caller's job). Refused requests take no token.
//
// Time is a parameter so tests are deterministic; now may go backwards a
// little (it is then treated as the last time seen for that key).
func (z *Zone) AllowAt(k Key, now time.Time) (ok bool, wait, retryAfter time.Duration) {
	s := z.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		e = s.insert(k, now)
	} else {
		s.lru.touch(e)
	}
	if e.lim.AllowN(now, 1) {
		s.mu.Unlock()
		s.allowed.Add(1)
		return true, 0, 0
	}
	tokens := e.lim.TokensAt(now)
	need := time.Duration((1 - tokens) / float64(s.limit) * float64(time.Second))
	if s.maxDelay > 0 && need <= s.maxDelay {
		// Delay mode: queue this request by letting the bucket go negative.
		r := e.lim.ReserveN(now, 1)
		wait = r.DelayFrom(now)
		s.mu.Unlock()
		s.delayed.Add(1)
		return true, wait, 0
	}
	s.mu.Unlock()
	s.rejected.Add(1)
	retryAfter = need - s.maxDelay
	if retryAfter <= 0 {
		retryAfter = 1 // a rounding artefact: the token is due now
	}
	return false, 0, retryAfter
}

// full reports whether e's bucket has refilled at now, so dropping it
// changes nothing for its client.
func (s *zoneShard) full(e *entry, now time.Time) bool {
	return e.lim.TokensAt(now) >= float64(s.burst)
}

// insert adds k, recycling the tail entry when it is refilled or when the
// shard is full. s.mu must be held.
func (s *zoneShard) insert(k Key, now time.Time) *entry {
	var e *entry
	if t := s.lru.back; t != nil && (s.n.Load() >= int64(s.cap) || s.full(t, now)) {
		if s.full(t, now) {
			s.expired.Add(1)
		} else {
			s.evicted.Add(1)
		}
		s.remove(t)
		e = t
	} else {
		e = new(entry)
	}
	// A new limiter starts with a full bucket. (Recycling the old one in
	// place would save this allocation per new key, but needs a reset
	// that x/time/rate does not offer.)
	e.lim = rate.NewLimiter(s.limit, s.burst)
	e.key = k
	s.m[k] = e
	s.lru.pushFront(e)
	s.n.Add(1)
	return e
}

func (s *zoneShard) remove(e *entry) {
	s.lru.remove(e)
	delete(s.m, e.key)
	s.n.Add(-1)
}

// SweepAt drops buckets that have refilled completely at now, walking each
// shard from its least recently used end and stopping at the first bucket
// still in use. It returns the number dropped (also counted as Expired).
// Insertions already recycle refilled buckets one at a time, so calling
// SweepAt is optional; a caller that wants memory to shrink after a burst
// of clients calls it every minute or so.
func (z *Zone) SweepAt(now time.Time) int {
	n := 0
	for i := range z.shards {
		s := &z.shards[i]
		s.mu.Lock()
		for t := s.lru.back; t != nil && s.full(t, now); t = s.lru.back {
			s.remove(t)
			s.expired.Add(1)
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// Retune changes rate, burst and mode-dependent queue length of a live zone
// (on reload), applying them to every tracked bucket at time now: clients
// keep the tokens they have (capped at the new burst). The mode and MaxKeys
// cannot change; build a new zone for that.
func (z *Zone) Retune(r float64, burst int, now time.Time) error {
	if !(r > 0) || math.IsInf(r, 0) {
		return fmt.Errorf("ratelimit: zone %q: rate %v: %w", z.name, r, errRate)
	}
	lim, b, maxDelay := bucketParams(z.mode, r, burst)
	for i := range z.shards {
		s := &z.shards[i]
		s.mu.Lock()
		changed := s.limit != lim || s.burst != b
		s.limit, s.burst, s.maxDelay = lim, b, maxDelay
		if changed {
			for e := s.lru.front; e != nil; e = s.lru.after(e) {
				e.lim.SetLimitAt(now, lim)
				e.lim.SetBurstAt(now, b)
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// Limits returns the zone's current rate (requests per second) and burst,
// as given to NewZone or the last Retune (Burst values below 1 read as 1).
func (z *Zone) Limits() (r float64, burst int) {
	s := &z.shards[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	r = float64(s.limit)
	if z.mode == Delay {
		return r, int(math.Round(s.maxDelay.Seconds() * r))
	}
	return r, s.burst
}

// Len returns the number of buckets tracked.
func (z *Zone) Len() int {
	var n int64
	for i := range z.shards {
		n += z.shards[i].n.Load()
	}
	return int(n)
}

// Evictions returns the number of buckets dropped because the zone was full.
func (z *Zone) Evictions() uint64 { return z.Stats().Evictions }

// Rejected returns the number of refused requests.
func (z *Zone) Rejected() uint64 { return z.Stats().Rejected }

// Stats returns the zone's counters. They are read without stopping the
// zone, so they are consistent only to within concurrent calls.
func (z *Zone) Stats() ZoneStats {
	var st ZoneStats
	for i := range z.shards {
		s := &z.shards[i]
		st.Keys += int(s.n.Load())
		st.Allowed += s.allowed.Load()
		st.Delayed += s.delayed.Load()
		st.Rejected += s.rejected.Load()
		st.Evictions += s.evicted.Load()
		st.Expired += s.expired.Load()
	}
	return st
}

func (e *entry) links() *lruLinks[entry] { return &e.lruLinks }
