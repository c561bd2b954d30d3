// Package configdump prints a Gatehouse configuration as the TOML file
// that says everything: every default written out, every relative path
// made absolute (`gatehouse check -dump`, like nginx -T). Parsing the
// output gives the same configuration.
package configdump

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
	"github.com/gatehouse-proxy/gatehouse/internal/tlsnames"
	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

// Dump returns c as a TOML file with every default written out, that
// config.Parse accepts and compiles back to the same configuration
// (`gatehouse check -dump`, like nginx -T). Relative paths are written as the absolute
// paths they were resolved to. Secrets the file holds (the admin token,
// sticky secrets, the EAB key) are written as they are: treat the dump
// like the file.
//
// A few keys are not written, because their effect is carried by others:
// a site's max_body and allow_trace (every route has its own value), and
// acme.renew_before unless the file set it (it is no longer used). When
// the file did not set state_dir, it is written as a comment, since
// setting it would make it win over $STATE_DIRECTORY.
func Dump(c *config.Config) []byte {
	var b bytes.Buffer
	b.WriteString("# The effective Gatehouse configuration: every default written out.\n")
	if !c.StateDirSet {
		b.WriteString("# state_dir is not set, so the daemon uses systemd's $STATE_DIRECTORY, or:\n")
		fmt.Fprintf(&b, "# state_dir = %s\n", tomlstruct.Quote(config.DefaultStateDir))
	}
	t := tomlstruct.Encode(fileOf(c))
	prune(t)
	b.Write(t.Bytes())
	return b.Bytes()
}

// prune leaves out keys that do not apply where they are, and so have no
// effective value to show: the TLS keys of the http listener, the
// certificate keys of a site that does not use them, the file keys of a
// route that serves no files, and the settings of a WebSocket that is
// off.
func prune(t *tomlstruct.Table) {
	t.Table("listeners").Table("http").Drop("min_version", "max_version", "session_tickets")
	sites := t.Table("sites")
	for _, name := range sites.Keys() {
		site := sites.Table(name)
		if site.Value("tls") != `"files"` {
			site.Drop("cert_file", "key_file")
		}
		if site.Value("tls") != `"acme"` {
			site.Drop("acme_profile", "acme_challenge")
		}
		for _, rt := range site.Tables("routes") {
			if !rt.Has("root") && !rt.Has("alias") {
				rt.Drop("internal", "ignore_hashes", "allow_dot_files")
			}
			if ws := rt.Table("websocket"); ws != nil && ws.Value("enabled") == "false" {
				ws.Drop(slices.DeleteFunc(ws.Keys(), func(k string) bool { return k == "enabled" })...)
			}
		}
	}
}

