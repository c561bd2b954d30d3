package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// TestACLOfTheDocs: the ACL user of docs/cluster.md and
// deploy/cluster/valkey.container (own keys and channel, no dangerous
// commands, default user off) is enough for everything Gatehouse does:
// heartbeats, the instance list, rate limits, bans, strikes, storage and
// locks, with the password from Options.
func TestACLOfTheDocs(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "users.acl")
	if err := os.WriteFile(acl, []byte("user default off\n"+
		"user gatehouse on >s3cret ~gatehouse:* ~rate:gatehouse:* &gatehouse:* +@read +@write +@keyspace +@scripting +@pubsub +@connection +@transaction +time -@dangerous\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRedis(t, "--aclfile", acl)
	n, _ := newNode(t, r, "a", func(o *Options) { o.Username, o.Password = "gatehouse", "s3cret" })
	ctx := context.Background()
	n.beat(ctx)
	if !n.Up() {
		t.Fatal("heartbeat failed under the ACL")
	}
	if _, err := n.Instances(ctx); err != nil {
		t.Error(err)
	}
	qs := []ratelimit.SharedQuery{{Zone: "z", Rate: 1, Burst: 1, Key: client1}}
	n.Limiter().AllowShared(ctx, qs)
	if qs[0].Fallback {
		t.Error("rate limit fell back under the ACL")
	}
	s := n.Storage(t.TempDir())
	if err := s.Store(ctx, "certificates/x/x.crt", []byte("v")); err != nil {
		t.Error(err)
	}
	if _, err := s.List(ctx, "certificates", true); err != nil {
		t.Error(err)
	}
	if err := s.Lock(ctx, "l"); err != nil {
		t.Error(err)
	} else if err := s.Unlock(ctx, "l"); err != nil {
		t.Error(err)
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Error(err)
	}
	bn, _ := newNode(t, r, "c", func(o *Options) { o.Username, o.Password = "gatehouse", "s3cret" })
	b := bn.Bans()
	jail := ratelimit.NewJail(ratelimit.JailOptions{Peers: b, MaxRetry: 2})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.Run(rctx, jail) }()
	defer func() { cancel(); <-done }()
	k, _ := ratelimit.ParseKey("192.0.2.77", 0)
	if err := jail.Ban(k, time.Hour, "acl"); err != nil {
		t.Fatal(err)
	}
	jail.RecordAt(ratelimit.AddrKey(client1.Prefix().Addr()), "429", time.Now())
	// A flush that fails is retried at the next sync tick; under a loaded
	// CI machine that can take a few ticks, so the wait is generous and a
	// failure says where the flush stood.
	deadline := time.Now().Add(15 * time.Second)
	for b.Pending() != 0 || b.strikesQueued() != 0 || testutil.ToFloat64(bn.metrics.bansPublished) != 1 {
		if time.Now().After(deadline) {
			errs := map[string]float64{}
			for op, c := range bn.metrics.errors {
				errs[op] = testutil.ToFloat64(c)
			}
			t.Fatalf("the ban and strike were not written under the ACL within 15s: %d bans pending, %d strikes queued, %v published, errors %v",
				b.Pending(), b.strikesQueued(), testutil.ToFloat64(bn.metrics.bansPublished), errs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, node := range []*Node{n, bn} {
		for op, c := range node.metrics.errors {
			if v := testutil.ToFloat64(c); v != 0 {
				t.Errorf("%s: %v errors of %s under the ACL", node.instance, v, op)
			}
		}
	}
}
