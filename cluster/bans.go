package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Bans shares a jail's bans, unbans and strikes with the other instances:
// it is the jail's [ratelimit.JailPeers] (pass it as JailOptions.Peers)
// and [Bans.Run] applies what the others did. Get it from [Node.Bans].
//
// In Redis: the hash <prefix>bans holds one record per banned key (field:
// the key, "203.0.113.7/32"): the ban, or the record of its lifting (kept
// as long as the lifted ban would have lasted, and at least an hour, so
// that an instance that missed the unban does not bring the ban back);
// between two records of one key the later change wins, on every instance
// alike. Every write bumps <prefix>bans:version and is published on the
// channel <prefix>bans. Strikes are kept per key in the sorted set
// <prefix>strikes:<key> (the last MaxRetry within FindTime).
//
// Changes wait in a journal (one entry per key, the latest) until they
// are written; while Redis is unreachable they stay there and are written
// when it is back. The local bans file stays the offline copy: bans
// received are saved in it like the jail's own.
type Bans struct {
	n    *Node
	seq  atomic.Uint64
	kick chan struct{}

	mu      sync.Mutex
	pending map[ratelimit.Key]banRecord // the journal
	strikes []strike
}

type strike struct {
	key    ratelimit.Key
	reason string
	at     time.Time
}

// banRecord is a ban or the record of its lifting, as stored in the hash
// and published.
type banRecord struct {
	Key    string    `json:"key"`
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
	// At is when the change was made: the ban's Since, or the time it
	// was lifted. The later of two records of a key wins.
	At     time.Time `json:"at"`
	Lifted bool      `json:"lifted,omitempty"`
	// By is the instance that made the change.
	By string `json:"by"`
}

// Journal and queue bounds.
const (
	// maxStrikeQueue bounds the strikes waiting to be shared (a flood
	// while Redis is down); beyond it they count on this instance only.
	maxStrikeQueue = 10_000
	// liftedKeep is the shortest time the record of a lifted ban is
	// kept.
	liftedKeep = time.Hour
	// fullSyncEvery forces a full read of the bans hash even when the
	// version did not change (a flushed or replaced Redis).
	fullSyncEvery = 5 * time.Minute
)

// Bans returns the Node's ban sharing (one per Node).
func (n *Node) Bans() *Bans {
	return &Bans{n: n, kick: make(chan struct{}, 1), pending: map[ratelimit.Key]banRecord{}}
}

// Banned implements [ratelimit.JailPeers]: it queues b.
func (s *Bans) Banned(b ratelimit.Ban) {
	s.queue(banRecord{Key: b.Key.String(), Since: b.Since, Until: b.Until, Reason: b.Reason, At: b.Since, By: s.n.instance}, b.Key)
}

// Unbanned implements [ratelimit.JailPeers]: it queues the lifting of b.
func (s *Bans) Unbanned(b ratelimit.Ban, at time.Time) {
	until := b.Until
	if keep := at.Add(liftedKeep); until.Before(keep) {
		until = keep
	}
	s.queue(banRecord{Key: b.Key.String(), Until: until, Reason: b.Reason, At: at, Lifted: true, By: s.n.instance}, b.Key)
}

func (s *Bans) queue(r banRecord, k ratelimit.Key) {
	s.mu.Lock()
	if old, ok := s.pending[k]; !ok || !old.At.After(r.At) {
		s.pending[k] = r
	}
	s.mu.Unlock()
	s.wake()
}

// Struck implements [ratelimit.JailPeers]: it queues the strike.
func (s *Bans) Struck(k ratelimit.Key, reason string, at time.Time) {
	s.mu.Lock()
	if len(s.strikes) >= maxStrikeQueue {
		s.mu.Unlock()
		s.n.metrics.strikesLost.Inc()
		return
	}
	s.strikes = append(s.strikes, strike{key: k, reason: reason, at: at})
	s.mu.Unlock()
	s.wake()
}

