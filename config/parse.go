package config

import (
	"crypto/tls"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
	"github.com/gatehouse-proxy/gatehouse/internal/headerpolicy"
	"github.com/gatehouse-proxy/gatehouse/internal/tlsnames"
	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the embedded configuration used by `gatehouse run`
// without -config: local development in front of Daphne on :8000.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// Load reads and parses the file at path. Relative paths inside the file
// (certificates, error pages, logs) are resolved against its directory.
//
// The file must be a regular file (a link to one is fine) of at most
// MaxConfigFileSize bytes.
func Load(path string) (*Config, error) {
	b, err := ReadFile(path, FileRule{MaxBytes: MaxConfigFileSize})
	if err != nil {
		return nil, err
	}
	return ParseFile(b, path)
}

// Parse parses a configuration that has no file name.
func Parse(b []byte) (*Config, error) { return ParseFile(b, "") }

// Problem is one thing wrong with a configuration.
type Problem struct {
	File string
	Line int    // 0 when unknown
	Key  string // e.g. "sites.main.routes[0].upstream"
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a configuration. Parse returns it as
// its error; errors.As recovers the list.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// ParseFile parses b, naming file in errors and resolving relative paths
// against file's directory.
//
// Every problem is reported, not only the first: a value that cannot be
// decoded (a bad duration or size, a string where a number belongs, an
// unknown key) is a problem with its key path and line, and the rest of
// the file is still decoded and checked. Only a TOML syntax error stops
// at once, since nothing after it can be read reliably.
func ParseFile(b []byte, file string) (*Config, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(b), &tree); err != nil {
		var pe toml.ParseError
		var ppe *toml.ParseError
		if errors.As(err, &ppe) {
			pe = *ppe
		}
		if ppe != nil || errors.As(err, &pe) {
			return nil, Problems{{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}}
		}
		return nil, Problems{{File: file, Msg: err.Error()}}
	}
	c := &compiler{file: file, lines: tomlstruct.ScanLines(string(b))}
	if file != "" {
		c.dir = filepath.Dir(file)
	}
	c.dec.Report = func(key, msg string) { c.errf(key, "%s", msg) }
	var raw configfile.File
	c.dec.Decode(tree, &raw)
	cfg := c.compile(&raw)
	if len(c.problems) > 0 {
		sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Line < c.problems[j].Line })
		return nil, c.problems
	}
	cfg.Source = file
	cfg.lines = c.lines
	return cfg, nil
}

type compiler struct {
	file     string
	dir      string
	lines    tomlstruct.Lines
	problems Problems
	// dec decodes the file into configfile.File and remembers the values
	// it could not decode, whose consequences errf leaves out.
	dec tomlstruct.Decoder
}

