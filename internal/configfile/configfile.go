// Package configfile is the format of Gatehouse's configuration file: Go
// structs that mirror its TOML tables key for key, as read before any
// default is applied or any value checked (package config does both), and
// as written back by package configdump.
//
// Every optional key is either a pointer or a type that remembers whether
// it was set (Duration, Size), so defaults are applied in one place and an
// explicit zero stays a zero. A key is declared once, here: decoding
// (internal/tomlstruct) and writing both follow the `toml` tags.
package configfile

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File is the whole configuration file.
type File struct {
	StateDir       *string             `toml:"state_dir"`
	GracePeriod    Duration            `toml:"grace_period"`
	Log            Log                 `toml:"log"`
	Listeners      Listeners           `toml:"listeners"`
	Timeouts       Timeouts            `toml:"timeouts"`
	Limits         Limits              `toml:"limits"`
	ACME           ACME                `toml:"acme"`
	TrustedProxies []string            `toml:"trusted_proxies"`
	Ban            Ban                 `toml:"ban"`
	Sites          map[string]Site     `toml:"sites"`
	Upstreams      map[string]Upstream `toml:"upstreams"`
	Zones          map[string]Zone     `toml:"zones"`
	Runtime        Runtime             `toml:"runtime"`
	RequestID      RequestID           `toml:"request_id"`
	OpenFileCache  OpenFileCache       `toml:"open_file_cache"`
	Compression    Compression         `toml:"compression"`
	Cluster        *Cluster            `toml:"cluster"`
}

