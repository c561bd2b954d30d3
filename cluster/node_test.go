package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// TestNodeHeartbeats: running instances see each other (name, address,
// version, config hash); one that stops leaves the live count after 3
// heartbeats and is still listed, not live.
func TestNodeHeartbeats(t *testing.T) {
	r := startRedis(t)
	a, _ := newNode(t, r, "a", func(o *Options) { o.Version = "v1"; o.Listeners = map[string]string{"https": ":443"} })
	a.SetConfigHash("hash-a")
	b, _ := newNode(t, r, "b", func(o *Options) { o.Version = "v2" })
	runNode(t, a)
	ctx, stopB := context.WithCancel(context.Background())
	bDone := make(chan struct{})
	go func() { defer close(bDone); b.Run(ctx) }()
	waitFor(t, 5*time.Second, "two live instances", func() bool { return a.Live() == 2 && b.Live() == 2 })
	list, err := a.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || !list[0].Self || list[0].ConfigHash != "hash-a" || list[0].Version != "v1" ||
		list[0].Addr != "127.0.0.1" || list[0].Listeners["https"] != ":443" || list[1].Name != "b" || list[1].Self || !list[1].Live {
		t.Fatalf("Instances = %+v", list)
	}
	stopB()
	<-bDone
	waitFor(t, 5*time.Second, "b no longer counted", func() bool { return a.Live() == 1 })
	list, _ = a.Instances(context.Background())
	if len(list) != 2 || list[1].Name != "b" || list[1].Live {
		t.Errorf("after b stopped: %+v; want b listed, not live", list)
	}
}

// BenchmarkLimiterDecision is one request's cluster rate-limit decision
// against a local redis-server: one zone, and three zones in one
// pipeline.
func BenchmarkLimiterDecision(b *testing.B) {
	r := startRedis(b)
	n, _ := newNode(b, r, "bench", nil)
	l := n.Limiter()
	// The round trip alone, for comparison.
	b.Run("ping", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := n.Ping(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, zones := range []int{1, 3} {
		b.Run(map[int]string{1: "1zone", 3: "3zones"}[zones], func(b *testing.B) {
			qs := make([]ratelimit.SharedQuery, zones)
			names := []string{"api", "login", "pages"}
			b.ReportAllocs()
			for b.Loop() {
				for i := range qs {
					qs[i] = ratelimit.SharedQuery{Zone: names[i], Rate: 1e6, Burst: 1e6, Key: client1}
				}
				l.AllowShared(context.Background(), qs)
				if qs[0].Fallback {
					b.Fatal("fell back")
				}
			}
		})
	}
}

// TestNodeRecoversWithoutTraffic: after Redis failed, a heartbeat that
// succeeds closes the breaker, so gatehouse_cluster_redis_up is 1 again
// and the next request asks Redis, even when no request came meanwhile.
func TestNodeRecoversWithoutTraffic(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", func(o *Options) { o.Timeout = 20 * time.Millisecond })
	r.stop()
	qs := []ratelimit.SharedQuery{{Zone: "z", Rate: 1, Burst: 1, Key: client1}}
	for range breakerFailures {
		n.Limiter().AllowShared(context.Background(), qs)
	}
	if n.Up() {
		t.Fatal("Up after three failed decisions")
	}
	r.start()
	n.beat(context.Background())
	if !n.Up() || !n.available(time.Now()) {
		t.Error("a successful heartbeat did not close the breaker")
	}
}
