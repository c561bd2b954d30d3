package config

import (
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/regularfile"
)

// Every default of the configuration lives here, each with the reason it has
// the value it has. Package code elsewhere never carries a literal timeout:
// it reads the compiled Config.

// Listener addresses.
const (
	// DefaultHTTPAddress is where plain HTTP (redirects, ACME HTTP-01) listens.
	DefaultHTTPAddress = ":80"
	// DefaultHTTPSAddress is where TLS listens.
	DefaultHTTPSAddress = ":443"
	// DefaultAdminAddress keeps metrics and control on loopback: an admin
	// listener reachable from the internet is a finding in every audit.
	DefaultAdminAddress = "127.0.0.1:9180"
	// DefaultStateDir holds certificates, OCSP staples and bans; systemd's
	// StateDirectory=gatehouse creates it.
	DefaultStateDir = "/var/lib/gatehouse"
)

// Client-side timeouts: the reference's nginx DDoS block.
const (
	// DefaultClientHeaderTimeout is nginx client_header_timeout 12: a client
	// that has not sent its whole request head by then is cut (slowloris).
	DefaultClientHeaderTimeout = 12 * time.Second
	// DefaultClientBodyTimeout is nginx client_body_timeout 12: the longest
	// gap between two reads of a request body.
	DefaultClientBodyTimeout = 12 * time.Second
	// DefaultClientBodyTotal bounds a whole request body, which nginx does
	// not: a body trickled one byte every 11 s would otherwise live forever.
	// 10 MiB at a slow 200 KiB/s needs under a minute.
	DefaultClientBodyTotal = 60 * time.Second
	// DefaultSendTimeout is nginx send_timeout 10: the longest a write to
	// the client may block. It is idle-based, so long downloads and SSE
	// streams are never cut while they move.
	DefaultSendTimeout = 10 * time.Second
	// DefaultKeepaliveTimeout is nginx keepalive_timeout 15: how long an
	// idle client connection is kept between requests.
	DefaultKeepaliveTimeout = 15 * time.Second
	// DefaultGracePeriod is how long SIGTERM waits for in-flight requests;
	// systemd's default TimeoutStopSec is 90 s, so this leaves room.
	DefaultGracePeriod = 30 * time.Second
)

// Upstream-side timeouts and pools.
const (
	// DefaultConnectTimeout is nginx proxy_connect_timeout 60s.
	DefaultConnectTimeout = 60 * time.Second
	// DefaultResponseHeaderTimeout is nginx proxy_read_timeout 60s applied
	// to the wait for the response head: a Django view slower than this
	// answers 504.
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultReadTimeout is nginx proxy_read_timeout 60s between two reads
	// of a response body: a backend that stalls mid-body longer than this
	// is given up, so it cannot hold a request, a connection and a
	// max_conns slot forever. Quiet SSE streams need a longer one (or 0).
	DefaultReadTimeout = 60 * time.Second
	// DefaultUpstreamKeepalive is nginx `keepalive 32`: idle connections
	// kept per backend server.
	DefaultUpstreamKeepalive = 32
	// DefaultUpstreamKeepaliveTimeout is nginx keepalive_timeout 60s inside
	// the upstream block; Daphne keeps idle connections longer.
	DefaultUpstreamKeepaliveTimeout = 60 * time.Second
	// DefaultWebSocketIdleTimeout is the reference's proxy_read_timeout
	// 86400s on /ws/: Daphne pings every 20 s, so a live stream is never
	// idle that long.
	DefaultWebSocketIdleTimeout = 24 * time.Hour
	// DefaultWebSocketCloseDelay is how long a stream whose route or server
	// disappeared in a reload is kept before it is closed with 1012.
	DefaultWebSocketCloseDelay = 10 * time.Second
	// DefaultWebSocketCloseSpread spreads closes of many streams so clients
	// do not reconnect in the same second.
	DefaultWebSocketCloseSpread = 10 * time.Second
	// WebSocketCloseTimeout is how long a WebSocket closed by Gatehouse
	// (reload, drain, shutdown, ping timeout) waits for the peers' Close
	// replies before its connections are closed: a browser answers within
	// a round trip, and a peer that does not answer must not hold the
	// stream. Not configurable.
	WebSocketCloseTimeout = 5 * time.Second
	// DefaultPingTimeout is how long a client has to answer a proxy ping.
	DefaultPingTimeout = 20 * time.Second
)

