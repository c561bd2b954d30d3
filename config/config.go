// Package config reads Gatehouse's TOML configuration into an immutable,
// validated value.
//
// Parse decodes strictly (an unknown key is an error naming its path and
// line), applies the defaults of defaults.go and checks every cross-field
// rule, reporting all problems at once. The returned *Config is never
// modified afterwards: a reload parses a new one.
//
// The package imports only the standard library, the TOML decoder and
// the libraries split out of it, which import nothing else:
// internal/configfile (the file format), internal/tomlstruct (strict
// decoding with key paths and lines), internal/regularfile (reading the
// files the configuration names), internal/headerpolicy (which header
// fields a rule may name) and internal/tlsnames. So every other package
// can depend on it. config/configdump prints a Config back as TOML.
package config

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

// Config is one validated configuration. All durations are positive unless
// documented otherwise, all sizes are in bytes.
type Config struct {
	// Source is the file the config was read from ("" for embedded ones).
	Source string
	// StateDir holds certificates, the ACME account, OCSP staples and bans.
	StateDir string
	// StateDirSet is true when the file set state_dir (so it wins over
	// systemd's $STATE_DIRECTORY).
	StateDirSet bool
	// GracePeriod is how long shutdown waits for in-flight requests.
	GracePeriod time.Duration

	Log            Log
	HTTP           *Listener // nil when the HTTP listener is disabled
	HTTPS          *Listener // nil when the HTTPS listener is disabled
	Admin          Admin
	Timeouts       Timeouts
	Limits         Limits
	ACME           ACME
	TrustedProxies []netip.Prefix
	Ban            Ban
	// RequestID is how requests are identified ([request_id]).
	RequestID RequestID
	// OpenFileCache sizes the open-file cache of every file route
	// ([open_file_cache]).
	OpenFileCache OpenFileCache
	// Compression is how responses are compressed ([compression]);
	// whether a response may be is its site's and route's Compress.
	Compression Compression
	// Cluster shares certificates, bans and cluster-scoped rate limits
	// with other instances through Redis or Valkey; nil without
	// [cluster] (the instance is on its own, nothing of Redis is used).
	Cluster *Cluster

	// Sites in name order; DefaultSite is the one that answers a Host no
	// site claims (nil: such requests get 421).
	Sites       []*Site
	DefaultSite *Site
	// Upstreams and Zones by name.
	Upstreams map[string]*Upstream
	Zones     map[string]*Zone

	// lines maps key paths to lines of Source, for Problemf.
	lines tomlstruct.Lines
}

// Log configures the process log (not the access log).
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// Listener is a public listener.
type Listener struct {
	Address       string
	ProxyProtocol bool
	// MaxConns caps concurrent connections on this listener (0: no cap).
	MaxConns int

	// TLS policy, HTTPS listener only.
	MinVersion   uint16
	MaxVersion   uint16
	CipherSuites []uint16 // TLS 1.2 suites; TLS 1.3 suites are fixed by Go
	// Curves are the key exchanges in preference order; nil means
	// X25519MLKEM768 (hybrid post-quantum), X25519, P-256.
	Curves         []tls.CurveID
	SessionTickets bool
	HTTP2          bool
	// OCSPStapling staples OCSP responses for certificates that name a
	// responder; default true. false: no OCSP request is made and no
	// staple is served (a must-staple certificate is then an error).
	OCSPStapling bool
}

// Admin is the loopback listener for metrics, health and control.
type Admin struct {
	Address string // "" disables the admin listener
	// Token, when set, is required (Authorization: Bearer) on every
	// state-changing request (bans, drain). Empty: such requests must be
	// same-origin instead (an Origin naming the listener itself).
	Token string
	// Pprof serves Go's profiler under /debug/pprof/ (off by default).
	Pprof bool
	// Hosts are extra names the listener answers to in the Host header,
	// lower case, without a port (any port matches). IP literals and
	// "localhost" are always accepted; empty: no other name is, which
	// defeats DNS rebinding.
	Hosts []string
}

// Timeouts are the client- and upstream-side defaults; routes and
// upstreams may override some of them.
type Timeouts struct {
	ClientHeader    time.Duration
	ClientBody      time.Duration
	ClientBodyTotal time.Duration
	Send            time.Duration
	Keepalive       time.Duration
}

// Limits bounds what one client may send.
type Limits struct {
	MaxBody         int64
	MaxHeaderBytes  int
	HTTP2MaxStreams uint32
	// HTTP2MaxResets is how many more requests an HTTP/2 client may
	// cancel (RST_STREAM before the response was complete) than it let
	// complete, on one connection, before the connection is closed
	// (rapid reset defence). Default DefaultHTTP2MaxResets; 0 switches
	// the check off.
	HTTP2MaxResets int
	// ConnPerIP caps concurrent connections per client address (keyed by
	// /IPv6Prefix for IPv6) on every public listener; 0 disables.
	ConnPerIP  int
	IPv6Prefix int
}

