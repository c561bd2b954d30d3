package balancer

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// Pick chooses a backend for a new request, or returns nil when none is
// available. It does not allocate.
//
// If k.Cookie names a backend that is healthy (up and not excluded by
// passive health), not in k.Tried, and not drained past its deadline, that
// backend is returned with sticky = true (a drained backend keeps its sticky
// clients until the deadline). A sticky backup is kept only while no
// primary is available. Otherwise the policy chooses among available
// primaries not in k.Tried, then among available backups; within each
// group, backends with a free MaxConns slot are preferred, and a full one is
// returned only when all are full (the caller then queues in Acquire).
// A sticky backend is returned even when its MaxConns slots are all taken
// (the client waits in its queue rather than losing its session).
// When sticky is false and k.Cookie was set, the caller should replace the
// cookie with the returned backend's ID.
func (p *Pool) Pick(k Key) (b *Backend, sticky bool) {
	set := p.set.Load()
	now := p.now().UnixNano()
	if k.Cookie != "" {
		if c := set.byID[k.Cookie]; c != nil && c.stickyOK(now) && !k.Tried.Has(c) {
			if !c.backup || !p.anyAvailable(set.primaries, now, &k) {
				c.st.picks.Add(1)
				return c, true
			}
		}
	}
	b = p.pickGroup(set.primaries, now, &k)
	if b == nil {
		b = p.pickGroup(set.backups, now, &k)
	}
	if b != nil {
		b.st.picks.Add(1)
	}
	return b, false
}

func (p *Pool) anyAvailable(bs []*Backend, now int64, k *Key) bool {
	for _, b := range bs {
		if b.eligible(now, k, true) {
			return true
		}
	}
	return false
}

// eligible: may receive a new (non-sticky) pick.
func (b *Backend) eligible(now int64, k *Key, allowFull bool) bool {
	return b.healthy(now) && !b.Draining() && !k.Tried.Has(b) && (allowFull || !b.full())
}

func (p *Pool) pickGroup(bs []*Backend, now int64, k *Key) *Backend {
	if len(bs) == 0 {
		return nil
	}
	if b := p.pickPolicy(bs, now, k, false); b != nil {
		return b
	}
	return p.pickPolicy(bs, now, k, true)
}

func (p *Pool) pickPolicy(bs []*Backend, now int64, k *Key, allowFull bool) *Backend {
	switch p.policy {
	case polLeastConn:
		return pickLeastConn(bs, now, k, allowFull)
	case polIPHash:
		if k.Client.IsValid() {
			return pickHRW(bs, now, k, allowFull)
		}
		return p.pickRoundRobin(bs, now, k, allowFull)
	case polRandomTwo:
		return pickRandomTwo(bs, now, k, allowFull)
	case polFirst:
		for _, b := range bs {
			if b.eligible(now, k, allowFull) {
				return b
			}
		}
		return nil
	default:
		return p.pickRoundRobin(bs, now, k, allowFull)
	}
}

// pickRoundRobin is nginx's smooth weighted round robin
// (ngx_http_upstream_get_peer): every eligible backend gains its effective
// weight, the largest current weight wins and loses the total.
func (p *Pool) pickRoundRobin(bs []*Backend, now int64, k *Key, allowFull bool) *Backend {
	p.rrMu.Lock()
	defer p.rrMu.Unlock()
	var best *Backend
	var total int64
	for _, b := range bs {
		if !b.eligible(now, k, allowFull) {
			continue
		}
		w := b.effWeight(now)
		b.cw += w
		total += w
		if best == nil || b.cw > best.cw {
			best = b
		}
	}
	if best != nil {
		best.cw -= total
	}
	return best
}

// pickLeastConn returns the eligible backend with the lowest load/weight;
// ties are broken by weighted reservoir sampling so that equally loaded
// backends share traffic in proportion to their weights.
func pickLeastConn(bs []*Backend, now int64, k *Key, allowFull bool) *Backend {
	var best *Backend
	var bestLoad, bestW, tieW int64
	for _, b := range bs {
		if !b.eligible(now, k, allowFull) {
			continue
		}
		l, w := b.load(), b.effWeight(now)
		switch {
		case best == nil || l*bestW < bestLoad*w:
			best, bestLoad, bestW, tieW = b, l, w, w
		case l*bestW == bestLoad*w:
			tieW += w
			if rand.Int64N(tieW) < w {
				best, bestLoad, bestW = b, l, w
			}
		}
	}
	return best
}

// pickRandomTwo draws two distinct eligible backends with probability
// proportional to weight and returns the one with the lower load/weight
// (the first drawn on a tie).
func pickRandomTwo(bs []*Backend, now int64, k *Key, allowFull bool) *Backend {
	var total int64
	n := 0
	for _, b := range bs {
		if b.eligible(now, k, allowFull) {
			total += b.effWeight(now)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// Health, passive exclusion and slow-start weights may change between
	// the sum above and the draws: fall back to the first eligible
	// backend, and never ask Int64N for a non-positive bound.
	a := drawWeighted(bs, now, k, allowFull, nil, rand.Int64N(total))
	if a == nil {
		a = drawWeighted(bs, now, k, allowFull, nil, 0)
	}
	rest := int64(0)
	if a != nil {
		rest = total - a.effWeight(now)
	}
	if n == 1 || rest <= 0 {
		return a
	}
	c := drawWeighted(bs, now, k, allowFull, a, rand.Int64N(rest))
	if c == nil {
		return a
	}
	la, lc := a.load(), c.load()
	if lc*a.effWeight(now) < la*c.effWeight(now) {
		return c
	}
	return a
}

func drawWeighted(bs []*Backend, now int64, k *Key, allowFull bool, skip *Backend, r int64) *Backend {
	for _, b := range bs {
		if b == skip || !b.eligible(now, k, allowFull) {
			continue
		}
		r -= b.effWeight(now)
		if r < 0 {
			return b
		}
	}
	return nil
}

// pickHRW is weighted rendezvous hashing (Schindelhauer & Schomaker):
// score = w / -ln(u) with u a uniform hash of (client, backend). Removing a
// backend moves only the clients whose top score it had; adding one moves
// only the clients it now wins.
func pickHRW(bs []*Backend, now int64, k *Key, allowFull bool) *Backend {
	a := k.Client.Unmap().As16()
	ch := mix64(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]))
	var best *Backend
	bestScore := -1.0
	for _, b := range bs {
		if !b.eligible(now, k, allowFull) {
			continue
		}
		h := mix64(ch, b.hashKey)
		u := (float64(h>>11) + 0.5) / (1 << 53) // (0,1)
		score := float64(b.effWeight(now)) / -math.Log(u)
		if score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// mix64 combines two words with the murmur3 finaliser; deterministic across
// processes so ip_hash mapping survives restarts and is shared by replicas.
func mix64(a, b uint64) uint64 {
	h := a ^ (b*0x9e3779b97f4a7c15 + 0x7f4a7c159e3779b9)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