// Health checks and passive failure detection.
const (
	// DefaultHealthPath is the reference's `option httpchk GET /health/`.
	DefaultHealthPath = "/health/"
	// DefaultHealthInterval is HAProxy's `inter 2s`.
	DefaultHealthInterval = 2 * time.Second
	// DefaultHealthTimeout keeps a probe well inside its interval.
	DefaultHealthTimeout = 1 * time.Second
	// DefaultHealthRise and DefaultHealthFall are HAProxy's rise 2 fall 3.
	DefaultHealthRise = 2
	DefaultHealthFall = 3
	// DefaultMaxFails and DefaultFailTimeout are the reference's
	// max_fails=3 fail_timeout=30s.
	DefaultMaxFails    = 3
	DefaultFailTimeout = 30 * time.Second
	// DefaultQueueTimeout is HAProxy's usual `timeout queue` when maxconn
	// is set: a queued request waits this long for a slot.
	DefaultQueueTimeout = 10 * time.Second
	// DefaultClientShare lets one client (one address, one IPv6 /64) hold
	// at most half of an upstream's max_conns slots, so a single client —
	// one HTTP/2 connection can carry a hundred requests — can never take
	// every slot and leave everyone else a 503. Neither nginx nor HAProxy
	// has this by default (nginx's limit_conn is the closest).
	DefaultClientShare = 0.5
	// DefaultRetries is nginx proxy_next_upstream_tries: one more server
	// after the first (0 would disable retries).
	DefaultRetries = 1
	// DefaultRetryBudget bounds the time spent over all tries.
	DefaultRetryBudget = 10 * time.Second
	// DefaultRetryBodyLimit is how much of a request body is buffered so a
	// non-idempotent request may be retried after a timeout or 502/503.
	DefaultRetryBodyLimit = 64 << 10
	// DefaultResolveInterval re-resolves servers given by name, so a
	// restarted Podman container with a new address is followed.
	DefaultResolveInterval = 5 * time.Second
	// DefaultStickyCookie is the reference's `cookie SERVERID`.
	DefaultStickyCookie = "SERVERID"
)

// TLS.
const (
	// DefaultOCSPStapling staples OCSP responses for certificates that name
	// a responder (nginx needs `ssl_stapling on`): clients then need no
	// OCSP request of their own, and a revoked answer stops a Good staple
	// being served. Certificates without a responder URL cost nothing.
	DefaultOCSPStapling = true
)

// Size limits.
const (
	// DefaultMaxBody is nginx client_max_body_size 10M.
	DefaultMaxBody = 10 << 20
	// DefaultMaxHeaderBytes bounds the request head. The reference's
	// `large_client_header_buffers 2 1k` is too tight for real browsers
	// with Django session and CSRF cookies; 16 KiB is nginx's own default
	// (4 × 8k) halved.
	DefaultMaxHeaderBytes = 16 << 10
	// DefaultHTTP2MaxStreams is Go's and nginx's http2_max_concurrent_streams.
	DefaultHTTP2MaxStreams = 128
	// DefaultHTTP2MaxResets closes an HTTP/2 connection once its client
	// has cancelled 100 more requests than it let complete (rapid reset,
	// CVE-2023-44487): far more than a browser abandoning a page's
	// requests, far fewer than the thousands an attack sends.
	DefaultHTTP2MaxResets = 100
	// DefaultConnPerIP is the reference's `limit_conn addr 10`.
	DefaultConnPerIP = 10
)

// Files the configuration names. They are read whole into memory, so each
// kind has a cap; a file over it is a config error naming the key.
const (
	// MaxConfigFileSize bounds the config file: the largest real one is a
	// few hundred KiB even with thousands of sites.
	MaxConfigFileSize = 16 << 20
	// MaxErrorPageSize bounds an error page, which is held in memory for
	// every site and sent in place of a response: real ones are a few KiB.
	MaxErrorPageSize = 1 << 20
	// MaxPEMFileSize bounds a certificate chain, key or CA bundle: a chain
	// is a few KiB and a system root bundle about 200 KiB. tlsedge reads
	// certificates and keys under the same limit.
	MaxPEMFileSize = regularfile.MaxPEMBytes
)

// Rate limits and bans.
const (
	// DefaultZoneMaxKeys is the number of client states nginx fits in a
	// 10m zone (about 160,000).
	DefaultZoneMaxKeys = 160000
	// DefaultRejectStatus is 429; nginx uses 503 by default.
	DefaultRejectStatus = 429
	// DefaultIPv6Prefix keys IPv6 clients by their /64, the smallest block
	// an ISP hands out, so address rotation inside it does not escape.
	DefaultIPv6Prefix = 64
	// DefaultBanMaxRetry, DefaultBanFindTime and DefaultBanTime are the
	// reference's fail2ban jail: maxretry 10, findtime 600, bantime 7200.
	DefaultBanMaxRetry = 10
	DefaultBanFindTime = 600 * time.Second
	DefaultBanTime     = 7200 * time.Second
	// DefaultBanMaxBans bounds the jail at about 16 MiB (158 bytes a ban),
	// far beyond what real abuse fills in a ban_time: only a flood evicts.
	DefaultBanMaxBans = 100000
)

