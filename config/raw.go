package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The raw* types mirror the TOML file. Every optional field is either a
// pointer or a type that remembers whether it was set, so defaults are
// applied in one place (compile) and an explicit zero stays a zero.

type rawConfig struct {
	StateDir       *string              `toml:"state_dir"`
	GracePeriod    duration             `toml:"grace_period"`
	Log            rawLog               `toml:"log"`
	Listeners      rawListeners         `toml:"listeners"`
	Timeouts       rawTimeouts          `toml:"timeouts"`
	Limits         rawLimits            `toml:"limits"`
	ACME           rawACME              `toml:"acme"`
	TrustedProxies []string             `toml:"trusted_proxies"`
	Ban            rawBan               `toml:"ban"`
	Sites          map[string]rawSite   `toml:"sites"`
	Upstreams      map[string]rawUpstrm `toml:"upstreams"`
	Zones          map[string]rawZone   `toml:"zones"`
	Runtime        rawRuntime           `toml:"runtime"`
	RequestID      rawRequestID         `toml:"request_id"`
	OpenFileCache  rawOpenFileCache     `toml:"open_file_cache"`
	Compression    rawCompression       `toml:"compression"`
	Cluster        *rawCluster          `toml:"cluster"`
}

type rawCluster struct {
	URL          string   `toml:"url"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	PasswordEnv  string   `toml:"password_env"`
	CAFile       string   `toml:"ca_file"`
	KeyPrefix    *string  `toml:"key_prefix"`
	Instance     string   `toml:"instance"`
	Timeout      duration `toml:"timeout"`
	Heartbeat    duration `toml:"heartbeat"`
	BanSync      duration `toml:"ban_sync"`
}

type rawRequestID struct {
	Enabled *bool  `toml:"enabled"`
	Header  string `toml:"header"`
}

type rawOpenFileCache struct {
	Entries  *int     `toml:"entries"`
	Valid    duration `toml:"valid"`
	Inactive duration `toml:"inactive"`
	Memory   size     `toml:"memory"`
}

// rawHeaders is a [*.response_headers] or [*.request_headers] table.
type rawHeaders struct {
	Remove []string                `toml:"remove"`
	Set    map[string]headerValues `toml:"set"`
	Add    map[string]headerValues `toml:"add"`
}

// headerValues is a header value, or a list of them (one field line
// each).
type headerValues []string

// UnmarshalTOML accepts a string or an array of strings.
func (h *headerValues) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*h = headerValues{x}
		return nil
	case []any:
		out := make(headerValues, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("header values must be strings, not %v", e)
			}
			out = append(out, s)
		}
		*h = out
		return nil
	}
	return fmt.Errorf("a header value must be a string or an array of strings, not %v", v)
}

// rawRuntime is read only to name runtime.min_heap, which was removed.
type rawRuntime struct {
	MinHeap size `toml:"min_heap"`
}

type rawLog struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type rawListeners struct {
	HTTP  rawListener `toml:"http"`
	HTTPS rawListener `toml:"https"`
	Admin rawAdmin    `toml:"admin"`
}

type rawListener struct {
	Address        *string  `toml:"address"`
	ProxyProtocol  bool     `toml:"proxy_protocol"`
	MaxConns       int      `toml:"max_conns"`
	MinVersion     string   `toml:"min_version"`
	MaxVersion     string   `toml:"max_version"`
	Ciphers        []string `toml:"ciphers"`
	SessionTickets bool     `toml:"session_tickets"`
	Curves         []string `toml:"curves"`
	HTTP2          *bool    `toml:"http2"`
	OCSPStapling   *bool    `toml:"ocsp_stapling"`
}

type rawAdmin struct {
	Address     *string  `toml:"address"`
	AllowRemote bool     `toml:"allow_remote"`
	Token       string   `toml:"token"`
	Pprof       bool     `toml:"pprof"`
	Hosts       []string `toml:"hosts"`
}

type rawTimeouts struct {
	ClientHeader    duration `toml:"client_header"`
	ClientBody      duration `toml:"client_body"`
	ClientBodyTotal duration `toml:"client_body_total"`
	Send            duration `toml:"send"`
	Keepalive       duration `toml:"keepalive"`
}

type rawLimits struct {
	MaxBody         size `toml:"max_body"`
	MaxHeaderBytes  size `toml:"max_header_bytes"`
	HTTP2MaxStreams *int `toml:"http2_max_streams"`
	HTTP2MaxResets  *int `toml:"http2_max_resets"`
	ConnPerIP       *int `toml:"conn_per_ip"`
	IPv6Prefix      *int `toml:"ipv6_prefix"`
}

type rawACME struct {
	Email       string   `toml:"email"`
	Directory   string   `toml:"directory"`
	EABKeyID    string   `toml:"eab_key_id"`
	EABHMACKey  string   `toml:"eab_hmac_key"`
	RenewBefore duration `toml:"renew_before"`
	HTTP01      *bool    `toml:"http01"`
	TLSALPN01   *bool    `toml:"tls_alpn01"`
	CARoots     string   `toml:"ca_roots"`
	Profile     string   `toml:"profile"`
	RenewRatio  *float64 `toml:"renew_ratio"`
	ARI         *bool    `toml:"ari"`
	Storage     string   `toml:"storage"`
	StorageDir  string   `toml:"storage_dir"`
	DNS         *rawDNS  `toml:"dns"`
}

type rawDNS struct {
	Provider           string   `toml:"provider"`
	Server             string   `toml:"server"`
	KeyName            string   `toml:"key_name"`
	KeyAlgorithm       string   `toml:"key_algorithm"`
	TokenFile          string   `toml:"token_file"`
	TokenEnv           string   `toml:"token_env"`
	Command            string   `toml:"command"`
	Resolvers          []string `toml:"resolvers"`
	PropagationTimeout duration `toml:"propagation_timeout"`
	PropagationDelay   duration `toml:"propagation_delay"`
	PropagationCheck   *bool    `toml:"propagation_check"`
}

type rawBan struct {
	Enabled  bool     `toml:"enabled"`
	MaxRetry *int     `toml:"max_retry"`
	FindTime duration `toml:"find_time"`
	BanTime  duration `toml:"ban_time"`
	Statuses []int    `toml:"statuses"`
	MaxBans  *int     `toml:"max_bans"`
}

type rawSite struct {
	Hosts         []string          `toml:"hosts"`
	Default       bool              `toml:"default"`
	TLS           string            `toml:"tls"`
	CertFile      string            `toml:"cert_file"`
	KeyFile       string            `toml:"key_file"`
	ACMEProfile   string            `toml:"acme_profile"`
	ACMEChallenge string            `toml:"acme_challenge"`
	HSTS          *string           `toml:"hsts"`
	RedirectHTTPS *bool             `toml:"redirect_https"`
	AccessLog     *string           `toml:"access_log"`
	AccessFormat  string            `toml:"access_log_format"`
	MaxBody       size              `toml:"max_body"`
	ErrorPages    map[string]string `toml:"error_pages"`
	Allow         []string          `toml:"allow"`
	Deny          []string          `toml:"deny"`
	AllowTrace    *bool             `toml:"allow_trace"`
	RespHeaders   rawHeaders        `toml:"response_headers"`
	ReqHeaders    rawHeaders        `toml:"request_headers"`
	Compress      *bool             `toml:"compress"`
	Routes        []rawRoute        `toml:"routes"`
}

type rawRoute struct {
	Path                  string       `toml:"path"`
	Upstream              string       `toml:"upstream"`
	AccessLog             *bool        `toml:"access_log"`
	MaxBody               size         `toml:"max_body"`
	Limit                 []string     `toml:"limit"`
	Allow                 []string     `toml:"allow"`
	Deny                  []string     `toml:"deny"`
	BanOnStatus           bool         `toml:"ban_on_status"`
	ResponseHeaderTimeout duration     `toml:"response_header_timeout"`
	CaseInsensitive       *bool        `toml:"case_insensitive"`
	AllowTrace            *bool        `toml:"allow_trace"`
	ReadTimeout           duration     `toml:"read_timeout"`
	WebSocket             rawWebSocket `toml:"websocket"`
	RespHeaders           rawHeaders   `toml:"response_headers"`
	ReqHeaders            rawHeaders   `toml:"request_headers"`
	Compress              *bool        `toml:"compress"`

	// File routes.
	Alias                 *string  `toml:"alias"`
	Root                  *string  `toml:"root"`
	Internal              bool     `toml:"internal"`
	Index                 []string `toml:"index"`
	CacheControl          *string  `toml:"cache_control"`
	ImmutableCacheControl *string  `toml:"immutable_cache_control"`
	IgnoreHashes          bool     `toml:"ignore_hashes"`
	Precompressed         []string `toml:"precompressed"`
	AllowDotFiles         bool     `toml:"allow_dot_files"`
}

type rawWebSocket struct {
	Enabled        bool     `toml:"enabled"`
	Origins        []string `toml:"origins"`
	IdleTimeout    duration `toml:"idle_timeout"`
	PingInterval   duration `toml:"ping_interval"`
	PingTimeout    duration `toml:"ping_timeout"`
	MaxPerClient   int      `toml:"max_per_client"`
	CloseDelay     duration `toml:"close_delay"`
	CloseSpread    duration `toml:"close_spread"`
	ConnectTimeout duration `toml:"connect_timeout"`
}

type rawUpstrm struct {
	Policy                string      `toml:"policy"`
	Client                string      `toml:"client"`
	Servers               []rawServer `toml:"servers"`
	Keepalive             *int        `toml:"keepalive"`
	KeepaliveTimeout      duration    `toml:"keepalive_timeout"`
	ConnectTimeout        duration    `toml:"connect_timeout"`
	ResponseHeaderTimeout duration    `toml:"response_header_timeout"`
	ReadTimeout           duration    `toml:"read_timeout"`
	Sticky                *rawSticky  `toml:"sticky"`
	Health                *rawHealth  `toml:"health"`
	MaxFails              *int        `toml:"max_fails"`
	FailTimeout           duration    `toml:"fail_timeout"`
	FailStatuses          []int       `toml:"fail_statuses"`
	QueueSize             int         `toml:"queue"`
	QueueTimeout          duration    `toml:"queue_timeout"`
	ClientShare           *float64    `toml:"client_share"`
	Retries               *int        `toml:"retries"`
	RetryBudget           duration    `toml:"retry_budget"`
	RetryBodyLimit        size        `toml:"retry_body_limit"`
	ResolveInterval       duration    `toml:"resolve_interval"`
	SlowStart             duration    `toml:"slow_start"`
	XAccelRedirect        bool        `toml:"x_accel_redirect"`
}

type rawServer struct {
	Name     string `toml:"name"`
	Address  string `toml:"address"`
	Weight   *int   `toml:"weight"`
	Backup   bool   `toml:"backup"`
	MaxConns int    `toml:"max_conns"`
	Drain    bool   `toml:"drain"`
}

type rawSticky struct {
	Cookie   string   `toml:"cookie"`
	Secret   string   `toml:"secret"`
	MaxAge   duration `toml:"max_age"`
	Domain   string   `toml:"domain"`
	SameSite string   `toml:"same_site"`
}

type rawHealth struct {
	Method    string   `toml:"method"`
	Path      string   `toml:"path"`
	Host      string   `toml:"host"`
	Expect    []int    `toml:"expect_status"`
	Body      string   `toml:"expect_body"`
	Interval  duration `toml:"interval"`
	Timeout   duration `toml:"timeout"`
	Rise      *int     `toml:"rise"`
	Fall      *int     `toml:"fall"`
	StartDown bool     `toml:"start_down"`
}

type rawZone struct {
	Rate       string `toml:"rate"`
	Burst      int    `toml:"burst"`
	Mode       string `toml:"mode"`
	MaxKeys    *int   `toml:"max_keys"`
	Status     *int   `toml:"status"`
	DryRun     bool   `toml:"dry_run"`
	IPv6Prefix *int   `toml:"ipv6_prefix"`
	Scope      string `toml:"scope"`
}

// duration is a TOML string such as "12s", "24h" or "7d" that remembers
// whether it was set.
type duration struct {
	d   time.Duration
	set bool
}

func (d *duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.d, d.set = v, true
	return nil
}

// or returns the value, or def when unset.
func (d duration) or(def time.Duration) time.Duration {
	if d.set {
		return d.d
	}
	return def
}

// ParseDuration accepts Go durations ("1m30s") plus whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. \"30s\", \"5m\", \"24h\", \"7d\")", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. \"30s\", \"5m\", \"24h\", \"7d\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return d, nil
}

// size is a byte count: an integer, or a string with a unit ("10M",
// "10MiB", "512k", "1KB"); k/M/G are binary multiples as in nginx.
type size struct {
	n   int64
	set bool
}

func (s *size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	s.n, s.set = v, true
	return nil
}

// UnmarshalTOML accepts a bare integer as well as a string.
func (s *size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("invalid size %d: must not be negative", x)
		}
		s.n, s.set = x, true
		return nil
	case string:
		return s.UnmarshalText([]byte(x))
	default:
		return fmt.Errorf("invalid size %v: want an integer or a string such as \"10MiB\"", v)
	}
}

func (s size) or(def int64) int64 {
	if s.set {
		return s.n
	}
	return def
}

// ParseSize parses "10M", "10MiB", "10MB", "512k", "1024" into bytes.
// Every unit is binary (nginx's convention: 1M = 1,048,576 bytes).
func ParseSize(str string) (int64, error) {
	s := strings.TrimSpace(str)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. \"10MiB\", \"512k\" or a byte count)", str)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", str, err)
	}
	var mult int64
	switch strings.ToLower(strings.TrimSpace(s[i:])) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use k, M or G)", str, s[i:])
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", str)
	}
	return n * mult, nil
}
