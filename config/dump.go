package config

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

// Dump returns c as a TOML file with every default written out, that
// Parse accepts and compiles back to the same configuration (`gatehouse
// check -dump`, like nginx -T). Relative paths are written as the absolute
// paths they were resolved to. Secrets the file holds (the admin token,
// sticky secrets, the EAB key) are written as they are: treat the dump
// like the file.
//
// A few keys are not written, because their effect is carried by others:
// a site's max_body and allow_trace (every route has its own value), and
// acme.renew_before unless the file set it (it is no longer used). When
// the file did not set state_dir, it is written as a comment, since
// setting it would make it win over $STATE_DIRECTORY.
func (c *Config) Dump() []byte {
	var b bytes.Buffer
	b.WriteString("# The effective Gatehouse configuration: every default written out.\n")
	if !c.StateDirSet {
		b.WriteString("# state_dir is not set, so the daemon uses systemd's $STATE_DIRECTORY, or:\n")
		fmt.Fprintf(&b, "# state_dir = %s\n", tomlString(DefaultStateDir))
	}
	t := tableOf(reflect.ValueOf(c.raw()))
	prune(t)
	t.write(&b, "")
	return b.Bytes()
}

// prune leaves out keys that do not apply where they are, and so have no
// effective value to show: the TLS keys of the http listener, the
// certificate keys of a site that does not use them, the file keys of a
// route that serves no files, and the settings of a WebSocket that is
// off.
func prune(t *table) {
	t.get("listeners").get("http").drop("min_version", "max_version", "session_tickets")
	sites := t.get("sites")
	if sites == nil {
		return
	}
	for _, e := range sites.entries {
		site := e.sub
		if site.value("tls") != `"files"` {
			site.drop("cert_file", "key_file")
		}
		if site.value("tls") != `"acme"` {
			site.drop("acme_profile", "acme_challenge")
		}
		for _, s := range site.entries {
			if s.key != "routes" {
				continue
			}
			for _, rt := range s.subs {
				if !rt.has("root") && !rt.has("alias") {
					rt.drop("internal", "ignore_hashes", "allow_dot_files")
				}
				if ws := rt.get("websocket"); ws != nil && ws.value("enabled") == "false" {
					ws.entries = ws.entries[:0]
					ws.entries = append(ws.entries, entry{key: "enabled", text: "false"})
				}
			}
		}
	}
}

