package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Limiter decides requests of rate-limit zones of scope "cluster": one
// budget per zone and client key, shared by every instance, kept in Redis
// with GCRA (the generic cell rate algorithm of ATM networks, ITU-T
// I.371: a "theoretical arrival time" per key, in Redis's clock) by
// github.com/go-redis/redis_rate. It implements
// [ratelimit.SharedLimiter]; get it from [Node.Limiter].
//
// Fallback: a decision that cannot reach Redis within the Node's Timeout
// (or while the Node's breaker is open) is taken by a local
// [ratelimit.Zone] at the zone's rate divided by the live instances (and
// its burst likewise, rounded up), so that the cluster as a whole stays
// near its budget while every instance decides alone. The fallback
// buckets are separate from Redis's: when Redis is back, decisions come
// from Redis again at once.
type Limiter struct {
	n *Node

	mu        sync.Mutex
	fallbacks map[string]*fallback
}

type fallback struct {
	z         *ratelimit.Zone
	rate      float64 // the cluster's rate and burst the bucket was made for
	burst     int
	instances int
	counter   prometheus.Counter
}

// Limiter returns the Node's limiter (one per Node).
func (n *Node) Limiter() *Limiter {
	return &Limiter{n: n, fallbacks: map[string]*fallback{}}
}

// AllowShared implements [ratelimit.SharedLimiter]: every query is sent in
// one pipeline, bounded by the latency budget, and decided from the local
// fallback when that fails.
func (l *Limiter) AllowShared(ctx context.Context, qs []ratelimit.SharedQuery) {
	if len(qs) == 0 {
		return
	}
	now := time.Now()
	if !l.n.available(now) {
		l.fallback(qs, now)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.n.timeout)
	err := l.decide(ctx, qs)
	cancel()
	l.n.metrics.observe(opRateLimit, now, err)
	l.n.result(err, now)
	if err != nil {
		l.n.warn("cluster: rate-limit decisions fall back to local buckets", "err", err)
		l.fallback(qs, now)
	}
}

// decide asks Redis, one round trip for all of qs.
//
// redis_rate runs its GCRA script with one round trip per call and
// parses the reply itself. To send several zones' calls in one
// pipeline, each call is made twice: first against a recorder, which
// notes the script call it would send and fails it, then, once the
// pipeline of every noted call has run, against a replayer that hands it
// its reply. (A cache flush on the server makes a reply NOSCRIPT; the
// library then sends the script itself, which the replayer passes to
// the server: one more round trip, once.)
func (l *Limiter) decide(ctx context.Context, qs []ratelimit.SharedQuery) error {
	rec := &scriptCalls{}
	for i := range qs {
		if _, err := redis_rate.NewLimiter(rec).Allow(ctx, l.n.key("rl", qs[i].Zone, qs[i].Key.String()), limitOf(qs[i])); !errors.Is(err, errRecorded) {
			return fmt.Errorf("cluster: rate limit: unexpected call: %w", err)
		}
	}
	pipe := l.n.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(rec.calls))
	for i, c := range rec.calls {
		cmds[i] = pipe.EvalSha(ctx, c.sha, c.keys, c.args...)
	}
	// A NOSCRIPT reply fails Exec too; the replay below handles it.
	if _, err := pipe.Exec(ctx); err != nil && !isNoScript(err) {
		return err
	}
	rep := &scriptReplies{rdb: l.n.rdb, cmds: cmds}
	for i := range qs {
		res, err := redis_rate.NewLimiter(rep).Allow(ctx, l.n.key("rl", qs[i].Zone, qs[i].Key.String()), limitOf(qs[i]))
		if err != nil {
			return err
		}
		qs[i].OK = res.Allowed > 0
		qs[i].RetryAfter = max(res.RetryAfter, 0)
		qs[i].Fallback = false
		if !qs[i].OK && qs[i].RetryAfter == 0 {
			qs[i].RetryAfter = time.Millisecond
		}
	}
	return nil
}

// limitOf is q's budget for redis_rate: one request per 1/Rate seconds
// (the emission interval), Burst at once.
func limitOf(q ratelimit.SharedQuery) redis_rate.Limit {
	return redis_rate.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / q.Rate), Burst: max(q.Burst, 1)}
}

