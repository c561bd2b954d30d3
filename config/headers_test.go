package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// siteWith is a one-site config whose site and first route carry the
// given extra lines.
func siteWith(top, site, route string) string {
	return top + `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
` + site + `
[[sites.a.routes]]
upstream = "app"
` + route + `
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
}

// TestHeaderRules: names are canonicalised, values split into literals
// and variables, site and route rules kept apart (the proxy applies the
// site's first).
func TestHeaderRules(t *testing.T) {
	c, err := Parse([]byte(siteWith("", `
[sites.a.response_headers]
set = { content-security-policy = "default-src 'self'", X-Frame-Options = "DENY" }
add = { Link = ["</a.css>; rel=preload", "</b.js>; rel=preload"] }
remove = ["server", "X-Powered-By"]
`, `
[sites.a.routes.request_headers]
set = { X-Client = "${remote_addr}:$scheme", X-Tls = "$ssl_protocol", X-Cost = "$5" }
remove = ["X-Debug"]
`)))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sites[0]
	want := HeaderRules{
		Remove: []string{"Server", "X-Powered-By"},
		Set: []HeaderField{
			{Name: "Content-Security-Policy", Values: []HeaderValue{{{Lit: "default-src 'self'"}}}},
			{Name: "X-Frame-Options", Values: []HeaderValue{{{Lit: "DENY"}}}},
		},
		Add: []HeaderField{{Name: "Link", Values: []HeaderValue{{{Lit: "</a.css>; rel=preload"}}, {{Lit: "</b.js>; rel=preload"}}}}},
	}
	if !reflect.DeepEqual(s.ResponseHeaders, want) {
		t.Errorf("site response rules:\n got %+v\nwant %+v", s.ResponseHeaders, want)
	}
	rq := s.Routes[0].RequestHeaders
	wantReq := HeaderRules{
		Remove: []string{"X-Debug"},
		Set: []HeaderField{
			{Name: "X-Client", Values: []HeaderValue{{{Var: VarRemoteAddr}, {Lit: ":"}, {Var: VarScheme}}}},
			{Name: "X-Cost", Values: []HeaderValue{{{Lit: "$5"}}}},
			{Name: "X-Tls", Values: []HeaderValue{{{Var: VarSSLProtocol}}}},
		},
	}
	if !reflect.DeepEqual(rq, wantReq) {
		t.Errorf("route request rules:\n got %+v\nwant %+v", rq, wantReq)
	}
	if !s.Routes[0].ResponseHeaders.Empty() || !s.RequestHeaders.Empty() {
		t.Errorf("rules leaked between tables: route response %+v, site request %+v", s.Routes[0].ResponseHeaders, s.RequestHeaders)
	}
}

// TestHeaderRulesRefused: each protected header, bad name or value is an
// error naming the key and saying why.
func TestHeaderRulesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, site, route, want string
	}{
		{"response framing", `response_headers.set = { Transfer-Encoding = "chunked" }`, "", "Transfer-Encoding is hop-by-hop"},
		{"response encoding", `response_headers.remove = ["content-encoding"]`, "", "content-encoding describes the body as it is sent"},
		{"hsts", `response_headers.set = { Strict-Transport-Security = "max-age=1" }`, "", "is set with the site's hsts key"},
		{"sendfile", `response_headers.add = { X-Sendfile = "/etc/passwd" }`, "", "instruction from a backend to the proxy"},
		{"request id response", "", `response_headers.remove = ["X-Request-ID"]`, "carries the request ID"},
		{"request id request", "", `request_headers.set = { X-Request-Id = "x" }`, "carries the request ID"},
		{"forwarded proto", `request_headers.set = { X-Forwarded-Proto = "https" }`, "", "written by Gatehouse from the connection"},
		{"real ip remove", "", `request_headers.remove = ["X-Real-IP"]`, "written by Gatehouse from the connection"},
		{"underscore alias", "", `request_headers.add = { X_Forwarded_Host = "x" }`, "X-Forwarded-Host spelled with underscores"},
		{"connection", "", `request_headers.remove = ["Connection"]`, "hop-by-hop"},
		{"cookie set", "", `request_headers.set = { Cookie = "a=b" }`, "a rule may only remove it"},
		{"bad name", "", `response_headers.set = { "X Bad" = "1" }`, "\"X Bad\" is not a header name"},
		{"newline", "", `response_headers.set = { X-A = "a\r\nSet-Cookie: x=y" }`, "contains the control character"},
		{"empty", "", `response_headers.set = { X-A = "" }`, "is empty (to drop the header, list it in remove)"},
		{"twice", "", "response_headers.set = { X-A = \"1\" }\nresponse_headers.remove = [\"x-a\"]", "X-A is already in remove"},
		{"var in response", "", `response_headers.set = { X-A = "$request_id" }`, "variables are expanded in request_headers only"},
		{"unclosed var", "", `request_headers.set = { X-A = "${host" }`, "unclosed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(siteWith("", tc.site, tc.route)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "_headers.") {
				t.Errorf("error %q does not name the rule's key", err)
			}
		})
	}
	// Request IDs off: the header is free for rules.
	if _, err := Parse([]byte(siteWith("[request_id]\nenabled = false\n", "", `request_headers.set = { X-Request-Id = "x" }`))); err != nil {
		t.Errorf("request IDs off, a rule on X-Request-Id: %v", err)
	}
}

// TestRequestIDConfig: on by default with X-Request-ID; the name is
// configurable.
func TestRequestIDConfig(t *testing.T) {
	c, err := Parse([]byte(siteWith("", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.RequestID.Enabled || c.RequestID.Header != "X-Request-Id" {
		t.Errorf("default request_id = %+v, want enabled with X-Request-Id", c.RequestID)
	}
	c, err = Parse([]byte(siteWith("[request_id]\nheader = \"x-correlation-id\"\n", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestID.Header != "X-Correlation-Id" {
		t.Errorf("header = %q, want X-Correlation-Id", c.RequestID.Header)
	}
}

// TestSelfSignedNoHSTS (issue 14.7): a self_signed site sends no HSTS
// unless its hsts key asks for it; the other modes keep the default.
func TestSelfSignedNoHSTS(t *testing.T) {
	c, err := Parse([]byte(siteWith("", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sites[0].HSTS; got != "" {
		t.Errorf("self_signed site: HSTS %q by default, want none", got)
	}
	c, err = Parse([]byte(siteWith("", `hsts = "max-age=300"`, "")))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sites[0].HSTS; got != "max-age=300" {
		t.Errorf("self_signed site with hsts = \"max-age=300\": HSTS %q", got)
	}
	c, err = Parse([]byte(strings.Replace(siteWith("", "", ""), `tls = "self_signed"`, `tls = "acme"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sites[0].HSTS; got != DefaultHSTS {
		t.Errorf("acme site: HSTS %q, want the default %q", got, DefaultHSTS)
	}
}

