package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

// TestInvalid runs every testdata/invalid-*.toml and checks that the error
// names the key and the line.
func TestInvalid(t *testing.T) {
	cases := map[string][]string{
		"invalid-unknown-key.toml":        {":3: listeners.https.tickets: unknown key"},
		"invalid-unknown-upstream.toml":   {":7: sites.a.routes[0].upstream: unknown upstream \"djangoo\""},
		"invalid-duration.toml":           {":2:", "client_header", "invalid duration \"12 seconds\""},
		"invalid-server-address.toml":     {":10: upstreams.app.servers[1].address: \"127.0.0.1\" is not host:port"},
		"invalid-admin-public.toml":       {":2: listeners.admin.address:", "not a loopback address"},
		"invalid-admin-hosts.toml":        {":2: listeners.admin.hosts[1]: \"http://admin.example:9180\" is not a host name"},
		"invalid-zone-rate.toml":          {":2: zones.login.rate:", "not a rate"},
		"invalid-duplicate-host.toml":     {":8: sites.b.hosts[0]: \"a.example\" is already claimed by site \"a\""},
		"invalid-cipher.toml":             {":2: listeners.https.ciphers[1]: cipher \"AES128-SHA\" is not allowed"},
		"invalid-files-missing-key.toml":  {":4: sites.a.cert_file: tls = \"files\" needs cert_file and key_file"},
		"invalid-acme-wildcard.toml":      {":2: sites.a.hosts[0]: wildcard \"*.a.example\" cannot be obtained"},
		"invalid-websocket-origin.toml":   {":8: sites.a.routes[0].websocket.origins[0]: \"a.example\" is not an origin"},
		"invalid-policy.toml":             {":8: upstreams.app.policy: unknown policy \"leastconn\""},
		"invalid-syntax.toml":             {":3:"},
		"invalid-health.toml":             {":11: upstreams.app.health.path: must start with /", ":13: upstreams.app.health.timeout: must not exceed", ":14: upstreams.app.health.rise: must be at least 1"},
		"invalid-type.toml":               {":2:", "conn_per_ip"},
		"invalid-runtime.toml":            {":2:", "runtime.min_heap", "32 megs"},
		"invalid-ocsp-stapling.toml":      {":3: listeners.http.ocsp_stapling: only applies to the https listener"},
		"invalid-ocsp-stapling-type.toml": {":2: listeners.https.ocsp_stapling: must be true or false, not the string \"off\""},
		"invalid-route-path.toml":         {":6: sites.a.routes[0].path: \"/static/./admin/\" is not a normalised path", "write \"/static/admin/\"", ":14: sites.a.routes[2].path: \"/API/\" differs from another route's path only in case"},
		"invalid-ban-max-bans.toml":       {":3: ban.max_bans: must be at least 1"},
		"invalid-cluster.toml": {":2: cluster.url: holds a password: put it in a file",
			":3: cluster.password_file: password_file and password_env exclude each other",
			":5: cluster.instance: \"edge 1\"", ":6: cluster.timeout: 2s is no latency budget",
			":7: cluster.ca_file: only applies to a rediss:// URL",
			":11: zones.api.scope: must be \"local\" or \"cluster\", not \"global\"",
			":16: zones.login.scope: a cluster zone decides in one round trip and cannot queue requests"},
		"invalid-cluster-missing.toml": {":2: acme.storage: \"cluster\" needs a [cluster] section",
			":6: zones.api.scope: \"cluster\" needs a [cluster] section"},
		"invalid-client-share.toml":    {":9: upstreams.app.client_share: must be a fraction above 0 and at most 1"},
		"invalid-http2-resets.toml":    {":2: limits.http2_max_resets: must not be negative"},
		"invalid-upstream-client.toml": {":8: upstreams.app.client: unknown client \"curl\" (\"gatehouse\" or \"net/http\")"},
		"invalid-six-problems.toml": {
			":3: limits.max_body: invalid size \"10 megs\"",
			":6: timeouts.client_header: invalid duration \"12 seconds\"",
			":19: sites.app.routes[1].websockets: unknown key",
			":23: sites.app.routes[2].root: must be a string, not the integer 5",
			":27: sites.app.routes[3].upstream: unknown upstream \"djangoo\"",
			":30: sites.other.hosts[1]: \"app.example\" is already claimed by site \"app\""},
		"invalid-header-rules.toml": {":6: sites.a.response_headers.remove[0]: Content-Length frames the body",
			":7: sites.a.response_headers.set.X-Accel-Redirect: X-Accel-Redirect is an instruction from a backend",
			":12: sites.a.routes[0].request_headers.set.X-Forwarded-For: X-Forwarded-For is written by Gatehouse",
			":12: sites.a.routes[0].request_headers.set.X-Start: value \"t=$msec\": unknown variable $msec",
			":12: sites.a.routes[0].request_headers.set.X_Real_IP: X_Real_IP is X-Real-Ip spelled with underscores",
			":13: sites.a.routes[0].request_headers.add.Host: Host is passed as the client sent it"},
		"invalid-file-route.toml": {":6: sites.a.routes[0].path: \"/static\": a route with alias must end in \"/\"",
			":12: sites.a.routes[1].internal: an internal route serves files only",
			":17: sites.a.routes[2].root:", "no-such-dir",
			":18: sites.a.routes[2].precompressed[1]: unknown coding \"deflate\"",
			":23: sites.a.routes[3].index: only applies to a file route"},
		"invalid-compression.toml": {":2: compression.encodings[1]: unknown coding \"deflate\" (gzip, zstd or br)",
			":2: compression.encodings[2]: \"gzip\" is listed twice",
			":3: compression.types[1]: \"*/json\": a wildcard type is only allowed as */*+suffix",
			":3: compression.types[2]: \"image/*+xml\": a wildcard subtype must be the whole subtype",
			":3: compression.types[3]: \"application/json; charset=utf-8\" is not a media type",
			":4: compression.min_length: at most 64 KiB",
			":5: compression.gzip_level: must be between 1 and 9",
			":6: compression.zstd_level: must be between 1 and 4",
			":7: compression.brotli_level: must be between 1 and 11",
			":8: compression.max_encoders: must not be negative"},
		"invalid-request-id.toml": {":2: request_id.header: \"X-Forwarded-For\" already has a meaning",
			":5: open_file_cache.entries: must not be negative"},
		"invalid-acme-dns.toml": {
			":2: acme.renew_ratio: must be above 0 and below 1", ":3: acme.storage: must be \"file\" or \"cluster\", not \"redis\"",
			":7: acme.dns.token_file: cloudflare needs exactly one of token_file and token_env",
			":9: acme.dns.server: only applies to provider = \"rfc2136\"",
			":14: sites.a.acme_challenge: must be \"http\" or \"dns\", not \"carrier-pigeon\"",
		},
		"invalid-acme-dns-rfc2136.toml": {
			":3: acme.dns.server: \"ns1.example\" is not host:port",
			"acme.dns.key_name: rfc2136 needs the TSIG key name", ":4: acme.dns.key_algorithm: must be one of",
			":5: acme.dns.token_env: \"1TSIG\" is not an environment variable name",
			":10: sites.a.acme_profile: \"short lived\" is not a profile name",
		},
	}
	files, err := filepath.Glob("testdata/invalid-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Errorf("%d invalid-*.toml files but %d cases: keep them in step", len(files), len(cases))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, ok := cases[filepath.Base(f)]
			if !ok {
				t.Fatalf("no expectation for %s", f)
			}
			_, err := Load(f)
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Errorf("error is not a Problems list: %T", err)
			}
			for _, p := range ps {
				if p.Line == 0 {
					t.Errorf("problem without a line: %v", p)
				}
			}
		})
	}
}