// errf records a problem at key, unless it follows from a value that
// could not be decoded (one problem per mistake).
func (c *compiler) errf(key, format string, args ...any) {
	if c.dec.Failed(key, c.lines.Has(key)) {
		return
	}
	c.problems = append(c.problems, Problem{File: c.file, Line: c.lines.Line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Problemf makes a Problem about key in c's file, with the line the key is
// on: for checks made after parsing (file permissions, the state
// directory) that report like parse errors.
func (c *Config) Problemf(key, format string, args ...any) Problem {
	return Problem{File: c.Source, Line: c.lines.Line(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

func (c *compiler) compile(r *configfile.File) *Config {
	cfg := &Config{
		StateDir:    DefaultStateDir,
		GracePeriod: r.GracePeriod.Or(DefaultGracePeriod),
		Upstreams:   map[string]*Upstream{},
		Zones:       map[string]*Zone{},
	}
	if r.StateDir != nil {
		if *r.StateDir == "" {
			c.errf("state_dir", "must not be empty")
		}
		cfg.StateDir = c.path(*r.StateDir)
		cfg.StateDirSet = true
	}

	// Log.
	switch strings.ToLower(r.Log.Level) {
	case "", "info":
		cfg.Log.Level = slog.LevelInfo
	case "debug":
		cfg.Log.Level = slog.LevelDebug
	case "warn", "warning":
		cfg.Log.Level = slog.LevelWarn
	case "error":
		cfg.Log.Level = slog.LevelError
	default:
		c.errf("log.level", "must be debug, info, warn or error, not %q", r.Log.Level)
	}
	cfg.Log.Format = r.Log.Format
	switch r.Log.Format {
	case "":
		cfg.Log.Format = "text"
	case "text", "json":
	default:
		c.errf("log.format", "must be text or json, not %q", r.Log.Format)
	}

	cfg.HTTP = c.listener("listeners.http", r.Listeners.HTTP, DefaultHTTPAddress, false)
	cfg.HTTPS = c.listener("listeners.https", r.Listeners.HTTPS, DefaultHTTPSAddress, true)
	cfg.Admin = c.admin(r.Listeners.Admin)

	cfg.Timeouts = Timeouts{
		ClientHeader:    c.positive("timeouts.client_header", r.Timeouts.ClientHeader, DefaultClientHeaderTimeout),
		ClientBody:      c.positive("timeouts.client_body", r.Timeouts.ClientBody, DefaultClientBodyTimeout),
		ClientBodyTotal: c.positive("timeouts.client_body_total", r.Timeouts.ClientBodyTotal, DefaultClientBodyTotal),
		Send:            c.positive("timeouts.send", r.Timeouts.Send, DefaultSendTimeout),
		Keepalive:       c.positive("timeouts.keepalive", r.Timeouts.Keepalive, DefaultKeepaliveTimeout),
	}

	if r.Runtime.MinHeap.Set {
		c.errf("runtime.min_heap", "removed: Gatehouse leaves garbage-collector pacing to Go; for the same effect set GOGC in the service's environment (GOGC=800 lets the heap reach about 32 MiB before a collection, as min_heap = \"32M\" did)")
	}

	cfg.Limits = Limits{
		MaxBody:         r.Limits.MaxBody.Or(DefaultMaxBody),
		MaxHeaderBytes:  int(r.Limits.MaxHeaderBytes.Or(DefaultMaxHeaderBytes)),
		HTTP2MaxStreams: DefaultHTTP2MaxStreams,
		HTTP2MaxResets:  DefaultHTTP2MaxResets,
		ConnPerIP:       DefaultConnPerIP,
		IPv6Prefix:      DefaultIPv6Prefix,
	}
	if cfg.Limits.MaxHeaderBytes < 1024 {
		c.errf("limits.max_header_bytes", "must be at least 1k")
	}
	if v := r.Limits.HTTP2MaxStreams; v != nil {
		if *v < 1 || *v > 1000 {
			c.errf("limits.http2_max_streams", "must be between 1 and 1000")
		}
		cfg.Limits.HTTP2MaxStreams = uint32(*v)
	}
	if v := r.Limits.HTTP2MaxResets; v != nil {
		if *v < 0 {
			c.errf("limits.http2_max_resets", "must not be negative (0 switches the check off)")
		}
		cfg.Limits.HTTP2MaxResets = *v
	}
	if v := r.Limits.ConnPerIP; v != nil {
		if *v < 0 {
			c.errf("limits.conn_per_ip", "must not be negative (0 disables the cap)")
		}
		cfg.Limits.ConnPerIP = *v
	}
	if v := r.Limits.IPv6Prefix; v != nil {
		if *v < 1 || *v > 128 {
			c.errf("limits.ipv6_prefix", "must be between 1 and 128")
		}
		cfg.Limits.IPv6Prefix = *v
	}

	if r.Cluster != nil {
		cfg.Cluster = c.cluster(*r.Cluster)
	}
	cfg.ACME = c.acme(r.ACME, cfg.Cluster != nil)
	for i, p := range r.TrustedProxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			c.errf(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
	}
	cfg.Ban = Ban{
		Enabled:  r.Ban.Enabled,
		MaxRetry: DefaultBanMaxRetry,
		FindTime: c.positive("ban.find_time", r.Ban.FindTime, DefaultBanFindTime),
		BanTime:  c.positive("ban.ban_time", r.Ban.BanTime, DefaultBanTime),
		Statuses: r.Ban.Statuses,
		MaxBans:  DefaultBanMaxBans,
	}
	if r.Ban.MaxBans != nil {
		if *r.Ban.MaxBans < 1 {
			c.errf("ban.max_bans", "must be at least 1")
		}
		cfg.Ban.MaxBans = *r.Ban.MaxBans
	}
	if r.Ban.MaxRetry != nil {
		if *r.Ban.MaxRetry < 1 {
			c.errf("ban.max_retry", "must be at least 1")
		}
		cfg.Ban.MaxRetry = *r.Ban.MaxRetry
	}
	for i, s := range r.Ban.Statuses {
		if s < 100 || s > 599 {
			c.errf(fmt.Sprintf("ban.statuses[%d]", i), "%d is not an HTTP status", s)
		}
	}

	cfg.RequestID = RequestID{Enabled: DefaultRequestIDEnabled, Header: DefaultRequestIDHeader}
	if r.RequestID.Enabled != nil {
		cfg.RequestID.Enabled = *r.RequestID.Enabled
	}
	if h := r.RequestID.Header; h != "" {
		name := textproto.CanonicalMIMEHeaderKey(h)
		switch {
		case !headerpolicy.ValidName(h):
			c.errf("request_id.header", "%q is not a header name", h)
		case strings.IndexByte(h, '_') >= 0:
			c.errf("request_id.header", "%q: no underscores (Django reads them as dashes, and nginx drops such headers)", h)
		case headerpolicy.Reserved(name):
			c.errf("request_id.header", "%q already has a meaning in HTTP or to Gatehouse; use a name such as X-Request-ID", h)
		}
		cfg.RequestID.Header = name
	}
	idHeader := ""
	if cfg.RequestID.Enabled {
		idHeader = cfg.RequestID.Header
	}
	cfg.OpenFileCache = OpenFileCache{
		Entries:  DefaultOpenFileCacheEntries,
		Valid:    r.OpenFileCache.Valid.Or(DefaultOpenFileCacheValid),
		Inactive: c.positive("open_file_cache.inactive", r.OpenFileCache.Inactive, DefaultOpenFileCacheInactive),
		Memory:   r.OpenFileCache.Memory.Or(DefaultOpenFileCacheMemory),
	}
	if v := r.OpenFileCache.Entries; v != nil {
		if *v < 0 {
			c.errf("open_file_cache.entries", "must not be negative (0 turns the cache off)")
		}
		cfg.OpenFileCache.Entries = *v
	}
	cfg.Compression = c.compression(r.Compression)

	for _, name := range sortedKeys(r.Zones) {
		cfg.Zones[name] = c.zone(name, r.Zones[name], cfg.Limits.IPv6Prefix, cfg.Cluster != nil)
	}
	for _, name := range sortedKeys(r.Upstreams) {
		cfg.Upstreams[name] = c.upstream(name, r.Upstreams[name])
	}
	for _, name := range sortedKeys(r.Sites) {
		s := c.site(name, r.Sites[name], cfg, idHeader)
		cfg.Sites = append(cfg.Sites, s)
		if r.Sites[name].Default {
			if cfg.DefaultSite != nil {
				c.errf("sites."+name+".default", "site %q is already the default site", cfg.DefaultSite.Name)
			}
			cfg.DefaultSite = s
		}
	}
	if len(cfg.Sites) == 0 {
		c.errf("sites", "at least one site is required")
	}
	c.crossChecks(cfg, r)
	return cfg
}

func (c *compiler) positive(key string, d configfile.Duration, def time.Duration) time.Duration {
	v := d.Or(def)
	if d.Set && v <= 0 {
		c.errf(key, "must be greater than zero")
	}
	return v
}

func (c *compiler) listener(key string, r configfile.Listener, def string, isTLS bool) *Listener {
	l := &Listener{Address: def, ProxyProtocol: r.ProxyProtocol, MaxConns: r.MaxConns, HTTP2: true}
	if r.Address != nil {
		if *r.Address == "" {
			return nil // disabled
		}
		l.Address = *r.Address
	}
	if _, port, err := net.SplitHostPort(l.Address); err != nil {
		c.errf(key+".address", "%q is not host:port (e.g. \":443\" or \"127.0.0.1:8443\")", l.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.errf(key+".address", "%q has an invalid port", l.Address)
	}
	if r.MaxConns < 0 {
		c.errf(key+".max_conns", "must not be negative (0: no cap)")
	}
	if !isTLS {
		for k, set := range map[string]bool{"min_version": r.MinVersion != "", "max_version": r.MaxVersion != "", "ciphers": r.Ciphers != nil, "session_tickets": r.SessionTickets, "http2": r.HTTP2 != nil, "curves": r.Curves != nil, "ocsp_stapling": r.OCSPStapling != nil} {
			if set {
				c.errf(key+"."+k, "only applies to the https listener")
			}
		}
		return l
	}
	l.MinVersion = tls.VersionTLS12
	l.MaxVersion = tls.VersionTLS13
	if r.MinVersion != "" {
		v, ok := tlsnames.Version(r.MinVersion)
		if !ok {
			c.errf(key+".min_version", "must be \"1.2\" or \"1.3\", not %q", r.MinVersion)
		}
		l.MinVersion = v
	}
	if r.MaxVersion != "" {
		v, ok := tlsnames.Version(r.MaxVersion)
		if !ok {
			c.errf(key+".max_version", "must be \"1.2\" or \"1.3\", not %q", r.MaxVersion)
		}
		l.MaxVersion = v
	}
	if l.MaxVersion < l.MinVersion {
		c.errf(key+".max_version", "is below min_version")
	}
	l.CipherSuites = DefaultCipherSuites()
	if r.Ciphers != nil {
		l.CipherSuites = nil
		for i, name := range r.Ciphers {
			id, err := tlsnames.CipherSuite(name, defaultCipherSuites)
			if err != nil {
				c.errf(fmt.Sprintf("%s.ciphers[%d]", key, i), "%v", err)
				continue
			}
			l.CipherSuites = append(l.CipherSuites, id)
		}
		if len(l.CipherSuites) == 0 && len(r.Ciphers) == 0 {
			c.errf(key+".ciphers", "must not be empty (TLS 1.2 clients could not connect); remove the key for the defaults")
		}
	}
	for i, name := range r.Curves {
		id, ok := tlsnames.Curve(name)
		if !ok {
			c.errf(fmt.Sprintf("%s.curves[%d]", key, i), "unknown key exchange %q (X25519MLKEM768, X25519, P256, P384)", name)
			continue
		}
		l.Curves = append(l.Curves, id)
	}
	if r.Curves != nil && len(r.Curves) == 0 {
		c.errf(key+".curves", "must not be empty; remove the key for the defaults")
	}
	l.SessionTickets = r.SessionTickets
	if r.HTTP2 != nil {
		l.HTTP2 = *r.HTTP2
	}
	l.OCSPStapling = DefaultOCSPStapling
	if r.OCSPStapling != nil {
		l.OCSPStapling = *r.OCSPStapling
	}
	return l
}

func (c *compiler) admin(r configfile.Admin) Admin {
	a := Admin{Address: DefaultAdminAddress, Token: r.Token, Pprof: r.Pprof}
	if r.Address != nil {
		a.Address = *r.Address
	}
	for i, h := range r.Hosts {
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := checkHostName(name); err != nil || strings.HasPrefix(name, "*.") {
			c.errf(fmt.Sprintf("listeners.admin.hosts[%d]", i), "%q is not a host name (write the name only, without scheme, port or wildcard)", h)
			continue
		}
		a.Hosts = append(a.Hosts, name)
	}
	if a.Address == "" {
		return a
	}
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		c.errf("listeners.admin.address", "%q is not host:port", a.Address)
		return a
	}
	if !r.AllowRemote && !isLoopback(host) {
		c.errf("listeners.admin.address", "%q is not a loopback address; metrics and control must not be public (set allow_remote = true, and a token, to override)", a.Address)
	}
	return a
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c *compiler) acme(r configfile.ACME, cluster bool) ACME {
	a := ACME{
		Email:       r.Email,
		Directory:   r.Directory,
		EABKeyID:    r.EABKeyID,
		RenewBefore: r.RenewBefore.Or(DefaultRenewBefore),
		HTTP01:      r.HTTP01 == nil || *r.HTTP01,
		TLSALPN01:   r.TLSALPN01 == nil || *r.TLSALPN01,
		CARoots:     c.path(r.CARoots),
	}
	if a.Directory == "" {
		a.Directory = DefaultACMEDirectory
	} else if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		c.errf("acme.directory", "%q is not an https URL", r.Directory)
	}
	if r.EABHMACKey != "" {
		k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.EABHMACKey, "="))
		if err != nil {
			c.errf("acme.eab_hmac_key", "must be base64url as the CA gives it: %v", err)
		}
		a.EABHMACKey = k
	}
	if (a.EABKeyID == "") != (r.EABHMACKey == "") {
		c.errf("acme.eab_key_id", "eab_key_id and eab_hmac_key go together")
	}
	if r.Email != "" && !strings.Contains(r.Email, "@") {
		c.errf("acme.email", "%q is not an email address", r.Email)
	}
	if !a.HTTP01 && !a.TLSALPN01 && r.DNS == nil {
		c.errf("acme.http01", "http01 and tls_alpn01 are both off: no challenge could be answered")
	}
	a.RenewBeforeSet = r.RenewBefore.Set
	a.Profile = r.Profile
	if r.Profile != "" && !validProfile(r.Profile) {
		c.errf("acme.profile", "%q is not a profile name (letters, digits, '-', '_', '.')", r.Profile)
	}
	a.RenewRatio = DefaultRenewRatio
	if r.RenewRatio != nil {
		a.RenewRatio = *r.RenewRatio
		if !(a.RenewRatio > 0 && a.RenewRatio < 1) {
			c.errf("acme.renew_ratio", "must be above 0 and below 1 (the share of the lifetime left at renewal), not %v", a.RenewRatio)
		}
	}
	a.ARI = r.ARI == nil || *r.ARI
	a.Storage = r.Storage
	switch a.Storage {
	case "":
		a.Storage = DefaultACMEStorage
		if cluster {
			a.Storage = StorageCluster
		}
	case StorageFile:
	case StorageCluster:
		if !cluster {
			c.errf("acme.storage", "\"cluster\" needs a [cluster] section")
		}
	default:
		c.errf("acme.storage", "must be \"file\" or \"cluster\", not %q", r.Storage)
	}
	a.StorageDir = c.path(r.StorageDir)
	if r.DNS != nil {
		a.DNS = c.acmeDNS(*r.DNS)
	}
	return a
}

// cluster compiles [cluster].
func (c *compiler) cluster(r configfile.Cluster) *Cluster {
	const key = "cluster"
	cl := &Cluster{
		URL:          r.URL,
		Username:     r.Username,
		PasswordFile: c.path(r.PasswordFile),
		PasswordEnv:  r.PasswordEnv,
		CAFile:       c.path(r.CAFile),
		KeyPrefix:    DefaultClusterKeyPrefix,
		Instance:     r.Instance,
		Timeout:      c.positive(key+".timeout", r.Timeout, DefaultClusterTimeout),
		Heartbeat:    c.positive(key+".heartbeat", r.Heartbeat, DefaultClusterHeartbeat),
		BanSync:      c.positive(key+".ban_sync", r.BanSync, DefaultClusterBanSync),
	}
	u, err := url.Parse(r.URL)
	switch {
	case r.URL == "":
		c.errf(key+".url", "missing: the Redis or Valkey server, e.g. \"redis://127.0.0.1:6379/0\" or \"rediss://redis.internal:6380/0\"")
	case err != nil:
		c.errf(key+".url", "%q is not a URL", r.URL)
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		c.errf(key+".url", "%q: the scheme must be redis, rediss (TLS) or unix", r.URL)
	case u.Scheme != "unix" && u.Host == "":
		c.errf(key+".url", "%q names no host", r.URL)
	case u.User != nil:
		if _, has := u.User.Password(); has {
			c.errf(key+".url", "holds a password: put it in a file (password_file) or an environment variable (password_env), never in the configuration")
		} else if cl.Username == "" {
			cl.Username = u.User.Username()
		}
	}
	if r.CAFile != "" && (err != nil || u.Scheme != "rediss") {
		c.errf(key+".ca_file", "only applies to a rediss:// URL")
	}
	if r.PasswordFile != "" && r.PasswordEnv != "" {
		c.errf(key+".password_file", "password_file and password_env exclude each other")
	}
	if r.PasswordEnv != "" && !validEnvName(r.PasswordEnv) {
		c.errf(key+".password_env", "%q is not an environment variable name", r.PasswordEnv)
	}
	if r.KeyPrefix != nil {
		cl.KeyPrefix = *r.KeyPrefix
		if !validClusterName(cl.KeyPrefix, ":") {
			c.errf(key+".key_prefix", "%q: use letters, digits and . _ - : (at most 64), e.g. \"gatehouse:\"", cl.KeyPrefix)
		}
	}
	if r.Instance != "" && !validClusterName(r.Instance, "") {
		c.errf(key+".instance", "%q: use letters, digits and . _ - (at most 64)", r.Instance)
	}
	if cl.Timeout > time.Second {
		c.errf(key+".timeout", "%v is no latency budget: requests would wait that long for a stalled Redis (at most 1s; the default is %v)", cl.Timeout, DefaultClusterTimeout)
	}
	if cl.Heartbeat < 100*time.Millisecond {
		c.errf(key+".heartbeat", "must be at least 100ms")
	}
	return cl
}

// validClusterName reports whether s is a non-empty name of letters,
// digits, '.', '_', '-' and the characters of extra, at most 64 long.
func validClusterName(s, extra string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// validProfile reports whether s looks like an ACME profile name.
func validProfile(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return len(s) <= 64
}

// tsigAlgorithms are the TSIG algorithms an rfc2136 key may use.
var tsigAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

func (c *compiler) acmeDNS(r configfile.DNS) *DNS {
	const key = "acme.dns"
	d := &DNS{
		Provider: r.Provider, Server: r.Server, KeyName: r.KeyName, KeyAlgorithm: strings.ToLower(r.KeyAlgorithm),
		TokenFile: c.path(r.TokenFile), TokenEnv: r.TokenEnv, Command: r.Command, Resolvers: r.Resolvers,
		PropagationTimeout: r.PropagationTimeout.Or(DefaultDNSPropagationTimeout),
		PropagationCheck:   r.PropagationCheck == nil || *r.PropagationCheck,
		PropagationDelay:   r.PropagationDelay.Or(0),
	}
	needToken := false
	switch d.Provider {
	case "rfc2136":
		needToken = true
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			c.errf(key+".server", "%q is not host:port (the primary server that takes updates)", d.Server)
		}
		if d.KeyName == "" {
			c.errf(key+".key_name", "rfc2136 needs the TSIG key name")
		}
		if d.KeyAlgorithm == "" {
			d.KeyAlgorithm = "hmac-sha256"
		}
		if !slices.Contains(tsigAlgorithms, d.KeyAlgorithm) {
			c.errf(key+".key_algorithm", "must be one of %s, not %q", strings.Join(tsigAlgorithms, ", "), r.KeyAlgorithm)
		}
	case "cloudflare":
		needToken = true
	case "exec":
		if d.Command == "" || !filepath.IsAbs(d.Command) {
			c.errf(key+".command", "the exec provider needs the absolute path of its program, not %q", d.Command)
		}
	case "":
		c.errf(key+".provider", "missing: rfc2136, cloudflare or exec")
	default:
		c.errf(key+".provider", "must be rfc2136, cloudflare or exec, not %q", d.Provider)
	}
	if d.Provider != "rfc2136" {
		for k, v := range map[string]string{"server": d.Server, "key_name": d.KeyName, "key_algorithm": r.KeyAlgorithm} {
			if v != "" {
				c.errf(key+"."+k, "only applies to provider = \"rfc2136\"")
			}
		}
	}
	if d.Provider != "exec" && d.Command != "" {
		c.errf(key+".command", "only applies to provider = \"exec\"")
	}
	switch {
	case needToken && (d.TokenFile == "") == (d.TokenEnv == ""):
		c.errf(key+".token_file", "%s needs exactly one of token_file and token_env (the credential is never written in this file)", d.Provider)
	case !needToken && (d.TokenFile != "" || d.TokenEnv != ""):
		c.errf(key+".token_file", "the %s provider takes no token", d.Provider)
	}
	if d.TokenEnv != "" && !validEnvName(d.TokenEnv) {
		c.errf(key+".token_env", "%q is not an environment variable name", d.TokenEnv)
	}
	for i, res := range d.Resolvers {
		if _, _, err := net.SplitHostPort(res); err != nil {
			c.errf(fmt.Sprintf("%s.resolvers[%d]", key, i), "%q is not host:port", res)
		}
	}
	if d.PropagationTimeout <= 0 {
		c.errf(key+".propagation_timeout", "must be positive (propagation_check = false skips the check)")
	}
	if d.PropagationDelay < 0 {
		c.errf(key+".propagation_delay", "must not be negative")
	}
	return d
}

// validEnvName reports whether s is a POSIX environment variable name.
func validEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func (c *compiler) zone(name string, r configfile.Zone, v6 int, cluster bool) *Zone {
	key := "zones." + name
	z := &Zone{Name: name, RateText: r.Rate, Burst: r.Burst, MaxKeys: DefaultZoneMaxKeys, Status: DefaultRejectStatus, DryRun: r.DryRun, IPv6Prefix: v6, Scope: ScopeLocal}
	switch r.Scope {
	case "", ScopeLocal:
	case ScopeCluster:
		z.Scope = ScopeCluster
		if !cluster {
			c.errf(key+".scope", "\"cluster\" needs a [cluster] section (the Redis the budget is kept in)")
		}
		if r.Mode == "delay" {
			c.errf(key+".scope", "a cluster zone decides in one round trip and cannot queue requests: use mode = \"nodelay\" (the default)")
		}
	default:
		c.errf(key+".scope", "must be \"local\" or \"cluster\", not %q", r.Scope)
	}
	rate, err := parseRate(r.Rate)
	if err != nil {
		c.errf(key+".rate", "%v", err)
	}
	z.Rate = rate
	if r.Burst < 0 {
		c.errf(key+".burst", "must not be negative")
	}
	switch r.Mode {
	case "", "nodelay":
	case "delay":
		z.Delay = true
	default:
		c.errf(key+".mode", "must be nodelay or delay, not %q", r.Mode)
	}
	if r.MaxKeys != nil {
		if *r.MaxKeys < 1 {
			c.errf(key+".max_keys", "must be at least 1")
		}
		z.MaxKeys = *r.MaxKeys
	}
	if r.Status != nil {
		if *r.Status < 400 || *r.Status > 599 {
			c.errf(key+".status", "must be a 4xx or 5xx status")
		}
		z.Status = *r.Status
	}
	if r.IPv6Prefix != nil {
		if *r.IPv6Prefix < 1 || *r.IPv6Prefix > 128 {
			c.errf(key+".ipv6_prefix", "must be between 1 and 128")
		}
		z.IPv6Prefix = *r.IPv6Prefix
	}
	return z
}

// ParseDuration accepts Go durations ("1m30s") plus whole days ("7d"),
// as the file's duration keys do.
func ParseDuration(s string) (time.Duration, error) { return configfile.ParseDuration(s) }

// ParseSize parses "10M", "10MiB", "10MB", "512k", "1024" into bytes, as
// the file's size keys do. Every unit is binary (nginx's convention: 1M =
// 1,048,576 bytes).
func ParseSize(s string) (int64, error) { return configfile.ParseSize(s) }

// parseRate parses nginx-style rates: "5r/m", "20r/s", "5/m", "10/s".
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, errors.New("is required (e.g. \"10r/s\" or \"5r/m\")")
	}
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	num = strings.TrimSuffix(num, "r")
	n, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a rate (e.g. \"10r/s\" or \"5r/m\")", s)
	}
	switch unit {
	case "s":
		return n, nil
	case "m":
		return n / 60, nil
	case "h":
		return n / 3600, nil
	}
	return 0, fmt.Errorf("%q: unit must be s, m or h", s)
}