func (s *Bans) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Pending returns the number of changes not yet written to Redis.
func (s *Bans) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Run writes the journal and the strikes as they come, applies the other
// instances' changes to j as they are published, and every BanSync
// period checks the version and reads the whole hash when it changed,
// until ctx ends. j must have been made with s as its Peers. The caller
// owns the goroutine.
func (s *Bans) Run(ctx context.Context, j *ratelimit.Jail) error {
	sub := s.n.rdb.Subscribe(ctx, s.n.key("bans"))
	defer sub.Close()
	msgs := sub.Channel()
	tick := time.NewTicker(s.n.banSync)
	defer tick.Stop()
	version := int64(-1)
	var lastFull time.Time
	sync := func() {
		force := time.Since(lastFull) >= fullSyncEvery
		if s.sync(ctx, j, &version, force) && force {
			lastFull = time.Now()
		}
	}
	sync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			s.receive(j, m.Payload)
		case <-s.kick:
			s.flush(ctx, j)
		case <-tick.C:
			s.flush(ctx, j)
			sync()
		}
	}
}

// receive applies one published change of another instance.
func (s *Bans) receive(j *ratelimit.Jail, payload string) {
	var r banRecord
	if err := json.Unmarshal([]byte(payload), &r); err != nil {
		s.n.warn("cluster: bad ban message ignored", "err", err)
		return
	}
	if r.By == s.n.instance {
		return
	}
	s.apply(j, r, s.n.now())
}

// apply puts r in j; it reports whether j changed.
func (s *Bans) apply(j *ratelimit.Jail, r banRecord, now time.Time) bool {
	k, err := ratelimit.ParseKey(r.Key, 0)
	if err != nil || k.String() != r.Key {
		s.n.warn("cluster: ban with a bad key ignored", "key", r.Key)
		return false
	}
	var changed bool
	if r.Lifted {
		changed = j.ApplyUnban(k, r.At, r.By)
	} else {
		changed = j.ApplyBan(ratelimit.Ban{Key: k, Since: r.Since, Until: r.Until, Reason: r.Reason}, r.By, now)
	}
	if changed {
		s.n.metrics.bansApplied.Inc()
		s.n.metrics.banLag.Observe(max(now.Sub(r.At), 0).Seconds())
	}
	return changed
}

// flush writes the journal and the strikes.
func (s *Bans) flush(ctx context.Context, j *ratelimit.Jail) {
	s.flushBans(ctx)
	s.flushStrikes(ctx, j)
}

// flushBans writes the journal: the records of the keys concerned are
// read first, a change older than what the hash holds is dropped (the
// newer change stands), the others are written, the version bumped and
// the changes published. On failure the journal is kept for the next
// try.
func (s *Bans) flushBans(ctx context.Context) {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	batch := s.pending
	s.pending = map[ratelimit.Key]banRecord{}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	err := s.write(ctx, batch)
	s.n.metrics.observe(opBans, start, err)
	if err != nil {
		s.n.warn("cluster: bans not shared yet (kept, sent when Redis answers)", "pending", len(batch), "err", err)
		s.mu.Lock()
		for k, r := range batch {
			if cur, ok := s.pending[k]; !ok || !cur.At.After(r.At) {
				s.pending[k] = r
			}
		}
		s.mu.Unlock()
	}
}

func (s *Bans) write(ctx context.Context, batch map[ratelimit.Key]banRecord) error {
	hash := s.n.key("bans")
	fields := make([]string, 0, len(batch))
	recs := make([]banRecord, 0, len(batch))
	for _, r := range batch {
		fields = append(fields, r.Key)
		recs = append(recs, r)
	}
	cur, err := s.n.rdb.HMGet(ctx, hash, fields...).Result()
	if err != nil {
		return err
	}
	pipe := s.n.rdb.TxPipeline()
	written := 0
	for i, r := range recs {
		if v, ok := cur[i].(string); ok {
			var old banRecord
			if json.Unmarshal([]byte(v), &old) == nil && old.At.After(r.At) {
				continue // a later change on another instance stands
			}
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		pipe.HSet(ctx, hash, r.Key, b)
		pipe.Publish(ctx, hash, b)
		written++
	}
	if written == 0 {
		return nil
	}
	pipe.Incr(ctx, s.n.key("bans", "version"))
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	s.n.metrics.bansPublished.Add(float64(written))
	return nil
}

// flushStrikes shares the queued strikes and hands each key's count in
// the cluster to j. On failure the strikes are kept (they carry their
// time, so a late count is still right).
func (s *Bans) flushStrikes(ctx context.Context, j *ratelimit.Jail) {
	s.mu.Lock()
	if len(s.strikes) == 0 {
		s.mu.Unlock()
		return
	}
	batch := s.strikes
	s.strikes = nil
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	window, keep := j.FindTime(), int64(j.MaxRetry())
	start := time.Now()
	pipe := s.n.rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(batch))
	for i, st := range batch {
		k := s.n.key("strikes", st.key.String())
		member := s.n.instance + ":" + strconv.FormatUint(s.seq.Add(1), 36)
		pipe.ZAdd(ctx, k, redis.Z{Score: float64(st.at.UnixMilli()), Member: member})
		pipe.ZRemRangeByScore(ctx, k, "-inf", "("+strconv.FormatInt(st.at.Add(-window).UnixMilli(), 10))
		pipe.ZRemRangeByRank(ctx, k, 0, -keep-1)
		counts[i] = pipe.ZCard(ctx, k)
		pipe.PExpire(ctx, k, window)
	}
	_, err := pipe.Exec(ctx)
	s.n.metrics.observe(opStrikes, start, err)
	if err != nil {
		s.mu.Lock()
		if room := maxStrikeQueue - len(s.strikes); room > 0 {
			s.strikes = append(batch[:min(len(batch), room):min(len(batch), room)], s.strikes...)
		}
		s.mu.Unlock()
		return
	}
	now := s.n.now()
	last := map[ratelimit.Key]int{}
	for i, st := range batch {
		last[st.key] = i
	}
	for k, i := range last {
		j.SharedStrikes(k, batch[i].reason, int(counts[i].Val()), now)
	}
}

