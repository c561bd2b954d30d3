package proxy

import (
	"strings"
	"testing"
)

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
