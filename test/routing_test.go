package test

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// End-to-end tests of request routing (issue 12 items 2, 3 and 13): path
// spellings, Host spellings and methods, against a real backend that
// records what it received. Every test here is named TestRouting*.

// routingDenied are the route prefixes the routing config refuses to
// everyone.
var routingDenied = []string{"/static/admin/", "/admin/"}

// routingSites is the routing tests' sites: "secret" refuses everyone;
// "app" is also the default site, with denied routes, a rate-limited
// case-insensitive /api/ route, a route allowing TRACE and a WebSocket
// route. tlsKeys is inserted in both sites (tls = "off" for plain).
func routingSites(tlsKeys, backendAddr string) string {
	return fmt.Sprintf(`
[zones.api]
rate = "1r/h"
burst = 1

[sites.secret]
hosts = ["secret.test"]
access_log = "off"
%[1]s
deny = ["0.0.0.0/0", "::/0"]

[[sites.secret.routes]]
path = "/"
upstream = "app"

[sites.app]
hosts = ["app.test"]
default = true
access_log = "off"
%[1]s

[[sites.app.routes]]
path = "/"
upstream = "app"

[[sites.app.routes]]
path = "/static/"
upstream = "app"

[[sites.app.routes]]
path = "/static/admin/"
upstream = "app"
deny = ["0.0.0.0/0", "::/0"]

[[sites.app.routes]]
path = "/admin/"
upstream = "app"
deny = ["0.0.0.0/0", "::/0"]

[[sites.app.routes]]
path = "/api/"
upstream = "app"
limit = ["api"]
case_insensitive = true

[[sites.app.routes]]
path = "/trace/"
upstream = "app"
allow_trace = true

[[sites.app.routes]]
path = "/ws/"
upstream = "app"
websocket = { enabled = true, origins = ["*"] }

[upstreams.app]
servers = [{ name = "b1", address = %[2]q }]
`, tlsKeys, backendAddr)
}

// startRoutingLibrary runs routingSites over plain HTTP in process.
func startRoutingLibrary(t *testing.T, backendAddr string) string {
	t.Helper()
	return startLibrary(t, `
[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = ""
`+routingSites(`tls = "off"`, backendAddr))
}

// routingGet sends one raw HTTP/1.1 request line (with Host) on a fresh
// connection and returns the status and the response's Allow header.
func routingGet(t *testing.T, addr, method, target, host string) (int, string) {
	t.Helper()
	resp, _, _ := rawExchange(t, addr, method+" "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n", 0)
	return resp.StatusCode, resp.Header.Get("Allow")
}

// backendView is the path a decoding, cleaning backend makes of a
// request target: Go's http.FileServer (path.Clean of the decoded
// URL.Path) and Django's static view (posixpath.normpath of the decoded
// path) agree on it.
func backendView(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	if d, err := url.PathUnescape(p); err == nil {
		p = d
	}
	if c := path.Clean(p); c != "/" && strings.HasSuffix(p, "/") {
		return c + "/"
	} else {
		return c
	}
}

// routingDeniedForms spells the denied paths in every way a normalising
// backend maps back to them: the forms of issue 12, then each slash and
// each letter rewritten in turn.
func routingDeniedForms() []string {
	forms := []string{
		"/static/admin/x", "/admin/x",
		"/static//admin/x", "/static/./admin/x", "/static/x/../admin/x",
		"/static/x/%2e%2e/admin/x", "/%2e/admin/x",
		"/static%2Fadmin/x", "/static%2fadmin%2fx", "/static/x/..%2Fadmin/x",
		"/static/x%2F..%2F../admin/x", "/static/x/%2e%2e%2fadmin/x",
		"/static/x/y/../../admin/x", "/static/q/../../static/admin/x",
		"/public/../admin/x", "/static/admin%2F..%2Fadmin/x",
		"/../static/admin/x", "/static/x/../../../admin/x",
	}
	seps := []string{"//", "///", "/./", "/%2e/", "/%2E/", "/q/../", "/q/%2e%2e/", "/q/.%2e/", "/q/%2E./",
		"%2F", "%2f", "/%2e%2f", "/%2F", "%2F/", "/q%2F../", "/./q/.././"}
	for _, target := range []string{"/static/admin/x", "/admin/x"} {
		// Each slash in turn.
		for i := 0; i < len(target); i++ {
			if target[i] != '/' {
				continue
			}
			for _, sep := range seps {
				forms = append(forms, target[:i]+sep+target[i+1:])
			}
		}
		// Each letter escaped, in lower and upper case hex.
		for i := 0; i < len(target); i++ {
			if c := target[i]; c != '/' {
				forms = append(forms, fmt.Sprintf("%s%%%02x%s", target[:i], c, target[i+1:]), fmt.Sprintf("%s%%%02X%s", target[:i], c, target[i+1:]))
			}
		}
	}
	return forms
}

// TestRoutingPathForms: no spelling of a path under a route that denies
// everyone reaches the backend (issue 12 item 2): each gets 400 or 403;
// other paths are forwarded in their normalised form, query untouched.
func TestRoutingPathForms(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startRoutingLibrary(t, be.addr())

	for _, form := range routingDeniedForms() {
		before := be.count()
		code, _ := routingGet(t, addr, "GET", form, "app.test")
		if code != http.StatusForbidden && code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 403 (denied route) or 400 (malformed path)", form, code)
		}
		if n := be.count() - before; n != 0 {
			t.Errorf("GET %s reached the backend as %q", form, be.last(t).URI)
		}
	}

	for _, tc := range []struct{ target, want string }{
		{"/static/css/app.css?v=1", "/static/css/app.css?v=1"},
		{"/static/a/../b?x=%2e%2e/../&y", "/static/b?x=%2e%2e/../&y"},
		{"/static//css/./app.css", "/static/css/app.css"},
		{"/static/%61pp.css", "/static/app.css"},
		{"/static/a%2Fb", "/static/a%2Fb"},
		{"/static/admin", "/static/admin"}, // no trailing slash: not under /static/admin/
		{"/%2e/static/x", "/static/x"},
		// Matching is case-sensitive, as in nginx and Django's URL
		// resolver: the backend does not map this to static/admin/ either.
		{"/STATIC/admin/x", "/STATIC/admin/x"},
	} {
		code, _ := routingGet(t, addr, "GET", tc.target, "app.test")
		if code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", tc.target, code)
			continue
		}
		if got := be.last(t).URI; got != tc.want {
			t.Errorf("GET %s: backend received %q, want %q", tc.target, got, tc.want)
		}
	}

	// Whatever reached the backend, a normalising backend does not see it
	// under a denied route.
	for _, s := range be.requests() {
		for _, d := range routingDenied {
			if v := backendView(s.URI); strings.HasPrefix(v, d) {
				t.Errorf("backend received %q, which a normalising backend serves as %q, under the denied %s", s.URI, v, d)
			}
		}
	}
}