// sync reads the version and, when it changed or force is set, the whole
// hash: every record is applied to j (the later change wins), records
// that ended are removed, and bans j holds that the hash lacks, or holds
// an older change of, are queued to be written (a Redis that lost its
// data gets them back; so do bans made before this instance joined). It
// reports whether the hash was read.
func (s *Bans) sync(ctx context.Context, j *ratelimit.Jail, version *int64, force bool) bool {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	v, err := s.n.rdb.Get(ctx, s.n.key("bans", "version")).Int64()
	if errors.Is(err, redis.Nil) {
		v, err = 0, nil
	}
	if err != nil {
		s.n.metrics.observe(opBans, start, err)
		return false
	}
	if v == *version && !force {
		s.n.metrics.observe(opBans, start, nil)
		return false
	}
	all, err := s.n.rdb.HGetAll(ctx, s.n.key("bans")).Result()
	s.n.metrics.observe(opBans, start, err)
	if err != nil {
		s.n.warn("cluster: reading the bans failed", "err", err)
		return false
	}
	now := s.n.now()
	remote := make(map[ratelimit.Key]banRecord, len(all))
	var ended []string
	for field, val := range all {
		var r banRecord
		if err := json.Unmarshal([]byte(val), &r); err != nil || r.Key != field {
			s.n.warn("cluster: bad ban record ignored", "key", field)
			continue
		}
		if !now.Before(r.Until) {
			ended = append(ended, field)
			continue
		}
		k, err := ratelimit.ParseKey(r.Key, 0)
		if err != nil {
			continue
		}
		remote[k] = r
		s.apply(j, r, now)
	}
	s.mu.Lock()
	for _, b := range j.List(now) {
		r, ok := remote[b.Key]
		if _, queued := s.pending[b.Key]; queued || (ok && !r.At.Before(b.Since)) {
			continue
		}
		// Unknown to the hash, or newer than its record.
		s.pending[b.Key] = banRecord{Key: b.Key.String(), Since: b.Since, Until: b.Until, Reason: b.Reason, At: b.Since, By: s.n.instance}
	}
	queued := len(s.pending) > 0
	s.mu.Unlock()
	if len(ended) > 0 {
		if err := s.n.rdb.HDel(ctx, s.n.key("bans"), ended...).Err(); err != nil {
			s.n.warn("cluster: removing ended bans failed", "err", err)
		}
	}
	*version = v
	if queued {
		s.wake()
	}
	return true
}

// String describes r for logs.
func (r banRecord) String() string {
	if r.Lifted {
		return fmt.Sprintf("%s lifted at %s by %s", r.Key, r.At.Format(time.RFC3339), r.By)
	}
	return fmt.Sprintf("%s banned until %s by %s", r.Key, r.Until.Format(time.RFC3339), r.By)
}

var _ ratelimit.JailPeers = (*Bans)(nil)

// strikesQueued returns the number of strikes waiting (tests).
func (s *Bans) strikesQueued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.strikes)
}
