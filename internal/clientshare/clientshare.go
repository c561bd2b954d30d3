// Package clientshare bounds how many places of a shared resource one key
// may hold at once, with a bounded first-in-first-out line per key for
// the requests over it. The proxy keys it by client and upstream, so that
// one client cannot hold every slot of an upstream (upstreams.X.client_share
// in docs/config.md); its lines take no place in the upstream's own queue.
package clientshare

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Shares counts, per key, the places held (requests past the share
// check) and the requests waiting for one of them to end. Entries at zero
// are deleted: it holds only keys with requests in flight. The zero value
// is ready to use; its methods are safe for concurrent use.
type Shares[K comparable] struct {
	mu      sync.Mutex
	held    map[K]int
	waiters map[K][]chan struct{}
}

// Errors of Acquire.
var (
	// ErrFull: over the limit, and no place in the key's queue.
	ErrFull = errors.New("client over its share of the upstream")
	// ErrWaitTimeout: waited the whole timeout for a place.
	ErrWaitTimeout = errors.New("client share wait timed out")
)

// Acquire takes one of k's limit places. Over the limit it waits (when
// queue > 0, and fewer than queue of k's requests wait) for one of k's
// places, first in first out, at most timeout. It returns ctx.Err() when
// ctx ends first, ErrFull or ErrWaitTimeout for a refusal. Every nil
// return must be paired with one Release(k).
func (cs *Shares[K]) Acquire(ctx context.Context, k K, limit, queue int, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cs.mu.Lock()
	if cs.held == nil {
		cs.held = map[K]int{}
		cs.waiters = map[K][]chan struct{}{}
	}
	if cs.held[k] < limit {
		cs.held[k]++
		cs.mu.Unlock()
		return nil
	}
	if len(cs.waiters[k]) >= queue {
		cs.mu.Unlock()
		return ErrFull
	}
	ch := make(chan struct{})
	cs.waiters[k] = append(cs.waiters[k], ch)
	cs.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-ch:
		if err := ctx.Err(); err != nil {
			cs.Release(k) // granted as the client went away: pass it on
			return err
		}
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = ErrWaitTimeout
	}
	cs.mu.Lock()
	w := cs.waiters[k]
	i := slices.Index(w, ch)
	if i < 0 {
		// Granted as we gave up: the place is ours; pass it on.
		cs.mu.Unlock()
		cs.Release(k)
		return err
	}
	if len(w) == 1 {
		delete(cs.waiters, k)
	} else {
		cs.waiters[k] = slices.Delete(w, i, i+1)
	}
	cs.mu.Unlock()
	return err
}

// Release gives one of k's places back, to k's oldest waiter if any.
func (cs *Shares[K]) Release(k K) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if w := cs.waiters[k]; len(w) > 0 {
		ch := w[0]
		if len(w) == 1 {
			delete(cs.waiters, k)
		} else {
			w[0] = nil
			cs.waiters[k] = w[1:]
		}
		close(ch) // the place passes on: held is unchanged
		return
	}
	if n := cs.held[k] - 1; n > 0 {
		cs.held[k] = n
	} else {
		delete(cs.held, k)
	}
}

// Count returns how many of k's requests hold a place and wait for one.
func (cs *Shares[K]) Count(k K) (held, waiting int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.held[k], len(cs.waiters[k])
}