// ACME configures automatic certificates for sites with tls = "acme".
type ACME struct {
	Email      string
	Directory  string
	EABKeyID   string
	EABHMACKey []byte
	// RenewBefore is parsed for old configurations only: renewal follows
	// the CA's ARI window, else RenewRatio. RenewBeforeSet says the file
	// set it (cmd warns that it is ignored).
	RenewBefore    time.Duration
	RenewBeforeSet bool
	HTTP01         bool
	TLSALPN01      bool
	// CARoots is a PEM file of roots trusted for the ACME directory
	// (for a private CA); "" trusts the system roots.
	CARoots string
	// Profile is the ACME profile ordered ("" lets the CA choose); a site
	// can override it with acme_profile.
	Profile string
	// RenewRatio is the share of a certificate's lifetime left when it
	// is renewed without an ARI window: DefaultRenewRatio (a third) by
	// default, above 0 and below 1.
	RenewRatio float64
	// ARI follows the CA's ACME Renewal Information (RFC 9773); default
	// true.
	ARI bool
	// Storage is where accounts, certificates and locks live: "file"
	// (the default without [cluster]) or "cluster" (Redis, with a copy
	// on local disk; the default with [cluster]).
	Storage string
	// StorageDir is the file storage's directory, or with storage =
	// "cluster" the directory of the local copy; "" means
	// <state_dir>/certmagic. Instances that share it order each name once.
	StorageDir string
	// DNS configures the dns-01 challenge; nil without [acme.dns].
	DNS *DNS
}

// DNS is [acme.dns]: the dns-01 challenge, used for wildcard hosts and
// sites with acme_challenge = "dns".
type DNS struct {
	// Provider is "rfc2136", "cloudflare" or "exec".
	Provider string
	// Server (host:port), KeyName and KeyAlgorithm are rfc2136's.
	Server       string
	KeyName      string
	KeyAlgorithm string
	// TokenFile or TokenEnv (exactly one, for rfc2136 and cloudflare)
	// names where the credential is: a file (read at start and reload)
	// or an environment variable. The TOML never holds it.
	TokenFile string
	TokenEnv  string
	// Command is the exec provider's program (absolute path).
	Command string
	// Resolvers (host:port) are asked for zones and propagation; nil
	// means the system's.
	Resolvers []string
	// PropagationTimeout bounds the wait for the record to be visible
	// (DefaultDNSPropagationTimeout); PropagationCheck false skips the
	// check. PropagationDelay pauses before it (0: none).
	PropagationTimeout time.Duration
	PropagationCheck   bool
	PropagationDelay   time.Duration
}

// Ban is the fail2ban-like jail.
type Ban struct {
	Enabled  bool
	MaxRetry int
	FindTime time.Duration
	BanTime  time.Duration
	// Statuses are response statuses (e.g. 401, 403 from a login route)
	// that count as strikes on routes with ban_on_status = true.
	Statuses []int
	// MaxBans bounds the bans held (automatic and admin); when full, the
	// ban that ends soonest is dropped for a new one. Default
	// DefaultBanMaxBans; never 0 after Parse.
	MaxBans int
}

// TLSMode says where a site's certificate comes from.
type TLSMode string

// TLS modes.
const (
	TLSACME       TLSMode = "acme"
	TLSFiles      TLSMode = "files"
	TLSSelfSigned TLSMode = "self_signed"
	TLSOff        TLSMode = "off"
)

// Site is a set of host names with their routes.
type Site struct {
	Name  string
	Hosts []string // lower case; "*.example.com" matches one label

	TLS      TLSMode
	CertFile string
	KeyFile  string
	// ACMEProfile overrides acme.profile for this site's hosts ("" keeps
	// it); ACMEChallenge is "http" (http-01 or tls-alpn-01, the default)
	// or "dns" (dns-01; wildcard hosts always use it).
	ACMEProfile   string
	ACMEChallenge string

	HSTS          string // "" sends none
	RedirectHTTPS bool

	AccessLog AccessLog
	// ErrorPages maps a status to the file served for it.
	ErrorPages map[int][]byte
	Allow      []netip.Prefix
	Deny       []netip.Prefix

	// ResponseHeaders are applied to every response of the site
	// (proxied, file and Gatehouse's own), before a route's own rules.
	ResponseHeaders HeaderRules
	// RequestHeaders are applied to every request the site forwards to
	// a backend, before a route's own rules.
	RequestHeaders HeaderRules
	// Compress lets the site's responses be compressed (the default of
	// its routes). Default DefaultCompress; false is the BREACH switch.
	Compress bool

	// Routes sorted by descending prefix length.
	Routes []*Route

	// ErrorPageFiles maps a status to the path its page was read from
	// (for configdump).
	ErrorPageFiles map[int]string
}