// Cluster ([cluster]).
const (
	// DefaultClusterKeyPrefix starts every key, so that Gatehouse can share
	// a Redis with Django's cache and Channels (whose keys start otherwise)
	// and an ACL can confine it to ~gatehouse:*.
	DefaultClusterKeyPrefix = "gatehouse:"
	// DefaultClusterTimeout is the latency budget of a rate-limit decision:
	// a round trip to Redis on loopback or a LAN takes well under 1 ms, so
	// 10 ms is only ever reached by a Redis that is stalled or gone, and
	// it is small next to a request's own cost.
	DefaultClusterTimeout = 10 * time.Millisecond
	// DefaultClusterHeartbeat: an instance is counted live for 3 heartbeats,
	// so a dead one leaves the count of live instances within ~3 s.
	DefaultClusterHeartbeat = time.Second
	// DefaultClusterBanSync is the period of the full ban synchronisation;
	// pub/sub carries bans within milliseconds, this only repairs what it
	// missed (a dropped subscription), and it costs one GET when nothing
	// changed.
	DefaultClusterBanSync = time.Second
)

// TLS and ACME.
const (
	// DefaultHSTS is the reference's Strict-Transport-Security value.
	DefaultHSTS = "max-age=31536000; includeSubDomains; preload"
	// DefaultHSTSSelfSigned is the HSTS of a tls = "self_signed" site:
	// none. Such a site is a developer's own test site; with HSTS a
	// browser refuses to let its user past the untrusted certificate, and
	// includeSubDomains; preload would pin every name under the host for
	// a year.
	DefaultHSTSSelfSigned = ""
	// DefaultACMEDirectory is Let's Encrypt production.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultRenewBefore is what renew_before meant before ARI; parsed
	// for old configurations, no longer used.
	DefaultRenewBefore = 30 * 24 * time.Hour
	// DefaultRenewRatio renews with a third of the lifetime left (day 60
	// of 90, day 4 of 6) when the CA gives no ARI window: Let's Encrypt's
	// advice, and it works for 6-day certificates where a fixed 30 days
	// would renew forever.
	DefaultRenewRatio = 1.0 / 3
	// DefaultACMEStorage keeps accounts and certificates in files, whose
	// lock files let instances sharing the directory order once.
	DefaultACMEStorage = "file"
	// DefaultDNSPropagationTimeout is certmagic's: long enough for the
	// slowest secondary of a hosted DNS service to catch up.
	DefaultDNSPropagationTimeout = 2 * time.Minute
	// DefaultACMEChallenge answers http-01 or tls-alpn-01 on our own
	// listeners, needing no DNS credentials.
	DefaultACMEChallenge = "http"
)

// Logs.
const (
	// DefaultAccessLog sends access logs to standard output and leaves
	// standard error to the process log, as container runtimes and
	// systemd's journal expect: the two can then be told apart and
	// routed separately (a file path or "stderr" overrides it per site).
	DefaultAccessLog = "stdout"
)

// Routing.
const (
	// DefaultAllowTrace refuses TRACE with 405, as nginx does: TRACE
	// echoes the request back, cookies and Authorization included (cross-
	// site tracing), and no application behind a proxy needs it.
	DefaultAllowTrace = false
	// DefaultCaseInsensitive matches route paths case-sensitively, as
	// nginx prefix locations and Django's URL resolver do, so a route and
	// the views behind it agree on which paths are the same.
	DefaultCaseInsensitive = false
)

// Request IDs.
const (
	// DefaultRequestIDEnabled gives every request an ID: a support report
	// quoting the ID on an error page finds the line in the access log
	// and in Django's logs, for 32 random hex digits per request.
	DefaultRequestIDEnabled = true
	// DefaultRequestIDHeader is the de facto standard name (Heroku,
	// Django's django-log-request-id, nginx's usual proxy_set_header
	// X-Request-ID $request_id), in canonical form.
	DefaultRequestIDHeader = "X-Request-Id"
)

