package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/hostname"
)

// TestHostLookupTrailingDot: a Host ending in a dot reaches the site of
// the name without it (issue 12 item 3), for requests and for the
// certificate host policy; IPv6 sites are found whatever the spelling.
func TestHostLookupTrailingDot(t *testing.T) {
	_, rt := startTestEdge(t, `
[listeners.https]
address = ""
[sites.secret]
hosts = ["secret.test", "*.w.test", "::1"]
tls = "off"
[[sites.secret.routes]]
upstream = "app"
[sites.d]
default = true
tls = "off"
[[sites.d.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`, Deps{})
	for _, host := range []string{"secret.test.", "Secret.Test.:80", "a.w.test.", "[0::1]:8080"} {
		h, ok := hostname.Canonical(host)
		if !ok {
			t.Fatalf("hostname.Canonical(%q) refused", host)
		}
		if got := rt.siteFor(h).cfg.Name; got != "secret" {
			t.Errorf("Host %q: site %q, want secret", host, got)
		}
	}
	for host, want := range map[string]bool{"secret.test.": true, "SECRET.TEST.": true, "a.w.test.": true, "secret.test..": false, "other.test.": false} {
		if got := rt.HostAllowed(host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestRouteMatchCase: matching is case-sensitive unless the route says
// case_insensitive (ASCII only), and TRACE follows allow_trace (site
// default, route override).
func TestRouteMatchCase(t *testing.T) {
	_, rt := startTestEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.test"]
tls = "off"
allow_trace = true
[[sites.a.routes]]
path = "/"
upstream = "app"
allow_trace = false
[[sites.a.routes]]
path = "/api/"
upstream = "app"
case_insensitive = true
[[sites.a.routes]]
path = "/Static/"
upstream = "app"
[[sites.a.routes]]
path = "/s/"
upstream = "app"
case_insensitive = true
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`, Deps{})
	s := rt.siteFor("a.test")
	for p, want := range map[string]string{
		"/api/x": "/api/", "/API/x": "/api/", "/Api/": "/api/", "/apix": "/",
		"/Static/x": "/Static/", "/static/x": "/", "/STATIC/x": "/",
		"/S/x": "/s/", "/ſ/x": "/", // U+017F folds to "s" in Unicode, not in ASCII
	} {
		if got := s.match(p).cfg.Path; got != want {
			t.Errorf("match(%q) = route %q, want %q", p, got, want)
		}
	}
	for p, want := range map[string]bool{"/": false, "/api/": true, "/Static/": true} {
		if got := s.match(p).cfg.AllowTrace; got != want {
			t.Errorf("route %q: AllowTrace = %v, want %v", p, got, want)
		}
	}
	if strings.Contains(s.match("/API/x").cfg.Path, "API") {
		t.Errorf("the route's own path changed case")
	}
}

// TestRedirectIPv6Host: the HTTPS redirect of a site named by an IPv6
// address keeps the brackets (hostname.Canonical drops them for the lookup).
func TestRedirectIPv6Host(t *testing.T) {
	e := newTestEdge(t, `
state_dir = "`+t.TempDir()+`"
[listeners.https]
address = "127.0.0.1:8443"
[sites.a]
hosts = ["::1", "a.test"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`)
	for host, want := range map[string]string{
		"[0::1]:80":  "https://[::1]:8443/x?y",
		"A.Test.:80": "https://a.test:8443/x?y",
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/x?y", nil)
		r.Host = host
		e.ServeHTTP(w, r)
		if got := w.Header().Get("Location"); w.Code != 301 || got != want {
			t.Errorf("Host %s: %d Location %q, want 301 %q", host, w.Code, got, want)
		}
	}
}