// AccessLog configures a site's request log.
type AccessLog struct {
	Path   string // "" off, "stdout" (the default), "stderr", or a file path
	Format string // "json" or "combined"
}

// Route maps a path prefix to an upstream, to a directory of files, or
// to a directory with an upstream for the names it does not hold.
type Route struct {
	// Key is the route's key path in the file ("sites.a.routes[2]"), for
	// messages about it (Config.Problemf); routes are sorted, so their
	// index in Site.Routes is not their place in the file.
	Key string
	// Path is the prefix matched against the normalised, percent-decoded
	// request path; it is itself normalised (no "//", "." or "..").
	Path string
	// Upstream is the upstream the route forwards to; "" for a file
	// route without a fallback. On a file route it is the fallback for
	// names with no file (nginx try_files $uri @backend) and for methods
	// other than GET and HEAD.
	Upstream string
	// Files makes the route serve files from a directory; nil: it
	// forwards everything to Upstream.
	Files *Files
	// Internal (file routes only) answers clients' own requests with 404:
	// only a backend's X-Accel-Redirect reaches the files (nginx
	// internal).
	Internal bool
	// ResponseHeaders and RequestHeaders are the route's own rules,
	// applied after the site's.
	ResponseHeaders HeaderRules
	RequestHeaders  HeaderRules
	// CaseInsensitive matches Path without regard to ASCII case; false
	// (the default) matches case-sensitively, as nginx's prefix
	// locations do.
	CaseInsensitive bool
	// AllowTrace forwards TRACE requests; false (the default, from the
	// site's allow_trace) answers them 405 as nginx does.
	AllowTrace bool
	// AccessLog false silences the access log for this route.
	AccessLog bool
	MaxBody   int64
	Zones     []string
	Allow     []netip.Prefix
	Deny      []netip.Prefix
	// BanOnStatus counts Ban.Statuses answered on this route as strikes.
	BanOnStatus bool
	// ResponseHeaderTimeout overrides the upstream's for this route.
	ResponseHeaderTimeout time.Duration
	// ReadTimeout overrides the upstream's ReadTimeout for this route when
	// ReadTimeoutSet (zero then means no limit, as for a quiet SSE
	// stream).
	ReadTimeout    time.Duration
	ReadTimeoutSet bool
	// Compress lets the route's responses (proxied and files) be
	// compressed, as [compression] says. Default: the site's Compress;
	// false sends every response as the backend or the file has it
	// (BREACH: pages that show a secret next to reflected input).
	Compress bool

	WebSocket WebSocket
}

// WebSocket configures upgrades on a route.
type WebSocket struct {
	Enabled bool
	// Origins allowed; empty means the site's own hosts over https; "*"
	// allows any.
	Origins        []string
	IdleTimeout    time.Duration
	PingInterval   time.Duration // 0: no proxy pings
	PingTimeout    time.Duration
	MaxPerClient   int // 0: no cap
	CloseDelay     time.Duration
	CloseSpread    time.Duration
	ConnectTimeout time.Duration
}

// Upstream is a group of backend servers.
type Upstream struct {
	Name    string
	Policy  string
	Servers []Server

	// Client is the HTTP client to the servers: ClientGatehouse (the
	// default) or ClientNetHTTP.
	Client                string
	Keepalive             int
	KeepaliveTimeout      time.Duration
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	// ReadTimeout is the longest wait between two reads of a response
	// body (nginx proxy_read_timeout); zero means no limit. Default
	// DefaultReadTimeout.
	ReadTimeout time.Duration

	Sticky *Sticky
	Health *Health

	// XAccelRedirect lets the servers' responses name a file of an
	// internal file route with X-Accel-Redirect. Default false: such a
	// response is answered 502 (and logged), and the header is never
	// passed on.
	XAccelRedirect bool

	MaxFails     int
	FailTimeout  time.Duration
	FailStatuses []int

	QueueSize    int
	QueueTimeout time.Duration
	// ClientShare is the fraction (0 < share ≤ 1) of the upstream's slots
	// (the sum of its servers' max_conns) one client key may hold or wait
	// for at once; a request beyond it waits for one of the client's own
	// requests to end (up to QueueTimeout, when QueueSize > 0) or gets
	// 503. It applies only when every server has max_conns. Default
	// DefaultClientShare; 1 switches it off.
	ClientShare float64

	Retries        int
	RetryBudget    time.Duration
	RetryBodyLimit int64

	ResolveInterval time.Duration
	SlowStart       time.Duration
}

