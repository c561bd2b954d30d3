package proxy

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// One client must not hold every slot of an upstream. One HTTP/2
// connection carries up to limits.http2_max_streams requests, and a client
// may open conn_per_ip connections: without a share, one client whose
// requests are slow to finish (a zero flow-control window, a slow view
// hammered in parallel) holds every max_conns slot and everyone else gets
// 503.
//
// upstreams.X.client_share caps the requests one client key (its address,
// IPv6 by [limits] ipv6_prefix, as the rate limiter keys it) may have past
// this point at once — holding a backend slot or waiting in the server's
// queue — at share × the upstream's capacity (the sum of its primaries'
// max_conns), rounded down, at least 1. It applies only when every
// primary server has max_conns: an unbounded upstream has no slots to
// take. A request over its client's share is treated like one for a full
// server, in a line of its own that takes no place in the shared queue:
// with a queue (upstreams.X.queue > 0) it waits, first in first out among
// the client's own requests, for one of them to end, at most
// queue_timeout, and at most `queue` of the client's requests wait; without
// a queue, or past those bounds, it gets 503 with Retry-After: 1.

// shareKey is one client of one upstream.
type shareKey struct {
	upstream string
	client   ratelimit.Key
}

// clientShares counts, per shareKey, the requests past the share check,
// and the requests waiting for one of them to end. It outlives Runtime
// generations (it lives on the Edge), so a reload does not hand a client
// a fresh share while its requests still run. Entries at zero are
// deleted: it holds only clients with requests in flight.
type clientShares struct {
	mu      sync.Mutex
	held    map[shareKey]int
	waiters map[shareKey][]chan struct{}
}

var (
	errShareFull = errors.New("client over its share of the upstream")
	errShareWait = errors.New("client share wait timed out")
)

// acquire takes one of the client's limit places for k. Over the limit it
// waits (when queue > 0, and fewer than queue of k's requests wait) for
// one of k's places, at most timeout. It returns ctx.Err() when ctx ends
// first, or an error for a refusal.
func (cs *clientShares) acquire(ctx context.Context, k shareKey, limit, queue int, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cs.mu.Lock()
	if cs.held == nil {
		cs.held = map[shareKey]int{}
		cs.waiters = map[shareKey][]chan struct{}{}
	}
	if cs.held[k] < limit {
		cs.held[k]++
		cs.mu.Unlock()
		return nil
	}
	if len(cs.waiters[k]) >= queue {
		cs.mu.Unlock()
		return errShareFull
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
			cs.release(k) // granted as the client went away: pass it on
			return err
		}
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errShareWait
	}
	cs.mu.Lock()
	w := cs.waiters[k]
	i := slices.Index(w, ch)
	if i < 0 {
		// Granted as we gave up: the place is ours; pass it on.
		cs.mu.Unlock()
		cs.release(k)
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

// release gives one of k's places back, to k's oldest waiter if any.
func (cs *clientShares) release(k shareKey) {
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

// count returns how many of k's requests hold a place and wait for one.
func (cs *clientShares) count(k shareKey) (held, waiting int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.held[k], len(cs.waiters[k])
}

// clientLimit is how many requests one client may have past the share
// check on u now; 0: no limit.
func (u *upstream) clientLimit() int {
	share := u.cfg.ClientShare
	capacity := u.pool.Capacity()
	if capacity <= 0 || share <= 0 || share >= 1 {
		return 0
	}
	return max(1, int(share*float64(capacity)))
}

// forwardShared forwards the request within its client's share of the
// upstream (see the top of this file). A request whose client went away
// (an HTTP/2 stream the client reset, a rate-limit delay it did not wait
// out) is not forwarded.
func (q *request) forwardShared() {
	ctx := q.r.Context()
	if ctx.Err() != nil {
		q.status = StatusClientClosed
		return
	}
	u := q.route.upstream
	limit := u.clientLimit()
	if limit == 0 {
		q.forward()
		return
	}
	k := shareKey{upstream: u.cfg.Name, client: ratelimit.KeyOf(q.client, q.rt.cfg.Limits.IPv6Prefix)}
	if err := q.e.shares.acquire(ctx, k, limit, u.cfg.QueueSize, u.cfg.QueueTimeout); err != nil {
		if ctx.Err() != nil {
			q.status = StatusClientClosed
			return
		}
		q.e.metrics.rejected.WithLabelValues("client_share").Inc()
		q.w.Header()["Retry-After"] = retryAfter1
		q.fail(http.StatusServiceUnavailable, false)
		return
	}
	defer q.e.shares.release(k)
	q.forward()
}
