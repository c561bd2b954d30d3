package cluster

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// instanceJail is one instance's jail wired to its Node's Bans, with
// Run going until Cleanup.
type instanceJail struct {
	n    *Node
	bans *Bans
	jail *ratelimit.Jail
}

func startJail(t *testing.T, r *redisServer, name string, o ratelimit.JailOptions) *instanceJail {
	t.Helper()
	n, _ := newNode(t, r, name, nil)
	s := n.Bans()
	o.Peers = s
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "bans.json")
	}
	j := ratelimit.NewJail(o)
	if err := j.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { s.Run(ctx, j); done <- struct{}{} }()
	go func() { j.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	return &instanceJail{n: n, bans: s, jail: j}
}

func (ij *instanceJail) banned(a string) bool {
	b, _ := ij.jail.BannedAt(ratelimit.AddrKey(netip.MustParseAddr(a)), time.Now())
	return b
}

// TestBansPropagate: a ban on one instance is enforced by the others
// within a second (pub/sub), and lifting it on another lifts it
// everywhere; the receivers keep it in their own bans files.
func TestBansPropagate(t *testing.T) {
	r := startRedis(t)
	a := startJail(t, r, "a", ratelimit.JailOptions{})
	b := startJail(t, r, "b", ratelimit.JailOptions{})
	c := startJail(t, r, "c", ratelimit.JailOptions{})
	k, _ := ratelimit.ParseKey("203.0.113.0/24", 0)
	if err := a.jail.Ban(k, time.Hour, "admin"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, time.Second, "the ban on a enforced by b and c", func() bool {
		return b.banned("203.0.113.7") && c.banned("203.0.113.200")
	})
	t.Logf("ban reached b and c in %v", time.Since(start))
	if found, err := c.jail.Unban(k); !found || err != nil {
		t.Fatalf("Unban on c: %v %v", found, err)
	}
	waitFor(t, time.Second, "the unban on c lifting the ban on a and b", func() bool {
		return !a.banned("203.0.113.7") && !b.banned("203.0.113.7")
	})
}

// TestBansJournalWhileRedisDown: bans and unbans made while Redis is down
// are kept and reach the others once it is back (here a Redis that lost
// everything, as one without persistence does on restart), and bans made
// before the outage are written back too.
func TestBansJournalWhileRedisDown(t *testing.T) {
	r := startRedis(t)
	a := startJail(t, r, "a", ratelimit.JailOptions{})
	b := startJail(t, r, "b", ratelimit.JailOptions{})
	before, _ := ratelimit.ParseKey("198.51.100.1", 0)
	if err := a.jail.Ban(before, time.Hour, "before"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "first ban on b", func() bool { return b.banned("198.51.100.1") })

	r.stop()
	during, _ := ratelimit.ParseKey("198.51.100.2", 0)
	if err := a.jail.Ban(during, time.Hour, "during"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the ban journalled on a", func() bool { return a.bans.Pending() == 1 })
	if b.banned("198.51.100.2") {
		t.Fatal("b knows a ban made while Redis was down")
	}
	r.start()
	waitFor(t, 10*time.Second, "the ban made during the outage reaching b", func() bool { return b.banned("198.51.100.2") })
	// The restarted Redis lost the first ban; the instances wrote it back.
	waitFor(t, 10*time.Second, "the ban from before the outage back in Redis", func() bool {
		n, _ := r.client().HExists(context.Background(), a.n.key("bans"), "198.51.100.1/32").Result()
		return n
	})
	// A third instance joining now learns both.
	c := startJail(t, r, "c", ratelimit.JailOptions{})
	waitFor(t, 2*time.Second, "c learning both bans", func() bool { return c.banned("198.51.100.1") && c.banned("198.51.100.2") })
}

// TestBansRepairWithoutPubSub: a change whose message an instance missed
// (written straight to the hash, as if the subscription had dropped it)
// arrives through the version check.
func TestBansRepairWithoutPubSub(t *testing.T) {
	r := startRedis(t)
	a := startJail(t, r, "a", ratelimit.JailOptions{})
	now := time.Now()
	rec := `{"key":"192.0.2.9/32","since":"` + now.Format(time.RFC3339Nano) + `","until":"` + now.Add(time.Hour).Format(time.RFC3339Nano) + `","at":"` + now.Format(time.RFC3339Nano) + `","by":"elsewhere"}`
	rc := r.client()
	if err := rc.HSet(context.Background(), a.n.key("bans"), "192.0.2.9/32", rec).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Incr(context.Background(), a.n.key("bans", "version")).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the ban found by the version check", func() bool { return a.banned("192.0.2.9") })
}

// TestBansStrikesCountAcrossInstances: strikes against one client on
// three instances add up: MaxRetry of them in the cluster ban it
// everywhere, although no instance saw MaxRetry itself.
func TestBansStrikesCountAcrossInstances(t *testing.T) {
	r := startRedis(t)
	o := ratelimit.JailOptions{MaxRetry: 6}
	js := []*instanceJail{startJail(t, r, "a", o), startJail(t, r, "b", o), startJail(t, r, "c", o)}
	k := ratelimit.AddrKey(netip.MustParseAddr("192.0.2.50"))
	for i := range 6 {
		js[i%3].jail.RecordAt(k, "429", time.Now())
		// Let each strike be written before the next (the order matters
		// only for the log; the count is what is tested).
		waitFor(t, 2*time.Second, "strike written", func() bool { return js[i%3].bans.strikesQueued() == 0 })
	}
	waitFor(t, 2*time.Second, "the client banned on every instance", func() bool {
		return js[0].banned("192.0.2.50") && js[1].banned("192.0.2.50") && js[2].banned("192.0.2.50")
	})
	// Two strikes each did not ban it locally.
	for _, j := range js {
		if j.jail.Tracked() > 2 {
			t.Errorf("%s tracks %d strikes", j.n.instance, j.jail.Tracked())
		}
	}
}
