package clientshare

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestShares(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cs Shares[string]
		ctx := t.Context()
		k, other := "app 2001:db8::/64", "app 192.0.2.1"

		for i := range 2 {
			if err := cs.Acquire(ctx, k, 2, 2, 5*time.Second); err != nil {
				t.Fatalf("place %d of 2: %v", i+1, err)
			}
		}
		// Two more wait, in order; a fifth is refused at once.
		got := make(chan int, 2)
		errs := make(chan error, 2)
		for i := 3; i <= 4; i++ {
			go func() {
				err := cs.Acquire(ctx, k, 2, 2, 5*time.Second)
				if err == nil {
					got <- i
				} else {
					errs <- err
				}
			}()
			synctest.Wait()
		}
		if err := cs.Acquire(ctx, k, 2, 2, 5*time.Second); !errors.Is(err, ErrFull) {
			t.Fatalf("fifth request of the client: %v, want ErrFull", err)
		}
		if err := cs.Acquire(ctx, other, 2, 2, 5*time.Second); err != nil {
			t.Fatalf("another client: %v, want a place", err)
		}
		if held, waiting := cs.Count(k); held != 2 || waiting != 2 {
			t.Fatalf("held %d waiting %d, want 2, 2", held, waiting)
		}
		cs.Release(k)
		synctest.Wait()
		if first := <-got; first != 3 {
			t.Fatalf("first waiter served: %d, want 3", first)
		}
		// The fourth times out after 5 s.
		start := time.Now()
		if err := <-errs; !errors.Is(err, ErrWaitTimeout) || time.Since(start) != 5*time.Second {
			t.Fatalf("fourth waiter: %v after %v, want ErrWaitTimeout after 5s", err, time.Since(start))
		}
		// A waiter whose client goes away leaves the line.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cs.Acquire(cctx, k, 2, 2, time.Minute) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		// No queue: over the share is refused at once.
		if err := cs.Acquire(ctx, k, 2, 0, time.Minute); !errors.Is(err, ErrFull) {
			t.Fatalf("no queue: %v, want ErrFull", err)
		}
		cs.Release(k)
		cs.Release(k)
		cs.Release(other)
		if len(cs.held) != 0 || len(cs.waiters) != 0 {
			t.Errorf("entries left after every release: held %v waiters %v", cs.held, cs.waiters)
		}
	})
}