// fileOf is the inverse of config's compile: c as the file that says
// everything.
func fileOf(c *config.Config) *configfile.File {
	r := &configfile.File{
		GracePeriod:   dur(c.GracePeriod),
		Log:           configfile.Log{Level: levelName(c.Log.Level), Format: c.Log.Format},
		Listeners:     configfile.Listeners{HTTP: listenerOf(c.HTTP, false), HTTPS: listenerOf(c.HTTPS, true), Admin: adminOf(c.Admin)},
		Timeouts:      configfile.Timeouts{ClientHeader: dur(c.Timeouts.ClientHeader), ClientBody: dur(c.Timeouts.ClientBody), ClientBodyTotal: dur(c.Timeouts.ClientBodyTotal), Send: dur(c.Timeouts.Send), Keepalive: dur(c.Timeouts.Keepalive)},
		Limits:        configfile.Limits{MaxBody: sz(c.Limits.MaxBody), MaxHeaderBytes: sz(int64(c.Limits.MaxHeaderBytes)), HTTP2MaxStreams: ptr(int(c.Limits.HTTP2MaxStreams)), HTTP2MaxResets: ptr(c.Limits.HTTP2MaxResets), ConnPerIP: ptr(c.Limits.ConnPerIP), IPv6Prefix: ptr(c.Limits.IPv6Prefix)},
		ACME:          acmeOf(c.ACME),
		Ban:           configfile.Ban{Enabled: c.Ban.Enabled, MaxRetry: ptr(c.Ban.MaxRetry), FindTime: dur(c.Ban.FindTime), BanTime: dur(c.Ban.BanTime), Statuses: nonNil(c.Ban.Statuses), MaxBans: ptr(c.Ban.MaxBans)},
		RequestID:     configfile.RequestID{Enabled: ptr(c.RequestID.Enabled), Header: c.RequestID.Header},
		OpenFileCache: configfile.OpenFileCache{Entries: ptr(c.OpenFileCache.Entries), Valid: dur(c.OpenFileCache.Valid), Inactive: dur(c.OpenFileCache.Inactive), Memory: sz(c.OpenFileCache.Memory)},
		Sites:         map[string]configfile.Site{},
		Upstreams:     map[string]configfile.Upstream{},
		Zones:         map[string]configfile.Zone{},
		Compression: configfile.Compression{
			Encodings: nonNil(c.Compression.Encodings), Types: nonNil(c.Compression.Types),
			MinLength: sz(int64(c.Compression.MinLength)), GzipLevel: ptr(c.Compression.GzipLevel),
			ZstdLevel: ptr(c.Compression.ZstdLevel), BrotliLevel: ptr(c.Compression.BrotliLevel),
			MaxEncoders: ptr(c.Compression.MaxEncoders), MaxFileSize: sz(c.Compression.MaxFileSize),
		},
	}
	if cl := c.Cluster; cl != nil {
		r.Cluster = &configfile.Cluster{URL: cl.URL, Username: cl.Username, PasswordFile: abs(cl.PasswordFile), PasswordEnv: cl.PasswordEnv,
			CAFile: abs(cl.CAFile), KeyPrefix: ptr(cl.KeyPrefix), Instance: cl.Instance,
			Timeout: dur(cl.Timeout), Heartbeat: dur(cl.Heartbeat), BanSync: dur(cl.BanSync)}
	}
	if c.StateDirSet {
		r.StateDir = ptr(abs(c.StateDir))
	}
	r.TrustedProxies = prefixStrings(c.TrustedProxies)
	for _, s := range c.Sites {
		r.Sites[s.Name] = siteOf(s, s == c.DefaultSite)
	}
	for name, u := range c.Upstreams {
		r.Upstreams[name] = upstreamOf(u)
	}
	for name, z := range c.Zones {
		mode := "nodelay"
		if z.Delay {
			mode = "delay"
		}
		r.Zones[name] = configfile.Zone{Rate: z.RateText, Burst: z.Burst, Mode: mode, MaxKeys: ptr(z.MaxKeys), Status: ptr(z.Status), DryRun: z.DryRun, IPv6Prefix: ptr(z.IPv6Prefix), Scope: z.Scope}
	}
	return r
}

func listenerOf(l *config.Listener, isTLS bool) configfile.Listener {
	if l == nil {
		return configfile.Listener{Address: ptr("")}
	}
	r := configfile.Listener{Address: ptr(l.Address), ProxyProtocol: l.ProxyProtocol, MaxConns: l.MaxConns}
	if !isTLS {
		return r
	}
	r.MinVersion, r.MaxVersion = tlsnames.VersionName(l.MinVersion), tlsnames.VersionName(l.MaxVersion)
	r.Ciphers = []string{}
	for _, id := range l.CipherSuites {
		r.Ciphers = append(r.Ciphers, tls.CipherSuiteName(id))
	}
	for _, id := range l.Curves {
		r.Curves = append(r.Curves, tlsnames.CurveName(id))
	}
	r.SessionTickets = l.SessionTickets
	r.HTTP2, r.OCSPStapling = ptr(l.HTTP2), ptr(l.OCSPStapling)
	return r
}

func adminOf(a config.Admin) configfile.Admin {
	r := configfile.Admin{Address: ptr(a.Address), Token: a.Token, Pprof: a.Pprof, Hosts: nonNil(a.Hosts)}
	if host, _, err := net.SplitHostPort(a.Address); err == nil && !isLoopback(host) {
		r.AllowRemote = true // it could not have been compiled otherwise
	}
	return r
}