var policies = []string{"round_robin", "least_conn", "ip_hash", "random_two", "first"}

func (c *compiler) upstream(name string, r configfile.Upstream) *Upstream {
	key := "upstreams." + name
	u := &Upstream{
		Name:                  name,
		Policy:                r.Policy,
		Keepalive:             DefaultUpstreamKeepalive,
		KeepaliveTimeout:      c.positive(key+".keepalive_timeout", r.KeepaliveTimeout, DefaultUpstreamKeepaliveTimeout),
		ConnectTimeout:        c.positive(key+".connect_timeout", r.ConnectTimeout, DefaultConnectTimeout),
		ResponseHeaderTimeout: c.positive(key+".response_header_timeout", r.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		ReadTimeout:           r.ReadTimeout.Or(DefaultReadTimeout),
		MaxFails:              DefaultMaxFails,
		FailTimeout:           c.positive(key+".fail_timeout", r.FailTimeout, DefaultFailTimeout),
		FailStatuses:          r.FailStatuses,
		QueueSize:             r.QueueSize,
		QueueTimeout:          c.positive(key+".queue_timeout", r.QueueTimeout, DefaultQueueTimeout),
		ClientShare:           DefaultClientShare,
		Retries:               DefaultRetries,
		RetryBudget:           c.positive(key+".retry_budget", r.RetryBudget, DefaultRetryBudget),
		RetryBodyLimit:        r.RetryBodyLimit.Or(DefaultRetryBodyLimit),
		ResolveInterval:       c.positive(key+".resolve_interval", r.ResolveInterval, DefaultResolveInterval),
		SlowStart:             r.SlowStart.Or(0),
		XAccelRedirect:        r.XAccelRedirect,
	}
	if u.Policy == "" {
		u.Policy = "round_robin"
	} else if !slices.Contains(policies, u.Policy) {
		c.errf(key+".policy", "unknown policy %q (one of %s)", u.Policy, strings.Join(policies, ", "))
	}
	switch u.Client = r.Client; u.Client {
	case "":
		u.Client = ClientGatehouse
	case ClientGatehouse, ClientNetHTTP:
	default:
		c.errf(key+".client", "unknown client %q (%q or %q)", r.Client, ClientGatehouse, ClientNetHTTP)
	}
	if r.Keepalive != nil {
		if *r.Keepalive < 0 {
			c.errf(key+".keepalive", "must not be negative (0 disables upstream keepalive)")
		}
		u.Keepalive = *r.Keepalive
	}
	if r.MaxFails != nil {
		if *r.MaxFails < 0 {
			c.errf(key+".max_fails", "must not be negative (0 disables passive checks)")
		}
		u.MaxFails = *r.MaxFails
	}
	if r.QueueSize < 0 {
		c.errf(key+".queue", "must not be negative")
	}
	if v := r.ClientShare; v != nil {
		if !(*v > 0 && *v <= 1) {
			c.errf(key+".client_share", "must be a fraction above 0 and at most 1 (e.g. 0.5; 1 switches the share off), not %v", *v)
		}
		u.ClientShare = *v
	}
	if r.Retries != nil {
		if *r.Retries < 0 {
			c.errf(key+".retries", "must not be negative")
		}
		u.Retries = *r.Retries
	}
	for i, s := range r.FailStatuses {
		if s < 500 || s > 599 {
			c.errf(fmt.Sprintf("%s.fail_statuses[%d]", key, i), "%d: only 5xx statuses can mark a server failed", s)
		}
	}
	if len(r.Servers) == 0 {
		c.errf(key+".servers", "at least one server is required")
	}
	names := map[string]bool{}
	primaries := 0
	for i, rs := range r.Servers {
		sk := fmt.Sprintf("%s.servers[%d]", key, i)
		s := Server{Name: rs.Name, Weight: 1, Backup: rs.Backup, MaxConns: rs.MaxConns, Drain: rs.Drain}
		host, port, err := net.SplitHostPort(rs.Address)
		if err != nil || host == "" {
			c.errf(sk+".address", "%q is not host:port (e.g. \"127.0.0.1:8000\" or \"django:8000\")", rs.Address)
		} else {
			p, err := strconv.Atoi(port)
			if err != nil || p < 1 || p > 65535 {
				c.errf(sk+".address", "%q has an invalid port", rs.Address)
			}
			s.Host, s.Port = host, p
		}
		if s.Name == "" {
			s.Name = rs.Address
		}
		if names[s.Name] {
			c.errf(sk+".name", "duplicate server name %q (names key sticky cookies and metrics)", s.Name)
		}
		names[s.Name] = true
		if rs.Weight != nil {
			if *rs.Weight < 1 || *rs.Weight > 1000 {
				c.errf(sk+".weight", "must be between 1 and 1000")
			}
			s.Weight = *rs.Weight
		}
		if rs.MaxConns < 0 {
			c.errf(sk+".max_conns", "must not be negative (0: no cap)")
		}
		if !rs.Backup {
			primaries++
		}
		u.Servers = append(u.Servers, s)
	}
	if len(r.Servers) > 0 && primaries == 0 {
		c.errf(key+".servers", "every server is a backup; at least one must be primary")
	}
	if r.Sticky != nil {
		st := &Sticky{Cookie: r.Sticky.Cookie, Secret: r.Sticky.Secret, MaxAge: r.Sticky.MaxAge.Or(0), Domain: r.Sticky.Domain, SameSite: r.Sticky.SameSite}
		if st.Cookie == "" {
			st.Cookie = DefaultStickyCookie
		} else if !validCookieName(st.Cookie) {
			c.errf(key+".sticky.cookie", "%q is not a valid cookie name", st.Cookie)
		}
		switch strings.ToLower(st.SameSite) {
		case "":
			st.SameSite = "lax"
		case "lax", "strict", "none":
			st.SameSite = strings.ToLower(st.SameSite)
		default:
			c.errf(key+".sticky.same_site", "must be lax, strict or none")
		}
		u.Sticky = st
	}
	if r.Health != nil {
		h := &Health{
			Method:    strings.ToUpper(r.Health.Method),
			Path:      r.Health.Path,
			Host:      r.Health.Host,
			Expect:    r.Health.Expect,
			Body:      r.Health.Body,
			Interval:  c.positive(key+".health.interval", r.Health.Interval, DefaultHealthInterval),
			Timeout:   c.positive(key+".health.timeout", r.Health.Timeout, DefaultHealthTimeout),
			Rise:      DefaultHealthRise,
			Fall:      DefaultHealthFall,
			StartDown: r.Health.StartDown,
		}
		if h.Method == "" {
			h.Method = "GET"
		} else if h.Method != "GET" && h.Method != "HEAD" && h.Method != "OPTIONS" {
			c.errf(key+".health.method", "must be GET, HEAD or OPTIONS")
		}
		if h.Path == "" {
			h.Path = DefaultHealthPath
		} else if !strings.HasPrefix(h.Path, "/") {
			c.errf(key+".health.path", "must start with /")
		}
		if len(h.Expect) == 0 {
			h.Expect = []int{200}
		}
		for i, s := range h.Expect {
			if s < 100 || s > 599 {
				c.errf(fmt.Sprintf("%s.health.expect_status[%d]", key, i), "%d is not an HTTP status", s)
			}
		}
		if r.Health.Rise != nil {
			h.Rise = *r.Health.Rise
		}
		if r.Health.Fall != nil {
			h.Fall = *r.Health.Fall
		}
		if h.Rise < 1 {
			c.errf(key+".health.rise", "must be at least 1")
		}
		if h.Fall < 1 {
			c.errf(key+".health.fall", "must be at least 1")
		}
		if h.Timeout > h.Interval {
			c.errf(key+".health.timeout", "must not exceed the interval (%v)", h.Interval)
		}
		u.Health = h
	}
	return u
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func (c *compiler) site(name string, r configfile.Site, cfg *Config, idHeader string) *Site {
	key := "sites." + name
	s := &Site{Name: name, TLS: TLSMode(r.TLS), CertFile: c.path(r.CertFile), KeyFile: c.path(r.KeyFile), HSTS: DefaultHSTS, RedirectHTTPS: true, ErrorPages: map[int][]byte{}, ErrorPageFiles: map[int]string{}}
	if len(r.Hosts) == 0 && !r.Default {
		c.errf(key+".hosts", "at least one host name is required (or default = true)")
	}
	for i, h := range r.Hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if err := checkHostName(h); err != nil {
			c.errf(fmt.Sprintf("%s.hosts[%d]", key, i), "%v", err)
		}
		s.Hosts = append(s.Hosts, h)
	}
	switch s.TLS {
	case "":
		s.TLS = TLSACME
		if r.CertFile != "" || r.KeyFile != "" {
			s.TLS = TLSFiles
		}
	case TLSACME, TLSFiles, TLSSelfSigned, TLSOff:
	default:
		c.errf(key+".tls", "must be acme, files, self_signed or off, not %q", r.TLS)
	}
	if s.TLS == TLSFiles && (r.CertFile == "" || r.KeyFile == "") {
		c.errf(key+".cert_file", "tls = \"files\" needs cert_file and key_file")
	}
	if s.TLS != TLSFiles && (r.CertFile != "" || r.KeyFile != "") {
		c.errf(key+".cert_file", "cert_file and key_file only apply with tls = \"files\"")
	}
	if s.TLS == TLSSelfSigned {
		for i, h := range s.Hosts {
			if strings.HasPrefix(h, "*.") {
				c.errf(fmt.Sprintf("%s.hosts[%d]", key, i), "wildcard %q: a self-signed development certificate is made for exact names only", h)
			}
		}
	}
	s.ACMEProfile, s.ACMEChallenge = r.ACMEProfile, r.ACMEChallenge
	if s.ACMEChallenge == "" {
		s.ACMEChallenge = DefaultACMEChallenge
	}
	if s.TLS != TLSACME && (r.ACMEProfile != "" || r.ACMEChallenge != "") {
		c.errf(key+".acme_profile", "acme_profile and acme_challenge only apply with tls = \"acme\"")
	}
	if r.ACMEProfile != "" && !validProfile(r.ACMEProfile) {
		c.errf(key+".acme_profile", "%q is not a profile name (letters, digits, '-', '_', '.')", r.ACMEProfile)
	}
	switch s.ACMEChallenge {
	case "http":
	case "dns":
		if s.TLS == TLSACME && cfg.ACME.DNS == nil {
			c.errf(key+".acme_challenge", "\"dns\" needs [acme.dns]")
		}
	default:
		c.errf(key+".acme_challenge", "must be \"http\" or \"dns\", not %q", r.ACMEChallenge)
	}
	if s.TLS == TLSACME && cfg.ACME.DNS == nil {
		for i, h := range s.Hosts {
			if strings.HasPrefix(h, "*.") {
				c.errf(fmt.Sprintf("%s.hosts[%d]", key, i), "wildcard %q cannot be obtained with HTTP-01 or TLS-ALPN-01; configure [acme.dns] (DNS-01), or use a certificate from a DNS-01 client with tls = \"files\"", h)
			}
		}
	}
	if s.TLS == TLSSelfSigned {
		s.HSTS = DefaultHSTSSelfSigned
	}
	if s.TLS == TLSOff || cfg.HTTPS == nil {
		s.HSTS, s.RedirectHTTPS = "", false
	}
	if r.HSTS != nil {
		switch *r.HSTS {
		case "", "off":
			s.HSTS = ""
		default:
			if !strings.HasPrefix(*r.HSTS, "max-age=") {
				c.errf(key+".hsts", "must start with max-age= (or be \"off\")")
			}
			if s.TLS == TLSOff {
				c.errf(key+".hsts", "needs TLS: the site has tls = \"off\"")
			}
			s.HSTS = *r.HSTS
		}
	}
	if r.RedirectHTTPS != nil {
		if *r.RedirectHTTPS && (s.TLS == TLSOff || cfg.HTTPS == nil) {
			c.errf(key+".redirect_https", "needs TLS: the site has tls = \"off\" or there is no https listener")
		}
		s.RedirectHTTPS = *r.RedirectHTTPS
	}
	s.AccessLog = AccessLog{Path: DefaultAccessLog, Format: "json"}
	if r.AccessLog != nil {
		switch *r.AccessLog {
		case "off", "":
			s.AccessLog.Path = ""
		case "stdout", "stderr":
			s.AccessLog.Path = *r.AccessLog
		default:
			s.AccessLog.Path = c.path(*r.AccessLog)
		}
	}
	switch r.AccessFormat {
	case "", "json":
	case "combined":
		s.AccessLog.Format = "combined"
	default:
		c.errf(key+".access_log_format", "must be json or combined, not %q", r.AccessFormat)
	}
	siteMaxBody := r.MaxBody.Or(cfg.Limits.MaxBody)
	for code, file := range r.ErrorPages {
		n, err := strconv.Atoi(code)
		if err != nil || n < 400 || n > 599 {
			c.errf(key+".error_pages."+code, "%q is not a 4xx or 5xx status", code)
			continue
		}
		// Error pages are sent to anonymous clients, so a link is refused
		// outright: whoever may write the pages' directory must not be
		// able to point a page at a key or the config itself.
		b, err := ReadFile(c.path(file), FileRule{MaxBytes: MaxErrorPageSize, NoSymlink: true})
		if err != nil {
			c.errf(key+".error_pages."+code, "%v", err)
			continue
		}
		s.ErrorPages[n] = b
		s.ErrorPageFiles[n] = c.path(file)
	}
	s.Allow = c.prefixes(key+".allow", r.Allow)
	s.Deny = c.prefixes(key+".deny", r.Deny)
	s.ResponseHeaders = c.headers(key+".response_headers", r.RespHeaders, false, idHeader)
	s.RequestHeaders = c.headers(key+".request_headers", r.ReqHeaders, true, idHeader)

	if len(r.Routes) == 0 {
		c.errf(key+".routes", "at least one route is required")
	}
	siteTrace := DefaultAllowTrace
	if r.AllowTrace != nil {
		siteTrace = *r.AllowTrace
	}
	s.Compress = DefaultCompress
	if r.Compress != nil {
		s.Compress = *r.Compress
	}
	paths := map[string]bool{}
	folded := map[string]bool{} // lower-cased path: some route of it is case-insensitive
	for i, rr := range r.Routes {
		rk := fmt.Sprintf("%s.routes[%d]", key, i)
		rt := &Route{
			Key:                   rk,
			Path:                  rr.Path,
			Upstream:              rr.Upstream,
			AccessLog:             rr.AccessLog == nil || *rr.AccessLog,
			MaxBody:               rr.MaxBody.Or(siteMaxBody),
			Zones:                 rr.Limit,
			Allow:                 c.prefixes(rk+".allow", rr.Allow),
			Deny:                  c.prefixes(rk+".deny", rr.Deny),
			BanOnStatus:           rr.BanOnStatus,
			ResponseHeaderTimeout: rr.ResponseHeaderTimeout.Or(0),
			CaseInsensitive:       DefaultCaseInsensitive,
			AllowTrace:            siteTrace,
			ReadTimeout:           rr.ReadTimeout.Or(0),
			ReadTimeoutSet:        rr.ReadTimeout.Set,
			Compress:              s.Compress,
		}
		if rr.Compress != nil {
			rt.Compress = *rr.Compress
		}
		if rr.CaseInsensitive != nil {
			rt.CaseInsensitive = *rr.CaseInsensitive
		}
		if rr.AllowTrace != nil {
			rt.AllowTrace = *rr.AllowTrace
		}
		if rt.Path == "" {
			rt.Path = "/"
		}
		if !strings.HasPrefix(rt.Path, "/") {
			c.errf(rk+".path", "%q must start with /", rr.Path)
		} else if clean := cleanRoutePath(rt.Path); clean != rt.Path {
			c.errf(rk+".path", "%q is not a normalised path and would never match: requests are matched after repeated slashes are merged and \".\" and \"..\" segments removed; write %q", rr.Path, clean)
		}
		if paths[rt.Path] {
			c.errf(rk+".path", "duplicate route for %q", rt.Path)
		} else if ci, seen := folded[strings.ToLower(rt.Path)]; seen && (ci || rt.CaseInsensitive) {
			c.errf(rk+".path", "%q differs from another route's path only in case, and one of them has case_insensitive = true", rt.Path)
		}
		paths[rt.Path] = true
		lp := strings.ToLower(rt.Path)
		folded[lp] = folded[lp] || rt.CaseInsensitive
		rt.ResponseHeaders = c.headers(rk+".response_headers", rr.RespHeaders, false, idHeader)
		rt.RequestHeaders = c.headers(rk+".request_headers", rr.ReqHeaders, true, idHeader)
		rt.Files = c.files(rk, rr)
		rt.Internal = rr.Internal
		switch {
		case rt.Files == nil && rt.Upstream == "":
			c.errf(rk+".upstream", "is required (or alias/root for a file route)")
		case rt.Internal && rt.Files == nil:
			c.errf(rk+".internal", "only a file route (alias or root) can be internal")
		case rt.Internal && rt.Upstream != "":
			c.errf(rk+".internal", "an internal route serves files only: it cannot have an upstream")
		}
		if rt.Files != nil && rr.WebSocket.Enabled && rt.Upstream == "" {
			c.errf(rk+".websocket.enabled", "a file route without an upstream has no WebSocket backend")
		}
		if rt.Internal && !rt.RequestHeaders.Empty() {
			c.errf(rk+".request_headers", "an internal route sends no request to a backend")
		}
		ws := rr.WebSocket
		rt.WebSocket = WebSocket{
			Enabled:        ws.Enabled,
			Origins:        ws.Origins,
			IdleTimeout:    c.positive(rk+".websocket.idle_timeout", ws.IdleTimeout, DefaultWebSocketIdleTimeout),
			PingInterval:   ws.PingInterval.Or(0),
			PingTimeout:    c.positive(rk+".websocket.ping_timeout", ws.PingTimeout, DefaultPingTimeout),
			MaxPerClient:   ws.MaxPerClient,
			CloseDelay:     ws.CloseDelay.Or(DefaultWebSocketCloseDelay),
			CloseSpread:    ws.CloseSpread.Or(DefaultWebSocketCloseSpread),
			ConnectTimeout: c.positive(rk+".websocket.connect_timeout", ws.ConnectTimeout, DefaultConnectTimeout),
		}
		if ws.MaxPerClient < 0 {
			c.errf(rk+".websocket.max_per_client", "must not be negative (0: no cap)")
		}
		for j, o := range ws.Origins {
			if o == "*" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				c.errf(fmt.Sprintf("%s.websocket.origins[%d]", rk, j), "%q is not an origin such as \"https://example.com\" (or \"*\")", o)
			}
		}
		s.Routes = append(s.Routes, rt)
	}
	sort.SliceStable(s.Routes, func(i, j int) bool { return len(s.Routes[i].Path) > len(s.Routes[j].Path) })
	return s
}

