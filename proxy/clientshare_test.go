package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

func TestClientShares(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cs clientShares
		ctx := t.Context()
		k := shareKey{"app", ratelimit.KeyOf(netip.MustParseAddr("2001:db8::1"), 64)}
		sameClient := shareKey{"app", ratelimit.KeyOf(netip.MustParseAddr("2001:db8::2"), 64)} // same /64
		other := shareKey{"app", ratelimit.KeyOf(netip.MustParseAddr("192.0.2.1"), 64)}

		for i := range 2 {
			if err := cs.acquire(ctx, k, 2, 2, 5*time.Second); err != nil {
				t.Fatalf("place %d of 2: %v", i+1, err)
			}
		}
		// Two more wait, in order; a fifth is refused at once.
		got := make(chan int, 2)
		errs := make(chan error, 2)
		for i := 3; i <= 4; i++ {
			go func() {
				err := cs.acquire(ctx, sameClient, 2, 2, 5*time.Second)
				if err == nil {
					got <- i
				} else {
					errs <- err
				}
			}()
			synctest.Wait()
		}
		if err := cs.acquire(ctx, k, 2, 2, 5*time.Second); !errors.Is(err, errShareFull) {
			t.Fatalf("fifth request of the client: %v, want errShareFull", err)
		}
		if err := cs.acquire(ctx, other, 2, 2, 5*time.Second); err != nil {
			t.Fatalf("another client: %v, want a place", err)
		}
		if held, waiting := cs.count(k); held != 2 || waiting != 2 {
			t.Fatalf("held %d waiting %d, want 2, 2", held, waiting)
		}
		cs.release(k)
		synctest.Wait()
		if first := <-got; first != 3 {
			t.Fatalf("first waiter served: %d, want 3", first)
		}
		// The fourth times out after 5 s.
		start := time.Now()
		if err := <-errs; !errors.Is(err, errShareWait) || time.Since(start) != 5*time.Second {
			t.Fatalf("fourth waiter: %v after %v, want errShareWait after 5s", err, time.Since(start))
		}
		// A waiter whose client goes away leaves the line.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cs.acquire(cctx, k, 2, 2, time.Minute) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		// No queue: over the share is refused at once.
		if err := cs.acquire(ctx, k, 2, 0, time.Minute); !errors.Is(err, errShareFull) {
			t.Fatalf("no queue: %v, want errShareFull", err)
		}
		cs.release(k)
		cs.release(k)
		cs.release(other)
		if len(cs.held) != 0 || len(cs.waiters) != 0 {
			t.Errorf("entries left after every release: held %v waiters %v", cs.held, cs.waiters)
		}
	})
}

func TestClientLimit(t *testing.T) {
	for _, c := range []struct {
		maxConns []int
		share    string
		want     int
	}{
		{[]int{4}, "0.5", 2},
		{[]int{100, 100}, "0.5", 100},
		{[]int{3}, "0.5", 1},
		{[]int{1}, "0.5", 1}, // at least one
		{[]int{10}, "0.25", 2},
		{[]int{4}, "1", 0},      // share off
		{[]int{4, 0}, "0.5", 0}, // an unlimited server: no slots to take
	} {
		var servers []string
		for i, m := range c.maxConns {
			servers = append(servers, fmt.Sprintf(`{ address = "127.0.0.%d:9", max_conns = %d }`, i+1, m))
		}
		_, rt := startTestEdge(t, fmt.Sprintf(`
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [%s]
client_share = %s
`, strings.Join(servers, ", "), c.share), Deps{})
		if got := rt.upstreams["app"].clientLimit(); got != c.want {
			t.Errorf("max_conns %v, client_share %s: limit %d, want %d", c.maxConns, c.share, got, c.want)
		}
	}
}
