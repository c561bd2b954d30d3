// Package ratelimit keeps abusive clients away from the proxy: it is
// Gatehouse's replacement for nginx's limit_req_zone/limit_req and
// limit_conn, and for the fail2ban jail that watched nginx's logs.
//
// The package knows nothing about HTTP or Prometheus. It answers questions
// ("may this client go on?", "is it banned?") and the caller (package proxy
// and cmd/gatehouse) decides what to do with the answer: send 429 or 503 with
// a Retry-After header, only log it (dry run), count a metric.
//
// # Keys
//
// Every limit is per [Key]. [KeyOf] derives a key from a client address:
// an IPv4 address is its own key, an IPv6 address is masked to a prefix
// (/64 by default) because one subscriber usually holds a whole /64 and
// could otherwise rotate addresses to escape every limit. IPv4-mapped IPv6
// addresses are unmapped first. Keys are small comparable values, so map
// lookups do not allocate.
//
// # Request rate: Zone
//
// A [Zone] is nginx's limit_req_zone: one token bucket
// (golang.org/x/time/rate) per key. [Zone.AllowAt] answers for one request at
// a given time. In [NoDelay] mode up to Burst requests pass at once and the
// rest are refused with the time until the next token. In [Delay] mode (nginx
// without nodelay) one request passes at once and up to Burst more are
// queued: the caller is told how long to wait before serving them, and
// requests beyond that are refused. A zone holds at most MaxKeys buckets;
// when it is full the least recently used one is dropped (counted as an
// eviction). Buckets that have refilled completely carry no information and
// are dropped lazily on insertion or by [Zone.SweepAt] (counted as expired).
// [Zone.Retune] changes rate and burst of a live zone, so a reload neither
// resets nor forgets who was limited.
//
// Mapping from nginx: `rate=5r/m` is Rate 5.0/60. `burst=B nodelay` serves
// B+1 requests at once in nginx; here NoDelay serves Burst at once, so use
// Burst B+1 to match exactly. `burst=B` without nodelay is Delay mode with
// Burst B.
//
// # Concurrent connections: ConnLimiter
//
// A [ConnLimiter] is nginx's limit_conn: at most PerKey open connections per
// key and at most Total overall. Entries are deleted when their count drops
// to zero, so its memory follows the live connections.
//
// # Bans: Jail
//
// A [Jail] is the fail2ban jail of the reference setup (maxretry 10,
// findtime 600, bantime 7200): [Jail.RecordAt] counts a strike; MaxRetry
// strikes within FindTime ban the key for BanTime. [Jail.Ban] bans any
// prefix (an IPv4 /24, an IPv6 /48 or /128) and the ban covers every
// address inside it: [Jail.BannedAt] with [AddrKey] of an address decides
// bans of every length, with one hash lookup per prefix length in use. At
// most MaxBans bans are held; the one ending soonest makes room. Bans are
// kept in a JSON file in the state directory, written at most once per
// SaveInterval and when [Jail.Run] ends, so a restart does not free every
// attacker; a damaged file loads what it can and is copied aside.
//
// # Several instances
//
// The package defines what a cluster of instances plugs into, and
// imports nothing of it (package cluster implements both over Redis): a
// Jail made with [JailOptions].Peers tells a [JailPeers] about every ban,
// unban and strike, and takes the others' changes through
// [Jail.ApplyBan] and [Jail.ApplyUnban] (the later change of a key wins)
// and their strike counts through [Jail.SharedStrikes]. A
// [SharedLimiter] decides the zones whose budget the instances share;
// it always decides, from a local bucket when the shared one is out of
// reach.
//
// # Listener guard
//
// [NewListener] wraps a net.Listener: banned keys and connections over the
// ConnLimiter's caps are closed right after accept, before a single TLS
// byte is read or written, which is the cheapest thing a server can do
// under a connection flood. On listeners behind another L4 balancer it
// reads the PROXY protocol header (v1 or v2) first, so bans and caps apply
// to the real client. [ClientAddr] returns the resolved client address of
// an accepted connection.
package ratelimit
