// Package balancer chooses a backend server for each request of an
// upstream, with the semantics of an HAProxy backend / nginx upstream. It
// does no HTTP and imports only the standard library: the proxy package
// does the probing, cookies and retries and drives this package's state
// machines.
//
// # Picking
//
// [New] builds a [Pool] from [Options]. [Pool.Pick] takes a [Key] (sticky
// cookie value, client address, backends already tried) and returns a
// [Backend] without allocating. Policies: round_robin (nginx smooth
// weighted round robin), least_conn (lowest (in-flight+queued)/weight, ties
// broken by weighted random choice), ip_hash (weighted rendezvous hashing of
// the full client address, so one server joining or leaving remaps only its
// share; deterministic across processes), random_two (power of two weighted
// random choices on load) and first (first available in configuration
// order, HAProxy "balance first"). Backup servers are used only while no
// primary is available (not up, passively excluded, draining, or already
// tried by this request). Backends whose MaxConns slots are all taken are
// skipped unless every candidate is full.
//
// # Sticky ids
//
// Every backend has an [Backend.ID]: the first 16 characters of
// base64url(HMAC-SHA256(StickySecret, upstream+"/"+label)), computed once at
// construction. label is the server name when its host resolves to a single
// address (so the id survives a container getting a new IP), and
// "name@ip:port" when it resolves to several (so each address is separately
// addressable). A server whose address count changes between one and
// several therefore changes ids once; its clients are re-dispatched. The id
// never reveals the address when StickySecret is set.
//
// # Slots and queueing
//
// The caller holds a slot from [Backend.Acquire] for the whole request or
// stream (including WebSockets) and calls the idempotent [Slot.Release] when
// done; taking and releasing a slot allocates nothing.
// Slots are the in-flight load seen by least_conn and random_two. With
// MaxConns set, excess callers wait in a bounded FIFO queue (QueueSize,
// QueueTimeout), as HAProxy's maxconn and timeout queue.
//
// # Health
//
// Passive health follows nginx max_fails/fail_timeout through
// [Backend.ReportFailure]. Active health is a rise/fall state machine fed
// by [Backend.ReportCheck] (the HTTP prober lives in proxy), with
// transitions reported through Options.OnStateChange and an optional
// linear slow start of the effective weight (1/10 → full).
//
// # State across reloads
//
// Per-server state lives in a process-wide [Registry], keyed by (upstream
// name, server name, resolved address) and reference counted by the pools
// that use it. To reload, build the new pool with the same Registry, swap
// it in, then [Pool.Close] the old one: servers that stayed keep health,
// failure window, slots, queue, runtime drain and counters; servers that
// left are forgotten.
//
// # DNS
//
// Servers given by host name are resolved through Options.Resolver by
// [Pool.Resolve] (call it once before serving) and re-resolved by
// [Pool.Run] every ResolveInterval. A failed lookup keeps the last good
// addresses. The backend set is an immutable snapshot swapped atomically.
//
// # Time
//
// Options.Now is the clock used by Pick and the health machines;
// ReportFailure takes the time as a parameter.
package balancer