// files compiles a route's file keys; nil when it is not a file route.
func (c *compiler) files(rk string, rr configfile.Route) *Files {
	if rr.Alias == nil && rr.Root == nil {
		for k, set := range map[string]bool{"index": rr.Index != nil, "cache_control": rr.CacheControl != nil,
			"immutable_cache_control": rr.ImmutableCacheControl != nil, "ignore_hashes": rr.IgnoreHashes,
			"precompressed": rr.Precompressed != nil, "allow_dot_files": rr.AllowDotFiles} {
			if set {
				c.errf(rk+"."+k, "only applies to a file route (alias or root)")
			}
		}
		return nil
	}
	f := &Files{Index: rr.Index, IgnoreHashes: rr.IgnoreHashes, Precompressed: rr.Precompressed, AllowDotFiles: rr.AllowDotFiles}
	dirKey := rk + ".alias"
	switch {
	case rr.Alias != nil && rr.Root != nil:
		c.errf(rk+".root", "alias and root exclude each other (alias cuts the route's path off the request path, root keeps it)")
		return nil
	case rr.Alias != nil:
		f.Dir, f.Alias = *rr.Alias, true
		if p := rr.Path; p != "" && !strings.HasSuffix(p, "/") {
			// Without the slash /staticx.css would be the directory's
			// x.css, and nginx's classic alias hole (/static../) is one
			// typo away; the file server refuses ".." names regardless.
			c.errf(rk+".path", "%q: a route with alias must end in \"/\" (without it, %sx.css would be the directory's file x.css)", p, p)
		}
	default:
		f.Dir = *rr.Root
		dirKey = rk + ".root"
	}
	if f.Dir == "" {
		c.errf(dirKey, "must name a directory")
		return f
	}
	f.Dir = c.path(f.Dir)
	if fi, err := os.Stat(f.Dir); err != nil {
		c.errf(dirKey, "%v", err)
	} else if !fi.IsDir() {
		c.errf(dirKey, "%s is not a directory", f.Dir)
	}
	for i, name := range rr.Index {
		if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\\\x00") {
			c.errf(fmt.Sprintf("%s.index[%d]", rk, i), "%q is not a plain file name (no slash, no leading dot)", name)
		}
	}
	seen := map[string]bool{}
	for i, enc := range rr.Precompressed {
		switch {
		case enc != "br" && enc != "zstd" && enc != "gzip":
			c.errf(fmt.Sprintf("%s.precompressed[%d]", rk, i), "unknown coding %q (br, zstd or gzip)", enc)
		case seen[enc]:
			c.errf(fmt.Sprintf("%s.precompressed[%d]", rk, i), "%q is listed twice", enc)
		}
		seen[enc] = true
	}
	for k, v := range map[string]*string{"cache_control": rr.CacheControl, "immutable_cache_control": rr.ImmutableCacheControl} {
		if v == nil {
			continue
		}
		if why := headerpolicy.CheckValue(*v); why != "" {
			c.errf(rk+"."+k, "value %q %s", *v, why)
		}
		if k == "cache_control" {
			f.CacheControl = *v
		} else {
			f.ImmutableCacheControl = *v
		}
	}
	if rr.Internal && rr.ImmutableCacheControl != nil {
		c.errf(rk+".immutable_cache_control", "internal routes never treat names as hashed; use cache_control")
	}
	return f
}

