package ratelimit

import (
	"context"
	"time"
)

// SharedQuery is one request's question to a [SharedLimiter] for one zone
// whose budget several instances share (a zone of scope "cluster"): may
// Key take a token? The caller fills in the first part; AllowShared fills
// in the result.
type SharedQuery struct {
	// Zone is the zone's name: the budget's identity across instances.
	Zone string
	// Rate is the whole cluster's sustained rate, in requests per second.
	Rate float64
	// Burst is the number of requests served at once from a full budget;
	// values below 1 mean 1.
	Burst int
	// Key is the client.
	Key Key

	// OK is the decision.
	OK bool
	// RetryAfter is, when not OK, how long until a request from Key
	// would be accepted.
	RetryAfter time.Duration
	// Fallback is true when the decision came from this instance's local
	// fallback bucket because the shared budget could not be reached in
	// time.
	Fallback bool
}

// SharedLimiter decides requests against budgets shared by several
// instances (package cluster implements it with GCRA in Redis).
type SharedLimiter interface {
	// AllowShared decides every query of qs, one token each, together
	// (one round trip to the shared store for all of them) and fills in
	// their results. It always decides: it never waits longer than its
	// own latency budget (nor past ctx) for the shared store, and
	// decides from a local bucket at the cluster's rate divided by the
	// number of live instances when the store is slow or unreachable.
	// Each query takes a token even when another query of qs is refused.
	AllowShared(ctx context.Context, qs []SharedQuery)
}