// TestRoutingZoneForms: the spellings of /api/ that escaped the api zone
// (issue 12 item 2) are limited with it; /API/ is the same route because
// it has case_insensitive = true.
func TestRoutingZoneForms(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startRoutingLibrary(t, be.addr())
	if code, _ := routingGet(t, addr, "GET", "/api/x", "app.test"); code != http.StatusOK {
		t.Fatalf("first GET /api/x: %d, want 200 (the zone's burst of 1)", code)
	}
	n := be.count()
	for _, form := range []string{"/api/x", "//api/x", "/./api/x", "/API/x", "/Api/x", "/%2e/api/x", "/%61pi/x", "/x/../api/x", "/api//x"} {
		if code, _ := routingGet(t, addr, "GET", form, "app.test"); code != http.StatusTooManyRequests {
			t.Errorf("GET %s after the burst: %d, want 429 (the api zone)", form, code)
		}
	}
	if got := be.count() - n; got != 0 {
		t.Errorf("%d rate-limited requests reached the backend, want 0", got)
	}
}

// TestRoutingHostForms: a Host spelled with a trailing dot, another case
// or a port reaches its site, whose deny then applies (issue 12 item 3);
// malformed Hosts get 400; an absolute-form target's authority, not the
// Host header, picks the site and is the Host forwarded (RFC 9112
// §3.2.2, as net/http reads it).
func TestRoutingHostForms(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startRoutingLibrary(t, be.addr())

	for _, tc := range []struct {
		target, host string
		want         int
	}{
		{"/", "secret.test", 403},
		{"/", "secret.test.", 403},
		{"/", "SECRET.Test.", 403},
		{"/", "secret.test:80", 403},
		{"/", "secret.test.:80", 403},
		{"/", "secret.test..", 400},
		{"/", ".secret.test", 400},
		{"/", "secret.test:x", 400},
		{"/", "user@secret.test", 400}, // net/http refuses it first
		{"/", "secret.test/", 400},
		{"http://secret.test/", "app.test", 403},
		{"http://secret.test./", "app.test", 403},
		{"http://SECRET.TEST:80/", "app.test", 403},
	} {
		before := be.count()
		if code, _ := routingGet(t, addr, "GET", tc.target, tc.host); code != tc.want {
			t.Errorf("GET %s with Host %q: %d, want %d", tc.target, tc.host, code, tc.want)
		}
		if be.count() != before {
			t.Errorf("GET %s with Host %q reached the backend", tc.target, tc.host)
		}
	}

	// Accepted spellings are forwarded unchanged: Django's ALLOWED_HOSTS
	// accepts the trailing-dot form of an allowed name.
	for _, tc := range []struct{ target, host, wantHost, wantURI string }{
		{"/h1", "app.test.", "app.test.", "/h1"},
		{"/h2", "App.Test:8080", "App.Test:8080", "/h2"},
		{"/h3", "[::1]", "[::1]", "/h3"},
		{"http://app.test/h4?q", "secret.test", "app.test", "/h4?q"},
	} {
		if code, _ := routingGet(t, addr, "GET", tc.target, tc.host); code != http.StatusOK {
			t.Errorf("GET %s with Host %q: %d, want 200", tc.target, tc.host, code)
			continue
		}
		s := be.last(t)
		if s.Host != tc.wantHost || s.URI != tc.wantURI {
			t.Errorf("GET %s with Host %q: backend got Host %q target %q, want %q %q", tc.target, tc.host, s.Host, s.URI, tc.wantHost, tc.wantURI)
		}
	}
}