// raw is the inverse of compile: c as the file that says everything.
func (c *Config) raw() *configfile.File {
	r := &configfile.File{
		GracePeriod:   dur(c.GracePeriod),
		Log:           configfile.Log{Level: levelName(c.Log.Level), Format: c.Log.Format},
		Listeners:     configfile.Listeners{HTTP: rawListenerOf(c.HTTP, false), HTTPS: rawListenerOf(c.HTTPS, true), Admin: rawAdminOf(c.Admin)},
		Timeouts:      configfile.Timeouts{ClientHeader: dur(c.Timeouts.ClientHeader), ClientBody: dur(c.Timeouts.ClientBody), ClientBodyTotal: dur(c.Timeouts.ClientBodyTotal), Send: dur(c.Timeouts.Send), Keepalive: dur(c.Timeouts.Keepalive)},
		Limits:        configfile.Limits{MaxBody: sz(c.Limits.MaxBody), MaxHeaderBytes: sz(int64(c.Limits.MaxHeaderBytes)), HTTP2MaxStreams: ptr(int(c.Limits.HTTP2MaxStreams)), HTTP2MaxResets: ptr(c.Limits.HTTP2MaxResets), ConnPerIP: ptr(c.Limits.ConnPerIP), IPv6Prefix: ptr(c.Limits.IPv6Prefix)},
		ACME:          rawACMEOf(c.ACME),
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
		r.Sites[s.Name] = rawSiteOf(s, s == c.DefaultSite)
	}
	for name, u := range c.Upstreams {
		r.Upstreams[name] = rawUpstreamOf(u)
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

func rawListenerOf(l *Listener, isTLS bool) configfile.Listener {
	if l == nil {
		return configfile.Listener{Address: ptr("")}
	}
	r := configfile.Listener{Address: ptr(l.Address), ProxyProtocol: l.ProxyProtocol, MaxConns: l.MaxConns}
	if !isTLS {
		return r
	}
	r.MinVersion, r.MaxVersion = versionName(l.MinVersion), versionName(l.MaxVersion)
	r.Ciphers = []string{}
	for _, id := range l.CipherSuites {
		r.Ciphers = append(r.Ciphers, tls.CipherSuiteName(id))
	}
	for _, id := range l.Curves {
		r.Curves = append(r.Curves, curveName(id))
	}
	r.SessionTickets = l.SessionTickets
	r.HTTP2, r.OCSPStapling = ptr(l.HTTP2), ptr(l.OCSPStapling)
	return r
}

func rawAdminOf(a Admin) configfile.Admin {
	r := configfile.Admin{Address: ptr(a.Address), Token: a.Token, Pprof: a.Pprof, Hosts: nonNil(a.Hosts)}
	if host, _, err := net.SplitHostPort(a.Address); err == nil && !isLoopback(host) {
		r.AllowRemote = true // it could not have been compiled otherwise
	}
	return r
}

func rawACMEOf(a ACME) configfile.ACME {
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

func rawSiteOf(s *Site, isDefault bool) configfile.Site {
	r := configfile.Site{
		Hosts: nonNil(s.Hosts), Default: isDefault, TLS: string(s.TLS), CertFile: abs(s.CertFile), KeyFile: abs(s.KeyFile),
		HSTS: ptr(s.HSTS), RedirectHTTPS: ptr(s.RedirectHTTPS), AccessFormat: s.AccessLog.Format,
		Allow: prefixStrings(s.Allow), Deny: prefixStrings(s.Deny),
		RespHeaders: rawHeadersOf(s.ResponseHeaders), ReqHeaders: rawHeadersOf(s.RequestHeaders),
		Compress: ptr(s.Compress),
	}
	if s.HSTS == "" {
		r.HSTS = ptr("off")
	}
	if s.TLS == TLSACME {
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
		r.Routes = append(r.Routes, rawRouteOf(rt))
	}
	return r
}

// routeIndex is the index at the end of a route key ("sites.a.routes[3]").
func routeIndex(key string) int {
	i := strings.LastIndexByte(key, '[')
	n, _ := strconv.Atoi(strings.TrimSuffix(key[i+1:], "]"))
	return n
}

func rawRouteOf(rt *Route) configfile.Route {
	ws := rt.WebSocket
	r := configfile.Route{
		Path: rt.Path, Upstream: rt.Upstream, AccessLog: ptr(rt.AccessLog), MaxBody: sz(rt.MaxBody),
		Limit: nonNil(rt.Zones), Allow: prefixStrings(rt.Allow), Deny: prefixStrings(rt.Deny), BanOnStatus: rt.BanOnStatus,
		CaseInsensitive: ptr(rt.CaseInsensitive), AllowTrace: ptr(rt.AllowTrace),
		RespHeaders: rawHeadersOf(rt.ResponseHeaders), ReqHeaders: rawHeadersOf(rt.RequestHeaders),
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

func rawHeadersOf(h HeaderRules) configfile.Headers {
	r := configfile.Headers{Remove: h.Remove}
	field := func(fs []HeaderField) map[string]configfile.HeaderValues {
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

func rawUpstreamOf(u *Upstream) configfile.Upstream {
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

func versionName(v uint16) string {
	if v == tls.VersionTLS13 {
		return "1.3"
	}
	return "1.2"
}

func curveName(id tls.CurveID) string {
	switch id {
	case tls.X25519MLKEM768:
		return "X25519MLKEM768"
	case tls.X25519:
		return "X25519"
	case tls.CurveP256:
		return "P256"
	case tls.CurveP384:
		return "P384"
	}
	return id.String()
}

// text is a value type written as a TOML value of its own (duration,
// size): v is the value to write, and ok false means unset (the key is not
// written).
type text interface{ TOMLValue() (v any, ok bool) }

// table is a TOML table being written: its entries in order.
type table struct{ entries []entry }

// entry is one key of a table: a value (text), a sub-table (sub) or an
// array of tables (subs).
type entry struct {
	key  string
	text string
	sub  *table
	subs []*table
}

// tableOf builds the table for the struct or map v, leaving out unset
// keys.
func tableOf(v reflect.Value) *table {
	t := &table{}
	each(v, func(key string, f reflect.Value) {
		switch valueKind(f) {
		case kindOmit:
		case kindTable:
			t.entries = append(t.entries, entry{key: key, sub: tableOf(f)})
		case kindTables:
			e := entry{key: key}
			for i := range f.Len() {
				e.subs = append(e.subs, tableOf(f.Index(i)))
			}
			t.entries = append(t.entries, e)
		default:
			t.entries = append(t.entries, entry{key: key, text: tomlValue(f)})
		}
	})
	return t
}

// get is the sub-table at key, or nil.
func (t *table) get(key string) *table {
	if t == nil {
		return nil
	}
	for _, e := range t.entries {
		if e.key == key {
			return e.sub
		}
	}
	return nil
}

// value is the text of the value at key ("" when there is none).
func (t *table) value(key string) string {
	for _, e := range t.entries {
		if e.key == key && e.sub == nil && e.subs == nil {
			return e.text
		}
	}
	return ""
}

// has reports whether t has key.
func (t *table) has(key string) bool {
	for _, e := range t.entries {
		if e.key == key {
			return true
		}
	}
	return false
}

// drop removes keys from t.
func (t *table) drop(keys ...string) {
	if t == nil {
		return
	}
	t.entries = slices.DeleteFunc(t.entries, func(e entry) bool { return slices.Contains(keys, e.key) })
}

// write writes t as the body of the table named name ("" is the
// document): its values first, then its sub-tables and arrays of tables.
func (t *table) write(b *bytes.Buffer, name string) {
	for _, e := range t.entries {
		if e.sub == nil && e.subs == nil {
			fmt.Fprintf(b, "%s = %s\n", e.key, e.text)
		}
	}
	for _, e := range t.entries {
		full := e.key
		if name != "" {
			full = name + "." + e.key
		}
		switch {
		case e.sub != nil:
			if slices.ContainsFunc(e.sub.entries, func(e entry) bool { return e.sub == nil && e.subs == nil }) {
				fmt.Fprintf(b, "\n[%s]\n", full)
			}
			e.sub.write(b, full)
		case e.subs != nil:
			for _, s := range e.subs {
				fmt.Fprintf(b, "\n[[%s]]\n", full)
				s.write(b, full)
			}
		}
	}
}

// each calls fn for every key of the struct or map v, with its value
// (pointers followed).
func each(v reflect.Value, fn func(key string, f reflect.Value)) {
	v = reflect.Indirect(v)
	if v.Kind() == reflect.Map {
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			fn(tomlKey(k.String()), v.MapIndex(k))
		}
		return
	}
	fields := tomlstruct.Fields(v.Type())
	type kf struct {
		key string
		idx []int
	}
	var order []kf
	for k, idx := range fields {
		order = append(order, kf{k, idx})
	}
	sort.Slice(order, func(i, j int) bool { return slices.Compare(order[i].idx, order[j].idx) < 0 })
	for _, o := range order {
		fn(tomlKey(o.key), v.FieldByIndex(o.idx))
	}
}

type kind int

const (
	kindOmit   kind = iota // nil, or an unset duration or size
	kindValue              // key = value
	kindTable              // [name]
	kindTables             // [[name]]
)

func valueKind(f reflect.Value) kind {
	if t, ok := f.Interface().(text); ok {
		if _, set := t.TOMLValue(); !set {
			return kindOmit
		}
		return kindValue
	}
	switch f.Kind() {
	case reflect.Pointer, reflect.Interface:
		if f.IsNil() {
			return kindOmit
		}
		return valueKind(f.Elem())
	case reflect.Map:
		if f.IsNil() {
			return kindOmit
		}
		return kindTable
	case reflect.Struct:
		return kindTable
	case reflect.Slice:
		if f.IsNil() {
			return kindOmit
		}
		if f.Type().Elem().Kind() == reflect.Struct {
			if f.Len() == 0 {
				return kindOmit
			}
			return kindTables
		}
	}
	return kindValue
}

func tomlValue(f reflect.Value) string {
	if t, ok := f.Interface().(text); ok {
		v, _ := t.TOMLValue()
		return tomlValue(reflect.ValueOf(v))
	}
	switch f.Kind() {
	case reflect.Pointer, reflect.Interface:
		return tomlValue(f.Elem())
	case reflect.String:
		return tomlString(f.String())
	case reflect.Bool:
		return strconv.FormatBool(f.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(f.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(f.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		s := strconv.FormatFloat(f.Float(), 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") { // n: NaN, Inf
			s += ".0"
		}
		return s
	case reflect.Slice:
		parts := make([]string, f.Len())
		for i := range parts {
			parts[i] = tomlValue(f.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic("config: cannot write " + f.Type().String() + " as TOML")
}

// tomlKey is k as a TOML key: bare when it can be.
func tomlKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return tomlString(k)
		}
	}
	return k
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
