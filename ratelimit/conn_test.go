package ratelimit

import (
	"sync"
	"testing"
)

func TestConnLimiterCaps(t *testing.T) {
	c := NewConnLimiter(2, 3)
	a, b := key4(1), key4(2)
	ra1, ok1 := c.Acquire(a)
	_, ok2 := c.Acquire(a)
	if !ok1 || !ok2 {
		t.Fatal("first two connections of a refused")
	}
	if _, reason := c.AcquireReason(a); reason != ReasonPerKey {
		t.Fatalf("third of a: reason %q, want %q", reason, ReasonPerKey)
	}
	rb, ok := c.Acquire(b)
	if !ok {
		t.Fatal("first of b refused")
	}
	if _, reason := c.AcquireReason(key4(3)); reason != ReasonTotal {
		t.Fatalf("fourth overall: reason %q, want %q", reason, ReasonTotal)
	}
	if per, total := c.Refused(); per != 1 || total != 1 {
		t.Errorf("Refused = %d, %d; want 1, 1", per, total)
	}
	// Release is idempotent: calling it twice frees one slot.
	ra1()
	ra1()
	if got := c.Count(a); got != 1 {
		t.Errorf("Count(a) after double release = %d, want 1", got)
	}
	if c.Open() != 2 {
		t.Errorf("Open = %d, want 2", c.Open())
	}
	rb()
	if c.Keys() != 1 {
		t.Errorf("Keys = %d after b closed, want 1 (entries deleted at zero)", c.Keys())
	}
	c.SetLimits(0, 0)
	for range 100 {
		if _, ok := c.Acquire(a); !ok {
			t.Fatal("refused with caps disabled")
		}
	}
}

func TestConnLimiterReleaseOnceRace(t *testing.T) {
	c := NewConnLimiter(10, 0)
	k := key4(1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				rel, ok := c.Acquire(k)
				if !ok {
					continue
				}
				// Several goroutines racing on one release free one slot.
				var inner sync.WaitGroup
				for range 3 {
					inner.Add(1)
					go func() { defer inner.Done(); rel() }()
				}
				inner.Wait()
			}
		}()
	}
	wg.Wait()
	if c.Open() != 0 || c.Keys() != 0 {
		t.Errorf("after all releases Open=%d Keys=%d, want 0 and 0", c.Open(), c.Keys())
	}
}