// Upstream clients (Upstream.Client).
const (
	// ClientGatehouse is Gatehouse's own HTTP/1.1 client.
	ClientGatehouse = "gatehouse"
	// ClientNetHTTP is net/http's http.Transport.
	ClientNetHTTP = "net/http"
)

// Server is one backend of an upstream.
type Server struct {
	Name     string
	Host     string // IP literal or DNS name
	Port     int
	Weight   int
	Backup   bool
	MaxConns int
	Drain    bool
}

// Sticky is HAProxy's `cookie NAME insert indirect nocache`.
type Sticky struct {
	Cookie   string
	Secret   string
	MaxAge   time.Duration
	Domain   string
	SameSite string
}

// Health is an active health check.
type Health struct {
	Method    string
	Path      string
	Host      string // "" means the first host name of the first site using the upstream
	Expect    []int
	Body      string
	Interval  time.Duration
	Timeout   time.Duration
	Rise      int
	Fall      int
	StartDown bool
}

// Files is where a file route's files come from and how they are sent
// (package staticfile's Options).
type Files struct {
	// Dir is the directory, absolute or relative to the config file's
	// directory.
	Dir string
	// Alias is true for `alias` (the route's path prefix is cut off the
	// request path before it is looked up in Dir, nginx alias) and false
	// for `root` (the whole request path is looked up in Dir, nginx
	// root).
	Alias bool
	// Index lists the file names served for a directory ("dir/"); nil: a
	// directory is 404.
	Index []string
	// CacheControl is the Cache-Control of files whose name carries no
	// content hash; "" is staticfile's default (public, max-age=60;
	// private, no-cache on internal routes).
	CacheControl string
	// ImmutableCacheControl is the Cache-Control of files whose name
	// carries a content hash; "" is staticfile's default (public,
	// max-age=31536000, immutable).
	ImmutableCacheControl string
	// IgnoreHashes turns hashed-name detection off (uploads).
	IgnoreHashes bool
	// Precompressed lists the codings whose precompressed siblings are
	// served (br, zstd, gzip); nil: all three; empty: none.
	Precompressed []string
	// AllowDotFiles serves names with a segment starting with a dot.
	AllowDotFiles bool
}

// OpenFileCache sizes the open-file cache each file route keeps (nginx
// open_file_cache).
type OpenFileCache struct {
	// Entries is the number of names cached per file route; 0 turns the
	// cache off. Default DefaultOpenFileCacheEntries.
	Entries int
	// Valid is how long cached metadata is trusted before stat(2)
	// checks it again; 0 checks on every request. Default
	// DefaultOpenFileCacheValid.
	Valid time.Duration
	// Inactive is how long an unused entry is kept. Default
	// DefaultOpenFileCacheInactive.
	Inactive time.Duration
	// Memory is the budget, in bytes per file route, for small files
	// kept in memory; 0: none. Default DefaultOpenFileCacheMemory.
	Memory int64
}

// Compression configures the compression of responses, for the whole
// process (package compress's Options). Sites and routes only switch it
// on or off (Compress).
type Compression struct {
	// Encodings are the codings offered, "gzip", "zstd" and "br", in the
	// server's order of preference (it decides between codings a client
	// weighs equally, as browsers do). Never empty. Default
	// DefaultCompressionEncodings().
	Encodings []string
	// Types are the media types compressed, lower case: "type/subtype",
	// "type/*" or "*/*+suffix". Never empty. Default
	// DefaultCompressionTypes().
	Types []string
	// MinLength is the smallest body compressed, in bytes; 0 compresses
	// every non-empty body. At most MaxCompressionMinLength. Default
	// DefaultCompressionMinLength.
	MinLength int
	// GzipLevel (1-9), ZstdLevel (1-4: fastest, default, better, best)
	// and BrotliLevel (1-11) are the encoders' levels. Defaults
	// DefaultCompressionGzipLevel, DefaultCompressionZstdLevel,
	// DefaultCompressionBrotliLevel.
	GzipLevel   int
	ZstdLevel   int
	BrotliLevel int
	// MaxEncoders caps the stateful encoders in use at once in the
	// process; past it a response gets stateless gzip or goes out
	// uncompressed. 0: none (stateless gzip only, streams uncompressed).
	// Read at start: a reload does not change it. Default
	// DefaultCompressionMaxEncoders.
	MaxEncoders int
	// MaxFileSize is the largest file, in bytes, a file route compresses
	// per request when it has no precompressed sibling; larger ones go
	// out as they are (with sendfile). 0: files are never compressed per
	// request. Default DefaultCompressionMaxFileSize.
	MaxFileSize int64
}