// fallback decides qs from the local buckets.
func (l *Limiter) fallback(qs []ratelimit.SharedQuery, now time.Time) {
	live := l.n.Live()
	for i := range qs {
		q := &qs[i]
		f := l.fallbackFor(q, live, now)
		f.counter.Inc()
		ok, _, retry := f.z.AllowAt(q.Key, now)
		q.OK, q.RetryAfter, q.Fallback = ok, retry, true
	}
}

// fallbackFor returns the local bucket set of q's zone, made or retuned
// for the cluster's rate over live instances.
func (l *Limiter) fallbackFor(q *ratelimit.SharedQuery, live int, now time.Time) *fallback {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fallbacks[q.Zone]
	rate := q.Rate / float64(live)
	burst := int(math.Ceil(float64(max(q.Burst, 1)) / float64(live)))
	if f == nil {
		z, err := ratelimit.NewZone(ratelimit.ZoneOptions{Name: q.Zone, Rate: rate, Burst: burst})
		if err != nil {
			// The rate was valid for the config; only a rate of 0 from
			// a caller's bug gets here. Refuse nothing rather than panic.
			z, _ = ratelimit.NewZone(ratelimit.ZoneOptions{Name: q.Zone, Rate: math.MaxFloat64, Burst: 1})
		}
		f = &fallback{z: z, rate: q.Rate, burst: q.Burst, instances: live, counter: l.n.metrics.fallbacks.WithLabelValues(q.Zone)}
		l.fallbacks[q.Zone] = f
		return f
	}
	if f.rate != q.Rate || f.burst != q.Burst || f.instances != live {
		if f.z.Retune(rate, burst, now) == nil {
			f.rate, f.burst, f.instances = q.Rate, q.Burst, live
		}
	}
	return f
}

// FallbackRate returns the rate (requests per second) and burst the
// local fallback of zone decides with now, and false when zone has not
// fallen back yet.
func (l *Limiter) FallbackRate(zone string) (rate float64, burst int, ok bool) {
	l.mu.Lock()
	f := l.fallbacks[zone]
	l.mu.Unlock()
	if f == nil {
		return 0, 0, false
	}
	r, b := f.z.Limits()
	return r, b, true
}

// errRecorded fails a script call that was only noted.
var errRecorded = errors.New("cluster: script call recorded")

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

type scriptCall struct {
	sha  string
	keys []string
	args []any
}

// scriptCalls notes script calls (the first pass of decide). It has the
// methods redis_rate's client interface asks for; only EvalSha is called.
type scriptCalls struct {
	calls []scriptCall
}

func (r *scriptCalls) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	r.calls = append(r.calls, scriptCall{sha: sha1, keys: keys, args: args})
	return redis.NewCmdResult(nil, errRecorded)
}

func (r *scriptCalls) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return redis.NewCmdResult(nil, errRecorded)
}

func (r *scriptCalls) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return redis.NewCmdResult(nil, errRecorded)
}

func (r *scriptCalls) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return redis.NewCmdResult(nil, errRecorded)
}

func (r *scriptCalls) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return redis.NewBoolSliceResult(nil, errRecorded)
}

func (r *scriptCalls) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return redis.NewStringResult("", errRecorded)
}

func (r *scriptCalls) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return redis.NewIntResult(0, errRecorded)
}

// scriptReplies hands the pipeline's replies to the second pass of decide,
// in order; a script the server no longer has is sent by the library and
// passed to the server.
type scriptReplies struct {
	rdb  *redis.Client
	cmds []*redis.Cmd
	next int
}

func (r *scriptReplies) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	if r.next >= len(r.cmds) {
		return redis.NewCmdResult(nil, errors.New("cluster: more script calls than replies"))
	}
	c := r.cmds[r.next]
	r.next++
	return c
}

func (r *scriptReplies) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.rdb.Eval(ctx, script, keys, args...)
}

func (r *scriptReplies) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.rdb.EvalRO(ctx, script, keys, args...)
}

func (r *scriptReplies) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.rdb.EvalShaRO(ctx, sha1, keys, args...)
}

func (r *scriptReplies) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return r.rdb.ScriptExists(ctx, hashes...)
}

func (r *scriptReplies) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return r.rdb.ScriptLoad(ctx, script)
}

func (r *scriptReplies) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return r.rdb.Del(ctx, keys...)
}

var _ ratelimit.SharedLimiter = (*Limiter)(nil)