func acmeOf(a config.ACME) configfile.ACME {
	r := configfile.ACME{
		Email: a.Email, Directory: a.Directory, EABKeyID: a.EABKeyID,
		HTTP01: ptr(a.HTTP01), TLSALPN01: ptr(a.TLSALPN01), CARoots: abs(a.CARoots), Profile: a.Profile,
		RenewRatio: ptr(a.RenewRatio), ARI: ptr(a.ARI), Storage: a.Storage, StorageDir: abs(a.StorageDir),
	}
	if len(a.EABHMACKey) > 0 {
		r.EABHMACKey = base64.RawURLEncoding.EncodeToString(a.EABHMACKey)
	}
	if a.RenewBeforeSet {
		r.RenewBefore = dur(a.RenewBefore)
	}
	if d := a.DNS; d != nil {
		r.DNS = &configfile.DNS{
			Provider: d.Provider, Server: d.Server, KeyName: d.KeyName, KeyAlgorithm: d.KeyAlgorithm,
			TokenFile: abs(d.TokenFile), TokenEnv: d.TokenEnv, Command: d.Command, Resolvers: nonNil(d.Resolvers),
			PropagationTimeout: dur(d.PropagationTimeout), PropagationDelay: dur(d.PropagationDelay),
			PropagationCheck: ptr(d.PropagationCheck),
		}
	}
	return r
}

func siteOf(s *config.Site, isDefault bool) configfile.Site {
	r := configfile.Site{
		Hosts: nonNil(s.Hosts), Default: isDefault, TLS: string(s.TLS), CertFile: abs(s.CertFile), KeyFile: abs(s.KeyFile),
		HSTS: ptr(s.HSTS), RedirectHTTPS: ptr(s.RedirectHTTPS), AccessFormat: s.AccessLog.Format,
		Allow: prefixStrings(s.Allow), Deny: prefixStrings(s.Deny),
		RespHeaders: headersOf(s.ResponseHeaders), ReqHeaders: headersOf(s.RequestHeaders),
		Compress: ptr(s.Compress),
	}
	if s.HSTS == "" {
		r.HSTS = ptr("off")
	}
	if s.TLS == config.TLSACME {
		r.ACMEProfile, r.ACMEChallenge = s.ACMEProfile, s.ACMEChallenge
	}
	switch p := s.AccessLog.Path; p {
	case "":
		r.AccessLog = ptr("off")
	case "stdout", "stderr":
		r.AccessLog = ptr(p)
	default:
		r.AccessLog = ptr(abs(p))
	}
	if len(s.ErrorPageFiles) > 0 {
		r.ErrorPages = map[string]string{}
		for code, file := range s.ErrorPageFiles {
			r.ErrorPages[strconv.Itoa(code)] = abs(file)
		}
	}
	// Routes in the order of the file (Route.Key holds the index), so
	// that their keys stay the same.
	routes := slices.Clone(s.Routes)
	sort.SliceStable(routes, func(i, j int) bool { return routeIndex(routes[i].Key) < routeIndex(routes[j].Key) })
	for _, rt := range routes {
		r.Routes = append(r.Routes, routeOf(rt))
	}
	return r
}

// routeIndex is the index at the end of a route key ("sites.a.routes[3]").
func routeIndex(key string) int {
	i := strings.LastIndexByte(key, '[')
	n, _ := strconv.Atoi(strings.TrimSuffix(key[i+1:], "]"))
	return n
}

func routeOf(rt *config.Route) configfile.Route {
	ws := rt.WebSocket
	r := configfile.Route{
		Path: rt.Path, Upstream: rt.Upstream, AccessLog: ptr(rt.AccessLog), MaxBody: sz(rt.MaxBody),
		Limit: nonNil(rt.Zones), Allow: prefixStrings(rt.Allow), Deny: prefixStrings(rt.Deny), BanOnStatus: rt.BanOnStatus,
		CaseInsensitive: ptr(rt.CaseInsensitive), AllowTrace: ptr(rt.AllowTrace),
		RespHeaders: headersOf(rt.ResponseHeaders), ReqHeaders: headersOf(rt.RequestHeaders),
		Internal: rt.Internal, Compress: ptr(rt.Compress),
		WebSocket: configfile.WebSocket{
			Enabled: ws.Enabled, Origins: nonNil(ws.Origins), IdleTimeout: dur(ws.IdleTimeout), PingInterval: dur(ws.PingInterval),
			PingTimeout: dur(ws.PingTimeout), MaxPerClient: ws.MaxPerClient, CloseDelay: dur(ws.CloseDelay),
			CloseSpread: dur(ws.CloseSpread), ConnectTimeout: dur(ws.ConnectTimeout),
		},
	}
	if rt.ResponseHeaderTimeout > 0 { // 0: the upstream's
		r.ResponseHeaderTimeout = dur(rt.ResponseHeaderTimeout)
	}
	if rt.ReadTimeoutSet {
		r.ReadTimeout = dur(rt.ReadTimeout)
	}
	if f := rt.Files; f != nil {
		if f.Alias {
			r.Alias = ptr(abs(f.Dir))
		} else {
			r.Root = ptr(abs(f.Dir))
		}
		r.Index = nonNil(f.Index)
		r.CacheControl = ptr(f.CacheControl)
		r.ImmutableCacheControl = ptr(f.ImmutableCacheControl)
		if f.CacheControl == "" {
			r.CacheControl = nil // "" is staticfile's default, and not a value the key takes
		}
		if f.ImmutableCacheControl == "" || rt.Internal {
			r.ImmutableCacheControl = nil
		}
		r.IgnoreHashes, r.AllowDotFiles = f.IgnoreHashes, f.AllowDotFiles
		r.Precompressed = f.Precompressed // nil (all three) and empty (none) differ
		if r.Precompressed == nil {
			r.Precompressed = []string{"br", "zstd", "gzip"}
		}
	}
	return r
}