// TestSixProblems: a bad size, a bad duration, a type error, an unknown
// key, an unknown upstream and a duplicate host are all reported, each
// once, at its own line with its indexed key path (a bad value does not
// hide the problems after it, nor bring others about).
func TestSixProblems(t *testing.T) {
	_, err := Load("testdata/invalid-six-problems.toml")
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want Problems", err)
	}
	want := []struct {
		line int
		key  string
	}{
		{3, "limits.max_body"},
		{6, "timeouts.client_header"},
		{19, "sites.app.routes[1].websockets"},
		{23, "sites.app.routes[2].root"},
		{27, "sites.app.routes[3].upstream"},
		{30, "sites.other.hosts[1]"},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].Line != w.line || ps[i].Key != w.key {
			t.Errorf("problem %d = line %d %s (%s), want line %d %s", i, ps[i].Line, ps[i].Key, ps[i].Msg, w.line, w.key)
		}
	}
}

// TestBadValuesDoNotStopDecoding: each kind of bad value is reported and
// the values after it are still decoded and checked.
func TestBadValuesDoNotStopDecoding(t *testing.T) {
	const doc = `[sites.a]
hosts = ["a.example"]
%s
[[sites.a.routes]]
upstream = "app"
[sites.a.routes.websocket]
%s
[[sites.a.routes]]
path = "/x/"
upstream = "nope"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	for _, tc := range []struct{ name, site, ws, want string }{
		{"size", `max_body = "lots"`, "", `:3: sites.a.max_body: invalid size "lots"`},
		{"size type", `max_body = true`, "", `:3: sites.a.max_body: invalid size true`},
		{"duration", "", `idle_timeout = "forever"`, `:7: sites.a.routes[0].websocket.idle_timeout: invalid duration "forever"`},
		{"duration type", "", `idle_timeout = [1]`, `:7: sites.a.routes[0].websocket.idle_timeout: must be a string, not an array`},
		{"string", `tls = 1`, "", `:3: sites.a.tls: must be a string, not the integer 1`},
		{"bool", `default = "yes"`, "", `:3: sites.a.default: must be true or false, not the string "yes"`},
		{"int", "", `max_per_client = 1.5`, `:7: sites.a.routes[0].websocket.max_per_client: must be an integer, not the float 1.5`},
		{"array", `allow = "10.0.0.0/8"`, "", `:3: sites.a.allow: must be an array, not the string "10.0.0.0/8"`},
		{"array element", `allow = ["10.0.0.0/8", 7]`, "", `:3: sites.a.allow[1]: must be a string, not the integer 7`},
		{"table", `response_headers = 3`, "", `:3: sites.a.response_headers: must be a table, not the integer 3`},
		{"unknown", `hsts_max_age = 5`, "", `:3: sites.a.hsts_max_age: unknown key`},
		{"unknown in table", "", `enable = true`, `:7: sites.a.routes[0].websocket.enable: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile([]byte(fmt.Sprintf(doc, tc.site, tc.ws)), "f.toml")
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want Problems", err)
			}
			// The bad value, and the unknown upstream of the route after
			// it: nothing else.
			if len(ps) != 2 || !strings.HasPrefix(ps[0].Error(), "f.toml"+tc.want) ||
				ps[1].Error() != `f.toml:10: sites.a.routes[1].upstream: unknown upstream "nope"` {
				t.Errorf("got\n%v\nwant %q and the unknown upstream at line 10", err, tc.want)
			}
		})
	}
}