// cleanRoutePath is p (starting with '/') with repeated slashes merged
// and "." and ".." segments removed (a ".." at the root is dropped), a
// trailing slash kept: the form the proxy matches requests in.
func cleanRoutePath(p string) string {
	var segs []string
	parts := strings.Split(p[1:], "/")
	for _, s := range parts {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if last := parts[len(parts)-1]; len(segs) > 0 && (last == "" || last == "." || last == "..") {
		out += "/"
	}
	return out
}

func (c *compiler) prefixes(key string, in []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range in {
		p, err := parsePrefix(s)
		if err != nil {
			c.errf(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// parsePrefix accepts CIDRs and bare addresses (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as \"10.0.0.0/8\"", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func checkHostName(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name", h)
	}
	if strings.Contains(name, "*") {
		return fmt.Errorf("%q: only a leading \"*.\" wildcard is allowed", h)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return nil
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name (invalid character %q)", h, c)
			}
		}
	}
	return nil
}

// crossChecks are the rules that span sections.
func (c *compiler) crossChecks(cfg *Config, r *configfile.File) {
	hostOwner := map[string]string{}
	for _, s := range cfg.Sites {
		for i, h := range s.Hosts {
			if other, ok := hostOwner[h]; ok {
				c.errf(fmt.Sprintf("sites.%s.hosts[%d]", s.Name, i), "%q is already claimed by site %q", h, other)
			}
			hostOwner[h] = s.Name
		}
		rawRoutes := r.Sites[s.Name].Routes
		for i, rr := range rawRoutes {
			rk := fmt.Sprintf("sites.%s.routes[%d]", s.Name, i)
			if rr.Upstream != "" {
				if _, ok := cfg.Upstreams[rr.Upstream]; !ok {
					c.errf(rk+".upstream", "unknown upstream %q", rr.Upstream)
				}
			}
			for j, z := range rr.Limit {
				if _, ok := cfg.Zones[z]; !ok {
					c.errf(fmt.Sprintf("%s.limit[%d]", rk, j), "unknown zone %q", z)
				}
			}
			if rr.BanOnStatus && (!cfg.Ban.Enabled || len(cfg.Ban.Statuses) == 0) {
				c.errf(rk+".ban_on_status", "needs [ban] enabled = true with statuses")
			}
		}
		if s.TLS == TLSACME && s.needsHTTPChallenge() && cfg.HTTPS != nil && cfg.HTTP == nil && !cfg.ACME.TLSALPN01 {
			c.errf("sites."+s.Name+".tls", "ACME needs the http listener for HTTP-01 or tls_alpn01 = true")
		}
		if (s.TLS == TLSACME || s.TLS == TLSFiles || s.TLS == TLSSelfSigned) && cfg.HTTPS == nil {
			c.errf("sites."+s.Name+".tls", "tls = %q needs the https listener", s.TLS)
		}
	}
	if cfg.HTTP == nil && cfg.HTTPS == nil {
		c.errf("listeners", "both public listeners are disabled")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// needsHTTPChallenge reports whether an ACME site has a host obtained
// with http-01 or tls-alpn-01 (not a wildcard, not acme_challenge = "dns").
func (s *Site) needsHTTPChallenge() bool {
	if s.ACMEChallenge == "dns" {
		return false
	}
	for _, h := range s.Hosts {
		if !strings.HasPrefix(h, "*.") {
			return true
		}
	}
	return false
}