// RequestID configures request IDs.
type RequestID struct {
	// Enabled gives every request an ID, sent to the backend and back to
	// the client, written in the access log and on error pages. Default
	// true.
	Enabled bool
	// Header is the canonical name of the header that carries it.
	// Default DefaultRequestIDHeader.
	Header string
}

// HeaderRules change a message's header fields: Remove first, then Set
// (replacing any field of the name), then Add (appending a field line).
// Names are canonical (textproto.CanonicalMIMEHeaderKey) and a name
// appears in at most one of Remove and Set.
type HeaderRules struct {
	Remove []string
	Set    []HeaderField
	Add    []HeaderField
}

// Empty reports whether the rules change nothing.
func (h HeaderRules) Empty() bool { return len(h.Remove) == 0 && len(h.Set) == 0 && len(h.Add) == 0 }

// HeaderField is a header field a rule writes: one field line per value.
type HeaderField struct {
	Name   string
	Values []HeaderValue
}

// HeaderValue is a field value: the concatenation of its parts. A
// response header's value has one literal part; a request header's may
// hold variables.
type HeaderValue []ValuePart

// ValuePart is a literal (Var == VarNone) or a variable.
type ValuePart struct {
	Lit string
	Var Var
}

// Var is a variable of a request header rule's value.
type Var uint8

// The variables ($name or ${name} in a request header value).
const (
	VarNone        Var = iota
	VarRemoteAddr      // $remote_addr: the client address (from trusted proxies)
	VarScheme          // $scheme: http or https, as the client connected
	VarHost            // $host: the request's host name, lower case, no port
	VarRequestID       // $request_id: the request ID ("" when request IDs are off)
	VarSSLProtocol     // $ssl_protocol: TLSv1.2 or TLSv1.3; "" over plain HTTP
)

// Zone is a request rate limit (nginx limit_req_zone).
type Zone struct {
	Name string
	// Rate in requests per second.
	Rate       float64
	RateText   string
	Burst      int
	Delay      bool
	MaxKeys    int
	Status     int
	DryRun     bool
	IPv6Prefix int
	// Scope is ScopeLocal (the default: each instance has its own
	// buckets) or ScopeCluster (one budget shared by every instance
	// through [cluster]'s Redis; nodelay mode only).
	Scope string
}

// Zone scopes.
const (
	ScopeLocal   = "local"
	ScopeCluster = "cluster"
)

// ACME storages (ACME.Storage).
const (
	StorageFile    = "file"
	StorageCluster = "cluster"
)

// Cluster is [cluster]: the Redis or Valkey server several instances
// share certificates, bans and cluster-scoped rate limits through.
type Cluster struct {
	// URL is the server: redis://host:port/db, rediss://… (TLS) or
	// unix:///path. It never holds a password (PasswordFile or
	// PasswordEnv do); a user name may be in it or in Username.
	URL string
	// Username is the ACL user ("" : the URL's, else the default user).
	Username string
	// PasswordFile or PasswordEnv (at most one) names where the password
	// is: a file (read at start) or an environment variable. Neither: no
	// AUTH.
	PasswordFile string
	PasswordEnv  string
	// CAFile is a PEM file of roots trusted for rediss:// ("": the
	// system's).
	CAFile string
	// KeyPrefix starts every key Gatehouse writes (DefaultClusterKeyPrefix),
	// so several clusters or other applications can share one server.
	KeyPrefix string
	// Instance is this instance's name, unique in the cluster; "" means
	// the host name.
	Instance string
	// Timeout is the latency budget of one rate-limit decision: a request
	// never waits longer for Redis, and decides from the local fallback
	// bucket instead (DefaultClusterTimeout).
	Timeout time.Duration
	// Heartbeat is how often an instance announces itself; an instance
	// silent for 3 heartbeats is no longer counted as live
	// (DefaultClusterHeartbeat).
	Heartbeat time.Duration
	// BanSync is the period of the full ban synchronisation that repairs
	// what pub/sub missed (DefaultClusterBanSync).
	BanSync time.Duration
}

// defaultCipherSuites are the reference's TLS 1.2 suites plus ChaCha20.
var defaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// DefaultCipherSuites returns the TLS 1.2 suites used when none are
// configured.
func DefaultCipherSuites() []uint16 {
	return append([]uint16(nil), defaultCipherSuites...)
}