// Cluster is the [cluster] table.
type Cluster struct {
	URL          string   `toml:"url"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	PasswordEnv  string   `toml:"password_env"`
	CAFile       string   `toml:"ca_file"`
	KeyPrefix    *string  `toml:"key_prefix"`
	Instance     string   `toml:"instance"`
	Timeout      Duration `toml:"timeout"`
	Heartbeat    Duration `toml:"heartbeat"`
	BanSync      Duration `toml:"ban_sync"`
}

// RequestID is the [request_id] table.
type RequestID struct {
	Enabled *bool  `toml:"enabled"`
	Header  string `toml:"header"`
}

// OpenFileCache is the [open_file_cache] table.
type OpenFileCache struct {
	Entries  *int     `toml:"entries"`
	Valid    Duration `toml:"valid"`
	Inactive Duration `toml:"inactive"`
	Memory   Size     `toml:"memory"`
}

// Headers is a [*.response_headers] or [*.request_headers] table.
type Headers struct {
	Remove []string                `toml:"remove"`
	Set    map[string]HeaderValues `toml:"set"`
	Add    map[string]HeaderValues `toml:"add"`
}

// HeaderValues is a header value, or a list of them (one field line
// each).
type HeaderValues []string

// UnmarshalTOML accepts a string or an array of strings.
func (h *HeaderValues) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*h = HeaderValues{x}
		return nil
	case []any:
		out := make(HeaderValues, 0, len(x))
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

// Runtime is read only to name runtime.min_heap, which was removed.
type Runtime struct {
	MinHeap Size `toml:"min_heap"`
}

// Log is the [log] table.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Listeners is the [listeners] table.
type Listeners struct {
	HTTP  Listener `toml:"http"`
	HTTPS Listener `toml:"https"`
	Admin Admin    `toml:"admin"`
}

// Listener is [listeners.http] or [listeners.https].
type Listener struct {
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

// Admin is the [listeners.admin] table.
type Admin struct {
	Address     *string  `toml:"address"`
	AllowRemote bool     `toml:"allow_remote"`
	Token       string   `toml:"token"`
	Pprof       bool     `toml:"pprof"`
	Hosts       []string `toml:"hosts"`
}

// Timeouts is the [timeouts] table.
type Timeouts struct {
	ClientHeader    Duration `toml:"client_header"`
	ClientBody      Duration `toml:"client_body"`
	ClientBodyTotal Duration `toml:"client_body_total"`
	Send            Duration `toml:"send"`
	Keepalive       Duration `toml:"keepalive"`
}

// Limits is the [limits] table.
type Limits struct {
	MaxBody         Size `toml:"max_body"`
	MaxHeaderBytes  Size `toml:"max_header_bytes"`
	HTTP2MaxStreams *int `toml:"http2_max_streams"`
	HTTP2MaxResets  *int `toml:"http2_max_resets"`
	ConnPerIP       *int `toml:"conn_per_ip"`
	IPv6Prefix      *int `toml:"ipv6_prefix"`
}

// ACME is the [acme] table.
type ACME struct {
	Email       string   `toml:"email"`
	Directory   string   `toml:"directory"`
	EABKeyID    string   `toml:"eab_key_id"`
	EABHMACKey  string   `toml:"eab_hmac_key"`
	RenewBefore Duration `toml:"renew_before"`
	HTTP01      *bool    `toml:"http01"`
	TLSALPN01   *bool    `toml:"tls_alpn01"`
	CARoots     string   `toml:"ca_roots"`
	Profile     string   `toml:"profile"`
	RenewRatio  *float64 `toml:"renew_ratio"`
	ARI         *bool    `toml:"ari"`
	Storage     string   `toml:"storage"`
	StorageDir  string   `toml:"storage_dir"`
	DNS         *DNS     `toml:"dns"`
}

// DNS is the [acme.dns] table.
type DNS struct {
	Provider           string   `toml:"provider"`
	Server             string   `toml:"server"`
	KeyName            string   `toml:"key_name"`
	KeyAlgorithm       string   `toml:"key_algorithm"`
	TokenFile          string   `toml:"token_file"`
	TokenEnv           string   `toml:"token_env"`
	Command            string   `toml:"command"`
	Resolvers          []string `toml:"resolvers"`
	PropagationTimeout Duration `toml:"propagation_timeout"`
	PropagationDelay   Duration `toml:"propagation_delay"`
	PropagationCheck   *bool    `toml:"propagation_check"`
}

// Ban is the [ban] table.
type Ban struct {
	Enabled  bool     `toml:"enabled"`
	MaxRetry *int     `toml:"max_retry"`
	FindTime Duration `toml:"find_time"`
	BanTime  Duration `toml:"ban_time"`
	Statuses []int    `toml:"statuses"`
	MaxBans  *int     `toml:"max_bans"`
}

// Site is a [sites.NAME] table.
type Site struct {
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
	MaxBody       Size              `toml:"max_body"`
	ErrorPages    map[string]string `toml:"error_pages"`
	Allow         []string          `toml:"allow"`
	Deny          []string          `toml:"deny"`
	AllowTrace    *bool             `toml:"allow_trace"`
	RespHeaders   Headers           `toml:"response_headers"`
	ReqHeaders    Headers           `toml:"request_headers"`
	Compress      *bool             `toml:"compress"`
	Routes        []Route           `toml:"routes"`
}

// Route is a [[sites.NAME.routes]] element.
type Route struct {
	Path                  string    `toml:"path"`
	Upstream              string    `toml:"upstream"`
	AccessLog             *bool     `toml:"access_log"`
	MaxBody               Size      `toml:"max_body"`
	Limit                 []string  `toml:"limit"`
	Allow                 []string  `toml:"allow"`
	Deny                  []string  `toml:"deny"`
	BanOnStatus           bool      `toml:"ban_on_status"`
	ResponseHeaderTimeout Duration  `toml:"response_header_timeout"`
	CaseInsensitive       *bool     `toml:"case_insensitive"`
	AllowTrace            *bool     `toml:"allow_trace"`
	ReadTimeout           Duration  `toml:"read_timeout"`
	WebSocket             WebSocket `toml:"websocket"`
	RespHeaders           Headers   `toml:"response_headers"`
	ReqHeaders            Headers   `toml:"request_headers"`
	Compress              *bool     `toml:"compress"`

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

// WebSocket is a route's websocket table.
type WebSocket struct {
	Enabled        bool     `toml:"enabled"`
	Origins        []string `toml:"origins"`
	IdleTimeout    Duration `toml:"idle_timeout"`
	PingInterval   Duration `toml:"ping_interval"`
	PingTimeout    Duration `toml:"ping_timeout"`
	MaxPerClient   int      `toml:"max_per_client"`
	CloseDelay     Duration `toml:"close_delay"`
	CloseSpread    Duration `toml:"close_spread"`
	ConnectTimeout Duration `toml:"connect_timeout"`
}

// Upstream is an [upstreams.NAME] table.
type Upstream struct {
	Policy                string   `toml:"policy"`
	Client                string   `toml:"client"`
	Servers               []Server `toml:"servers"`
	Keepalive             *int     `toml:"keepalive"`
	KeepaliveTimeout      Duration `toml:"keepalive_timeout"`
	ConnectTimeout        Duration `toml:"connect_timeout"`
	ResponseHeaderTimeout Duration `toml:"response_header_timeout"`
	ReadTimeout           Duration `toml:"read_timeout"`
	Sticky                *Sticky  `toml:"sticky"`
	Health                *Health  `toml:"health"`
	MaxFails              *int     `toml:"max_fails"`
	FailTimeout           Duration `toml:"fail_timeout"`
	FailStatuses          []int    `toml:"fail_statuses"`
	QueueSize             int      `toml:"queue"`
	QueueTimeout          Duration `toml:"queue_timeout"`
	ClientShare           *float64 `toml:"client_share"`
	Retries               *int     `toml:"retries"`
	RetryBudget           Duration `toml:"retry_budget"`
	RetryBodyLimit        Size     `toml:"retry_body_limit"`
	ResolveInterval       Duration `toml:"resolve_interval"`
	SlowStart             Duration `toml:"slow_start"`
	XAccelRedirect        bool     `toml:"x_accel_redirect"`
}

// Server is an element of an upstream's servers.
type Server struct {
	Name     string `toml:"name"`
	Address  string `toml:"address"`
	Weight   *int   `toml:"weight"`
	Backup   bool   `toml:"backup"`
	MaxConns int    `toml:"max_conns"`
	Drain    bool   `toml:"drain"`
}

// Sticky is an upstream's sticky table.
type Sticky struct {
	Cookie   string   `toml:"cookie"`
	Secret   string   `toml:"secret"`
	MaxAge   Duration `toml:"max_age"`
	Domain   string   `toml:"domain"`
	SameSite string   `toml:"same_site"`
}

// Health is an upstream's health table.
type Health struct {
	Method    string   `toml:"method"`
	Path      string   `toml:"path"`
	Host      string   `toml:"host"`
	Expect    []int    `toml:"expect_status"`
	Body      string   `toml:"expect_body"`
	Interval  Duration `toml:"interval"`
	Timeout   Duration `toml:"timeout"`
	Rise      *int     `toml:"rise"`
	Fall      *int     `toml:"fall"`
	StartDown bool     `toml:"start_down"`
}

// Compression is the [compression] table.
type Compression struct {
	Encodings   []string `toml:"encodings"`
	Types       []string `toml:"types"`
	MinLength   Size     `toml:"min_length"`
	GzipLevel   *int     `toml:"gzip_level"`
	ZstdLevel   *int     `toml:"zstd_level"`
	BrotliLevel *int     `toml:"brotli_level"`
	MaxEncoders *int     `toml:"max_encoders"`
	MaxFileSize Size     `toml:"max_file_size"`
}

// Zone is a [zones.NAME] table.
type Zone struct {
	Rate       string `toml:"rate"`
	Burst      int    `toml:"burst"`
	Mode       string `toml:"mode"`
	MaxKeys    *int   `toml:"max_keys"`
	Status     *int   `toml:"status"`
	DryRun     bool   `toml:"dry_run"`
	IPv6Prefix *int   `toml:"ipv6_prefix"`
	Scope      string `toml:"scope"`
}

// Duration is a TOML string such as "12s", "24h" or "7d" that remembers
// whether it was set.
type Duration struct {
	Value time.Duration
	Set   bool // false: the key is absent (Value is 0)
}

// UnmarshalText parses a duration with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Value, d.Set = v, true
	return nil
}

// Or returns the value, or def when unset.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.Set {
		return d.Value
	}
	return def
}

// TOMLValue is the value as the file writes it, shortest first ("7d",
// "90s", "1h30m"), and whether it is set.
func (d Duration) TOMLValue() (any, bool) { return FormatDuration(d.Value), d.Set }

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

// FormatDuration writes d as ParseDuration reads it, shortest first:
// "7d", "90s", "1h30m".
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Size is a byte count: an integer, or a string with a unit ("10M",
// "10MiB", "512k", "1KB"); k/M/G are binary multiples as in nginx.
type Size struct {
	Value int64 // bytes
	Set   bool  // false: the key is absent (Value is 0)
}

// UnmarshalText parses a size with ParseSize.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	s.Value, s.Set = v, true
	return nil
}

// UnmarshalTOML accepts a bare integer as well as a string.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("invalid size %d: must not be negative", x)
		}
		s.Value, s.Set = x, true
		return nil
	case string:
		return s.UnmarshalText([]byte(x))
	default:
		return fmt.Errorf("invalid size %v: want an integer or a string such as \"10MiB\"", v)
	}
}

// Or returns the value, or def when unset.
func (s Size) Or(def int64) int64 {
	if s.Set {
		return s.Value
	}
	return def
}

// TOMLValue is the value as the file writes it, in the largest binary
// unit that divides it (the string "10M", or the integer 1000), and
// whether it is set.
func (s Size) TOMLValue() (any, bool) {
	for _, u := range []struct {
		unit string
		mult int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"k", 1 << 10}} {
		if s.Value > 0 && s.Value%u.mult == 0 {
			return strconv.FormatInt(s.Value/u.mult, 10) + u.unit, s.Set
		}
	}
	return s.Value, s.Set
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