// TestFileRoutes: alias and root, the file options, internal routes,
// x_accel_redirect and the open-file cache.
func TestFileRoutes(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"static", "private"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "g.toml")
	text := `
[open_file_cache]
entries = 10
valid = "0s"
memory = "1MiB"
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
path = "/static/"
alias = "static"
index = ["index.html"]
cache_control = "public, max-age=600"
precompressed = []
[[sites.a.routes]]
path = "/protected/"
root = "` + dir + `"
internal = true
[[sites.a.routes]]
path = "/"
root = "static"
upstream = "app"
[upstreams.app]
x_accel_redirect = true
servers = [{ address = "127.0.0.1:8000" }]
`
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.OpenFileCache, (OpenFileCache{Entries: 10, Valid: 0, Inactive: time.Minute, Memory: 1 << 20}); got != want {
		t.Errorf("open_file_cache = %+v, want %+v", got, want)
	}
	byPath := map[string]*Route{}
	for _, r := range c.Sites[0].Routes {
		byPath[r.Path] = r
	}
	st := byPath["/static/"].Files
	if st == nil || !st.Alias || st.Dir != filepath.Join(dir, "static") || st.CacheControl != "public, max-age=600" ||
		!reflect.DeepEqual(st.Index, []string{"index.html"}) || st.Precompressed == nil || len(st.Precompressed) != 0 {
		t.Errorf("/static/ files = %+v", st)
	}
	pr := byPath["/protected/"]
	if pr.Files == nil || pr.Files.Alias || pr.Files.Dir != dir || !pr.Internal || pr.Upstream != "" {
		t.Errorf("/protected/ = %+v, files %+v", pr, pr.Files)
	}
	if fb := byPath["/"]; fb.Files == nil || fb.Upstream != "app" || fb.Files.Precompressed != nil {
		t.Errorf("/ (files with fallback) = %+v", fb)
	}
	if !c.Upstreams["app"].XAccelRedirect {
		t.Error("x_accel_redirect not set")
	}
}