// TestLineOfAbsentKey: a problem about a key a route lacks names the
// line of that route, not of the first route that has the key.
func TestLineOfAbsentKey(t *testing.T) {
	_, err := ParseFile([]byte(`[sites.a]
hosts = ["a.example"]
[[sites.a.routes]]
upstream = "app"
[[sites.a.routes]]
path = "/b/"
upstream = "app"
[[sites.a.routes]]
path = "/c/"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`), "f.toml")
	if err == nil || err.Error() != "f.toml:8: sites.a.routes[2].upstream: is required (or alias/root for a file route)" {
		t.Errorf("got %v, want the problem at line 8, the third route's", err)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Parse([]byte(`
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "nope"
limit = ["nozone"]
[upstreams.app]
policy = "bogus"
servers = [{ address = "x" }]
`))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want Problems", err)
	}
	if len(ps) < 4 {
		t.Fatalf("got %d problems, want at least 4:\n%v", len(ps), err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(DefaultTOML())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Timeouts.ClientHeader, 12*time.Second; got != want {
		t.Errorf("client_header = %v, want %v", got, want)
	}
	if got, want := c.Limits.MaxBody, int64(10<<20); got != want {
		t.Errorf("max_body = %d, want %d", got, want)
	}
	if c.Admin.Address != "127.0.0.1:9180" {
		t.Errorf("admin = %q", c.Admin.Address)
	}
	if c.DefaultSite == nil || c.DefaultSite.Name != "dev" {
		t.Errorf("default site = %v", c.DefaultSite)
	}
	u := c.Upstreams["daphne"]
	if u == nil || u.Servers[0].Host != "127.0.0.1" || u.Servers[0].Port != 8000 || u.ConnectTimeout != 60*time.Second {
		t.Errorf("upstream = %+v", u)
	}
	if c.Sites[0].HSTS != "" {
		t.Errorf("dev HSTS = %q, want off", c.Sites[0].HSTS)
	}
	if got := u.ClientShare; got != 0.5 {
		t.Errorf("client_share = %v, want 0.5", got)
	}
	if got := c.Limits.HTTP2MaxResets; got != 100 {
		t.Errorf("http2_max_resets = %d, want 100", got)
	}
}

func TestRoutesLongestPrefixFirst(t *testing.T) {
	c, err := Parse([]byte(`
[sites.a]
hosts = ["a.example", "*.b.example"]
tls = "off"
[[sites.a.routes]]
path = "/"
upstream = "app"
[[sites.a.routes]]
path = "/api/v1/"
upstream = "app"
[[sites.a.routes]]
path = "/api/"
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Sites[0].Routes {
		got = append(got, r.Path)
	}
	if strings.Join(got, " ") != "/api/v1/ /api/ /" {
		t.Errorf("route order %v", got)
	}
}

func TestParseSizeAndRate(t *testing.T) {
	for in, want := range map[string]int64{"10M": 10 << 20, "10MiB": 10 << 20, "512k": 512 << 10, "1024": 1024, "1G": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "10X", "99999999999999G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
	for in, want := range map[string]float64{"5r/m": 5.0 / 60, "20r/s": 20, "10/s": 10, "60/h": 1.0 / 60} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// TestExamples checks that every example config parses.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.toml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML())
	files, _ := filepath.Glob("testdata/*.toml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		tomlstruct.ScanLines(string(b)) // must not panic or loop on any input
	})
}

func TestCurves(t *testing.T) {
	base := `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	c, err := Parse([]byte("[listeners.https]\ncurves = [\"X25519\", \"p256\"]\n" + base))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.HTTPS.Curves; len(got) != 2 || got[0] != tls.X25519 || got[1] != tls.CurveP256 {
		t.Errorf("curves = %v, want [X25519 P-256]", got)
	}
	_, err = Parse([]byte("[listeners.https]\ncurves = [\"X25519\", \"secp521r1\"]\n" + base))
	if err == nil || !strings.Contains(err.Error(), "2: listeners.https.curves[1]: unknown key exchange \"secp521r1\"") {
		t.Errorf("unknown curve: got %v", err)
	}
}

// TestRuntimeMinHeapRemoved: the heap floor was removed (issue 13's
// cleverness budget); a config that still sets it is told what to do
// instead, whatever the value.
func TestRuntimeMinHeapRemoved(t *testing.T) {
	for _, in := range []string{`min_heap = 0`, `min_heap = "64M"`} {
		_, err := Parse([]byte("[runtime]\n" + in + "\n[sites.a]\nhosts = [\"a.example\"]\ntls = \"off\"\n[[sites.a.routes]]\npath = \"/\"\nupstream = \"u\"\n[upstreams.u]\nservers = [{ address = \"127.0.0.1:8000\" }]\n"))
		if err == nil || !strings.Contains(err.Error(), "2: runtime.min_heap: removed") || !strings.Contains(err.Error(), "GOGC") {
			t.Errorf("%q: err = %v, want runtime.min_heap named as removed, with GOGC as the way", in, err)
		}
	}
}

func TestOCSPStapling(t *testing.T) {
	base := `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	for _, tc := range []struct {
		https string
		want  bool
	}{
		{"", true},
		{"ocsp_stapling = true\n", true},
		{"ocsp_stapling = false\n", false},
	} {
		c, err := Parse([]byte("[listeners.https]\n" + tc.https + base))
		if err != nil {
			t.Fatalf("%q: %v", tc.https, err)
		}
		if c.HTTPS.OCSPStapling != tc.want {
			t.Errorf("%q: OCSPStapling = %v, want %v", tc.https, c.HTTPS.OCSPStapling, tc.want)
		}
	}
}

// TestAdminHosts: listeners.admin.hosts is lower-cased without a trailing
// dot; an entry with a scheme, port or wildcard is an error naming it.
func TestAdminHosts(t *testing.T) {
	site := "\n[sites.a]\nhosts = [\"a.example\"]\ntls = \"off\"\n[[sites.a.routes]]\nupstream = \"u\"\n[upstreams.u]\nservers = [{ address = \"127.0.0.1:8000\" }]\n"
	c, err := Parse([]byte("[listeners.admin]\nhosts = [\"Gatehouse\", \"admin.example.\"]\n" + site))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Admin.Hosts, " "); got != "gatehouse admin.example" {
		t.Errorf("admin hosts = %q, want \"gatehouse admin.example\"", got)
	}
	for _, bad := range []string{"gatehouse:9180", "*.example", "", "a b"} {
		_, err := Parse([]byte("[listeners.admin]\nhosts = [\"ok\", \"" + bad + "\"]\n" + site))
		if err == nil || !strings.Contains(err.Error(), "2: listeners.admin.hosts[1]:") {
			t.Errorf("hosts entry %q: %v, want an error naming listeners.admin.hosts[1]", bad, err)
		}
	}
}

// TestCluster: [cluster] with its defaults, the user name taken from the
// URL, the ACME storage following it, and zones of both scopes; without
// [cluster] nothing of it is set.
func TestCluster(t *testing.T) {
	const site = `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
limit = ["api", "pages"]
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	cfg, err := Parse([]byte(`
[cluster]
url = "rediss://gatehouse@redis.internal:6380/2"
password_env = "REDIS_PASSWORD"
instance = "edge-1"

[zones.api]
rate = "30r/s"
scope = "cluster"
[zones.pages]
rate = "10r/s"
` + site))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{
		URL: "rediss://gatehouse@redis.internal:6380/2", Username: "gatehouse", PasswordEnv: "REDIS_PASSWORD",
		KeyPrefix: DefaultClusterKeyPrefix, Instance: "edge-1",
		Timeout: DefaultClusterTimeout, Heartbeat: DefaultClusterHeartbeat, BanSync: DefaultClusterBanSync,
	}
	if cfg.Cluster == nil || *cfg.Cluster != want {
		t.Errorf("Cluster = %+v, want %+v", cfg.Cluster, want)
	}
	if cfg.ACME.Storage != StorageCluster {
		t.Errorf("acme.storage = %q, want %q with [cluster]", cfg.ACME.Storage, StorageCluster)
	}
	if got := cfg.Zones["api"].Scope; got != ScopeCluster {
		t.Errorf("zones.api.scope = %q, want cluster", got)
	}
	if got := cfg.Zones["pages"].Scope; got != ScopeLocal {
		t.Errorf("zones.pages.scope = %q, want local (the default)", got)
	}

	cfg, err = Parse([]byte(`
[zones.api]
rate = "30r/s"
[zones.pages]
rate = "10r/s"
` + site))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != nil || cfg.ACME.Storage != StorageFile {
		t.Errorf("without [cluster]: Cluster = %+v, acme.storage = %q; want nil and file", cfg.Cluster, cfg.ACME.Storage)
	}
}
