package proxy

import (
	"net/http"

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
	if err := q.e.shares.Acquire(ctx, k, limit, u.cfg.QueueSize, u.cfg.QueueTimeout); err != nil {
		if ctx.Err() != nil {
			q.status = StatusClientClosed
			return
		}
		q.e.metrics.Rejected.WithLabelValues("client_share").Inc()
		q.w.Header()["Retry-After"] = retryAfter1
		q.fail(http.StatusServiceUnavailable, false)
		return
	}
	defer q.e.shares.Release(k)
	q.forward()
}
