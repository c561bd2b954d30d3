package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

var client1 = ratelimit.KeyOf(netip.MustParseAddr("192.0.2.1"), 0)

// TestLimiterSharesOneBudget: two instances (two Nodes) draw from one
// budget: a burst of 5 is 5 requests between them, not 5 each, and a
// refused request is told when to come back.
func TestLimiterSharesOneBudget(t *testing.T) {
	r := startRedis(t)
	a, _ := newNode(t, r, "a", nil)
	b, _ := newNode(t, r, "b", nil)
	la, lb := a.Limiter(), b.Limiter()
	ok := 0
	for i := range 10 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		qs := []ratelimit.SharedQuery{{Zone: "api", Rate: 0.1, Burst: 5, Key: client1}}
		l.AllowShared(context.Background(), qs)
		if qs[0].Fallback {
			t.Fatalf("request %d fell back; Redis is up", i)
		}
		if qs[0].OK {
			ok++
		} else if qs[0].RetryAfter <= 0 || qs[0].RetryAfter > 10*time.Second {
			t.Errorf("refused with RetryAfter %v, want (0, 10s] at 0.1 r/s", qs[0].RetryAfter)
		}
	}
	if ok != 5 {
		t.Errorf("%d of 10 requests allowed across two instances, want the burst of 5", ok)
	}
	// Another key and another zone have budgets of their own.
	qs := []ratelimit.SharedQuery{
		{Zone: "api", Rate: 0.1, Burst: 5, Key: ratelimit.KeyOf(netip.MustParseAddr("192.0.2.2"), 0)},
		{Zone: "login", Rate: 0.1, Burst: 1, Key: client1},
		{Zone: "api", Rate: 0.1, Burst: 5, Key: client1},
	}
	la.AllowShared(context.Background(), qs)
	if !qs[0].OK || !qs[1].OK || qs[2].OK {
		t.Errorf("batch = %+v; want the other key and the other zone allowed, the spent key refused", qs)
	}
}

// TestLimiterOneRoundTrip: the zones of one request go to Redis in one
// pipeline (one read of the connection), counted by the server as one
// EVALSHA per zone.
func TestLimiterOneRoundTrip(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", nil)
	l := n.Limiter()
	qs := []ratelimit.SharedQuery{{Zone: "z1", Rate: 10, Burst: 10, Key: client1}, {Zone: "z2", Rate: 10, Burst: 10, Key: client1}, {Zone: "z3", Rate: 10, Burst: 10, Key: client1}}
	l.AllowShared(context.Background(), qs) // loads the script (NOSCRIPT, then EVAL)
	var rounds int
	hook := &countHook{}
	n.rdb.AddHook(hook)
	l.AllowShared(context.Background(), qs)
	rounds = hook.pipelines + hook.single
	if rounds != 1 || hook.pipelineCmds != 3 {
		t.Errorf("%d round trips (%d pipelines of %d commands, %d single), want 1 pipeline of 3", rounds, hook.pipelines, hook.pipelineCmds, hook.single)
	}
	for _, q := range qs {
		if !q.OK || q.Fallback {
			t.Errorf("%+v: want allowed by Redis", q)
		}
	}
}

type countHook struct{ pipelines, pipelineCmds, single int }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.single++
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines++
		h.pipelineCmds += len(cmds)
		return next(ctx, cmds)
	}
}

// TestLimiterScriptFlushed: after SCRIPT FLUSH (or a restart) the
// decision still comes from Redis: the library sends the script again.
func TestLimiterScriptFlushed(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", nil)
	l := n.Limiter()
	for range 2 {
		if err := r.client().ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		qs := []ratelimit.SharedQuery{{Zone: "z", Rate: 1, Burst: 1, Key: client1}, {Zone: "y", Rate: 1, Burst: 1, Key: client1}}
		l.AllowShared(context.Background(), qs)
		if qs[0].Fallback || qs[1].Fallback {
			t.Fatalf("fell back after SCRIPT FLUSH: %+v", qs)
		}
	}
}

// TestLimiterFallsBackAndRecovers: with Redis gone, decisions come at
// once from a local bucket at rate/N (N live instances, here 2 from the
// heartbeats), counted in the fallback metric; when Redis is back they
// come from Redis again without any help.
func TestLimiterFallsBackAndRecovers(t *testing.T) {
	r := startRedis(t)
	n, reg := newNode(t, r, "a", func(o *Options) { o.Timeout = 20 * time.Millisecond })
	other, _ := newNode(t, r, "b", nil)
	other.beat(context.Background())
	n.beat(context.Background())
	if n.Live() != 2 {
		t.Fatalf("Live = %d after two heartbeats, want 2", n.Live())
	}
	l := n.Limiter()
	r.stop()
	fallbacks := func() float64 { return testutil.ToFloat64(n.metrics.fallbacks.WithLabelValues("api")) }
	allowed := 0
	for i := range 40 {
		qs := []ratelimit.SharedQuery{{Zone: "api", Rate: 0.2, Burst: 6, Key: client1}}
		start := time.Now()
		l.AllowShared(context.Background(), qs)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("decision %d took %v with Redis down; the budget is 20ms", i, d)
		}
		if !qs[0].Fallback {
			t.Fatalf("decision %d did not fall back with Redis down", i)
		}
		if qs[0].OK {
			allowed++
		}
	}
	// Burst 6 over 2 instances: 3 here.
	if allowed != 3 {
		t.Errorf("fallback allowed %d requests, want the burst over 2 instances, 3", allowed)
	}
	if rate, burst, _ := l.FallbackRate("api"); rate != 0.1 || burst != 3 {
		t.Errorf("fallback rate %v burst %d, want 0.1 and 3", rate, burst)
	}
	if got := fallbacks(); got != 40 {
		t.Errorf("fallbacks metric = %v, want 40", got)
	}
	if v := gaugeValue(t, reg, "gatehouse_cluster_redis_up"); v != 0 {
		t.Errorf("gatehouse_cluster_redis_up = %v with Redis down, want 0", v)
	}

	r.start()
	waitFor(t, 10*time.Second, "decisions from Redis again", func() bool {
		qs := []ratelimit.SharedQuery{{Zone: "api2", Rate: 100, Burst: 100, Key: client1}}
		l.AllowShared(context.Background(), qs)
		return !qs[0].Fallback
	})
	if v := gaugeValue(t, reg, "gatehouse_cluster_redis_up"); v != 1 {
		t.Errorf("gatehouse_cluster_redis_up = %v after recovery, want 1", v)
	}
}

// gaugeValue reads the value of an unlabelled gauge or counter.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			m := mf.Metric[0]
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