func headersOf(h config.HeaderRules) configfile.Headers {
	r := configfile.Headers{Remove: h.Remove}
	field := func(fs []config.HeaderField) map[string]configfile.HeaderValues {
		if len(fs) == 0 {
			return nil
		}
		m := map[string]configfile.HeaderValues{}
		for _, f := range fs {
			for _, v := range f.Values {
				m[f.Name] = append(m[f.Name], v.String())
			}
		}
		return m
	}
	r.Set, r.Add = field(h.Set), field(h.Add)
	return r
}

func upstreamOf(u *config.Upstream) configfile.Upstream {
	r := configfile.Upstream{
		Policy: u.Policy, Client: u.Client, Keepalive: ptr(u.Keepalive), KeepaliveTimeout: dur(u.KeepaliveTimeout),
		ConnectTimeout: dur(u.ConnectTimeout), ResponseHeaderTimeout: dur(u.ResponseHeaderTimeout), ReadTimeout: dur(u.ReadTimeout),
		MaxFails: ptr(u.MaxFails), FailTimeout: dur(u.FailTimeout), FailStatuses: nonNil(u.FailStatuses),
		QueueSize: u.QueueSize, QueueTimeout: dur(u.QueueTimeout), ClientShare: ptr(u.ClientShare),
		Retries: ptr(u.Retries), RetryBudget: dur(u.RetryBudget), RetryBodyLimit: sz(u.RetryBodyLimit),
		ResolveInterval: dur(u.ResolveInterval), SlowStart: dur(u.SlowStart), XAccelRedirect: u.XAccelRedirect,
	}
	for _, s := range u.Servers {
		r.Servers = append(r.Servers, configfile.Server{Name: s.Name, Address: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
			Weight: ptr(s.Weight), Backup: s.Backup, MaxConns: s.MaxConns, Drain: s.Drain})
	}
	if st := u.Sticky; st != nil {
		r.Sticky = &configfile.Sticky{Cookie: st.Cookie, Secret: st.Secret, MaxAge: dur(st.MaxAge), Domain: st.Domain, SameSite: st.SameSite}
	}
	if h := u.Health; h != nil {
		r.Health = &configfile.Health{Method: h.Method, Path: h.Path, Host: h.Host, Expect: nonNil(h.Expect), Body: h.Body,
			Interval: dur(h.Interval), Timeout: dur(h.Timeout), Rise: ptr(h.Rise), Fall: ptr(h.Fall), StartDown: h.StartDown}
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// abs is path p made absolute: a relative path in a Config is relative to
// the working directory (the file's own directory was joined to it), and
// the dump may be read from anywhere.
func abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func dur(d time.Duration) configfile.Duration { return configfile.Duration{Value: d, Set: true} }

func sz(n int64) configfile.Size { return configfile.Size{Value: n, Set: true} }

// nonNil is s, or an empty slice for nil: an absent list and an empty
// one mean the same to these keys, and the dump writes every key.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func prefixStrings(ps []netip.Prefix) []string {
	out := []string{}
	for _, p := range ps {
		if p.Bits() == p.Addr().BitLen() {
			out = append(out, p.Addr().String())
		} else {
			out = append(out, p.String())
		}
	}
	return out
}

func levelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}

// isLoopback is config's test for an admin address that needs no
// allow_remote.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