// TestRoutingMethods: TRACE is answered 405 with Allow unless the route
// has allow_trace (issue 12 item 13); CONNECT never reaches a backend.
func TestRoutingMethods(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startRoutingLibrary(t, be.addr())

	for _, target := range []string{"/", "/static/x", "/api/x"} {
		code, allow := routingGet(t, addr, "TRACE", target, "app.test")
		if code != http.StatusMethodNotAllowed || !strings.Contains(allow, "GET") || strings.Contains(allow, "TRACE") {
			t.Errorf("TRACE %s: %d Allow %q, want 405 with an Allow header listing GET and not TRACE", target, code, allow)
		}
	}
	if code, _ := routingGet(t, addr, "CONNECT", "app.test:443", "app.test"); code != http.StatusBadRequest {
		t.Errorf("CONNECT over HTTP/1.1: %d, want 400", code)
	}
	if n := be.count(); n != 0 {
		t.Errorf("%d refused requests reached the backend (last %s %s)", n, be.last(t).Method, be.last(t).URI)
	}
	if code, _ := routingGet(t, addr, "TRACE", "/trace/x", "app.test"); code != http.StatusOK {
		t.Errorf("TRACE on a route with allow_trace: %d, want 200", code)
	} else if s := be.last(t); s.Method != "TRACE" || s.URI != "/trace/x" {
		t.Errorf("TRACE on a route with allow_trace: backend got %s %s", s.Method, s.URI)
	}
}

// TestRoutingWebSocketTarget: a WebSocket handshake is forwarded with the
// normalised target too, and one whose path normalises into a denied
// route never reaches the backend.
func TestRoutingWebSocketTarget(t *testing.T) {
	be := newBackend(t, "b1", nil) // answers 200: the edge passes that on
	addr := startRoutingLibrary(t, be.addr())
	upgrade := func(target string) int {
		resp, _, _ := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://app.test\r\n\r\n", 0)
		return resp.StatusCode
	}
	upgrade("/ws/a/../b//c?x=%2e%2e")
	if be.count() != 1 {
		t.Fatalf("the handshake did not reach the backend")
	}
	if got, want := be.last(t).URI, "/ws/b/c?x=%2e%2e"; got != want {
		t.Errorf("handshake for /ws/a/../b//c?x=%%2e%%2e: backend received %q, want %q", got, want)
	}
	if code := upgrade("/ws/../admin/x"); code != http.StatusForbidden {
		t.Errorf("handshake for /ws/../admin/x: %d, want 403", code)
	}
	if be.count() != 1 {
		t.Errorf("handshake for /ws/../admin/x reached the backend as %q", be.last(t).URI)
	}
}

// TestRoutingHTTP2 runs the binary over TLS and sends what only HTTP/2
// can carry to the handler: CONNECT (HTTP/1 refuses it before routing),
// a TRACE, an :authority with a trailing dot, and an unclean :path.
func TestRoutingHTTP2(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, dir, "app.test", "secret.test")
	keys := fmt.Sprintf("tls = \"files\"\ncert_file = %q\nkey_file = %q\nredirect_https = false\nhsts = \"off\"", certFile, keyFile)
	g := startGatehouseIn(t, dir, baseListeners+routingSites(keys, be.addr()))

	c := tlsClient(ca.pool, "app.test")
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	do := func(method, target, host string) *http.Response {
		t.Helper()
		req := mustRequest(method, "https://"+g.httpsAddr+target, host)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s (Host %s): %v", method, target, host, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s %s: answered over HTTP/%d, want HTTP/2", method, target, resp.ProtoMajor)
		}
		return resp
	}

	for _, tc := range []struct {
		method, target, host string
		want                 int
	}{
		{"CONNECT", "", "app.test:443", 405},
		{"TRACE", "/", "app.test", 405},
		{"GET", "/", "secret.test.", 403},
		{"GET", "/static/x/../admin/x", "app.test", 403},
		{"GET", "/static/x/%2e%2e/admin/x", "app.test", 403},
	} {
		resp := do(tc.method, tc.target, tc.host)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %q (:authority %s) over HTTP/2: %d, want %d", tc.method, tc.target, tc.host, resp.StatusCode, tc.want)
		}
		if resp.StatusCode == 405 && !strings.Contains(resp.Header.Get("Allow"), "GET") {
			t.Errorf("%s over HTTP/2: 405 without an Allow header", tc.method)
		}
	}
	if n := be.count(); n != 0 {
		t.Errorf("%d refused requests reached the backend (last %s %s)", n, be.last(t).Method, be.last(t).URI)
	}
	if resp := do("GET", "/static/x/../y", "app.test"); resp.StatusCode != 200 {
		t.Errorf("GET /static/x/../y over HTTP/2: %d, want 200", resp.StatusCode)
	} else if got := be.last(t).URI; got != "/static/y" {
		t.Errorf("GET /static/x/../y over HTTP/2: backend received %q, want /static/y", got)
	}
}