// The open-file cache of file routes (staticfile's defaults, which a test
// in proxy keeps equal).
const (
	// DefaultOpenFileCacheEntries is nginx's usual open_file_cache
	// max=1000: a Django site's static directory holds a few hundred
	// files.
	DefaultOpenFileCacheEntries = 1000
	// DefaultOpenFileCacheValid trusts a file's metadata for a second
	// (nginx's open_file_cache_valid is 60 s): a deploy is visible at
	// once, for one stat(2) per hot file per second.
	DefaultOpenFileCacheValid = time.Second
	// DefaultOpenFileCacheInactive is nginx's open_file_cache
	// inactive=60s.
	DefaultOpenFileCacheInactive = time.Minute
	// DefaultOpenFileCacheMemory keeps files up to 32 KiB in memory within
	// 16 MiB per file route: a typical site's CSS, JS and icons with their
	// .br and .gz siblings, several times over.
	DefaultOpenFileCacheMemory = 16 << 20
)

// Compression of responses ([compression], and compress on sites and
// routes): package compress's defaults, which a test in proxy keeps
// equal. The measurements behind them are in docs/compression.md.
const (
	// DefaultCompress compresses text responses on every site and route,
	// as Caddy's encode is usually configured (nginx's gzip is off until
	// `gzip on`): text is 3-4x smaller for 4-9 µs of CPU per KiB. Routes
	// that render a secret next to reflected input turn it off (BREACH,
	// docs/compression.md).
	DefaultCompress = true
	// DefaultCompressionMinLength: below about 1 KiB the coding's framing
	// and fixed cost outweigh the bytes saved (less than one packet).
	// Caddy uses 512, nginx's gzip_min_length 20.
	DefaultCompressionMinLength = 1024
	// MaxCompressionMinLength bounds min_length: a body of unknown length
	// is held in memory up to min_length before the decision.
	MaxCompressionMinLength = 64 << 10
	// DefaultCompressionGzipLevel: level 5 is as cheap per KiB as zstd's
	// default level and within 1.5 % of level 6; 9 costs 2-7x for 2-5 %.
	DefaultCompressionGzipLevel = 5
	// DefaultCompressionZstdLevel is klauspost/compress's SpeedDefault
	// (about zstd -3): as cheap as gzip 5; level 3 costs 1.2-1.7x for
	// 2-5 %.
	DefaultCompressionZstdLevel = 2
	// DefaultCompressionBrotliLevel: quality 5 is the first that clearly
	// beats gzip (7-13 % smaller, for 4-7x gzip's CPU).
	DefaultCompressionBrotliLevel = 5
	// DefaultCompressionMaxEncoders caps the stateful encoders in use at
	// once in the whole process: one holds 1-3.5 MiB, so 256 hold at most
	// 270-900 MiB however many responses or event streams are open.
	DefaultCompressionMaxEncoders = 256
	// DefaultCompressionMaxFileSize bounds the files a file route
	// compresses per request (those without a precompressed sibling):
	// gzip costs about 7 µs per KiB, so a 256 KiB file about 2 ms and a
	// brotli client about 11 ms, where sendfile(2) costs next to nothing.
	// Larger files go out as they are; `gatehouse compress` writes their
	// siblings at deploy time.
	DefaultCompressionMaxFileSize = 256 << 10
)

// DefaultCompressionEncodings returns the codings offered when
// [compression] encodings is not set, in the server's order of
// preference (a new slice each call): gzip, zstd, br. At the dynamic
// levels gzip is as cheap per KiB as zstd and 0-6 % smaller on Django's
// bodies, with the least memory per encoder; brotli is 7-13 % smaller but
// costs 4-7x the CPU, so it is last (clients that weigh it higher get it).
func DefaultCompressionEncodings() []string { return []string{"gzip", "zstd", "br"} }

// DefaultCompressionTypes returns the media types compressed when
// [compression] types is not set (a new slice each call): text, the
// text-based application formats a Django site serves, SVG, WebAssembly,
// the uncompressed font and icon formats. Never already-compressed ones
// (images, video, audio, WOFF/WOFF2, archives, PDF, octet-stream).
func DefaultCompressionTypes() []string {
	return []string{
		"text/*",
		"*/*+json",
		"*/*+xml",
		"*/*+yaml",
		"application/json",
		"application/x-ndjson",
		"application/javascript",
		"application/x-javascript",
		"application/ecmascript",
		"application/xml",
		"application/yaml",
		"application/x-yaml",
		"application/toml",
		"application/wasm",
		"application/graphql",
		"application/x-www-form-urlencoded",
		"application/vnd.ms-fontobject",
		"application/x-font-ttf",
		"application/x-font-otf",
		"application/x-font-opentype",
		"font/ttf",
		"font/otf",
		"font/collection",
		"font/sfnt",
		"image/x-icon",
		"image/vnd.microsoft.icon",
		"image/bmp",
	}
}
