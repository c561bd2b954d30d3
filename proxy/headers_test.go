package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/edgeserver"
)

// echoHeaders is a backend that answers with the request headers it got
// (as "Name: value" lines, sorted) and sets some response headers.
func echoHeaders(t *testing.T) (*httptest.Server, func() http.Header) {
	t.Helper()
	var mu sync.Mutex
	var last http.Header
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r.Header.Clone()
		mu.Unlock()
		h := w.Header()
		h.Set("Server", "daphne")
		h.Set("X-Powered-By", "django")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		h.Set("Cache-Control", "public, max-age=300")
		if r.URL.Path == "/cookie" {
			h.Add("Set-Cookie", "sessionid=abc; HttpOnly")
		}
		if r.URL.Path == "/echo-id" {
			// Django echoing the ID it was given, as a view might.
			h.Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	return be, func() http.Header { mu.Lock(); defer mu.Unlock(); return last }
}

const ruleSite = `
[sites.a.response_headers]
set = { Content-Security-Policy = "default-src 'self'", X-Frame-Options = "DENY" }
remove = ["Server"]
[sites.a.request_headers]
set = { X-Client = "$remote_addr via $scheme to $host", X-Tls = "[$ssl_protocol]" }
remove = ["X-Debug"]
`

// ruleConfig is fwdConfig with the header rules above on the site and,
// on the route, routeRules.
func ruleConfig(mode, backend, routeRules, upstreamExtra string) string {
	cfg := fwdConfig(mode, backend, routeRules, upstreamExtra, "")
	return strings.Replace(cfg, "[[sites.a.routes]]", ruleSite+"[[sites.a.routes]]", 1)
}

// TestResponseHeaderRules (issue 14.4): the site's rules, then the
// route's, change proxied responses and Gatehouse's own (error pages,
// redirects, 405, 429); Gatehouse's own fields (the sticky cookie, the
// request ID) come after the rules.
func TestResponseHeaderRules(t *testing.T) {
	be, _ := echoHeaders(t)
	route := `
[sites.a.routes.response_headers]
add = { Link = "</app.css>; rel=preload" }
remove = ["X-Powered-By", "Set-Cookie"]
[[sites.a.routes]]
path = "/limited/"
upstream = "app"
limit = ["one"]
[zones.one]
rate = "1r/m"
`
	cfg := ruleConfig("gatehouse", be.Listener.Addr().String(), route, "sticky = { cookie = \"SERVERID\" }\n")
	f := newFwdEdge(t, cfg)
	base, c := f.serve(t, false)

	check := func(what string, resp *http.Response, routeRules bool) {
		t.Helper()
		if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'self'" {
			t.Errorf("%s: Content-Security-Policy %q", what, got)
		}
		if got := resp.Header.Values("X-Frame-Options"); len(got) != 1 || got[0] != "DENY" {
			t.Errorf("%s: X-Frame-Options %q, want [DENY] (set replaces the backend's)", what, got)
		}
		if got := resp.Header.Get("Server"); got != "" {
			t.Errorf("%s: Server %q, want removed", what, got)
		}
		if routeRules && resp.Header.Get("Link") != "</app.css>; rel=preload" {
			t.Errorf("%s: Link %q, want the route's rule", what, resp.Header.Get("Link"))
		}
		if len(resp.Header.Get("X-Request-Id")) != 32 {
			t.Errorf("%s: no request ID", what)
		}
	}
	do := func(method, path string) *http.Response {
		req, _ := http.NewRequest(method, base+path, nil)
		req.Host = "a.example"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := do("GET", "/cookie")
	check("proxied", resp, true)
	if got := resp.Header.Get("X-Powered-By"); got != "" {
		t.Errorf("proxied: X-Powered-By %q, want removed by the route", got)
	}
	var cookies []string
	for _, ck := range resp.Cookies() {
		cookies = append(cookies, ck.Name)
	}
	if len(cookies) != 1 || cookies[0] != "SERVERID" {
		t.Errorf("proxied: cookies %v; want only the sticky cookie (the backend's removed by the rule, Gatehouse's added after)", cookies)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
		t.Errorf("proxied with a sticky cookie: Cache-Control %q, want private", cc)
	}
	check("405", do("TRACE", "/x"), true)
	check("429 (first)", do("GET", "/limited/"), false)
	resp = do("GET", "/limited/")
	if resp.StatusCode != 429 {
		t.Fatalf("second request over the zone: %d", resp.StatusCode)
	}
	check("429", resp, false)

	// No route (404) and the redirect to https get the site's rules.
	be2, _ := echoHeaders(t) // its own backend: see TestRequestID
	f2 := newFwdEdge(t, strings.Replace(ruleConfig("gatehouse", be2.Listener.Addr().String(), "", ""), "[[sites.a.routes]]\nupstream = \"app\"", "[[sites.a.routes]]\npath = \"/app/\"\nupstream = \"app\"", 1))
	base2, c2 := f2.serve(t, false)
	req, _ := http.NewRequest("GET", base2+"/nowhere", nil)
	req.Host = "a.example"
	resp, err := c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("no route: %d", resp.StatusCode)
	}
	check("404 without a route", resp, false)

	e, w, r := redirectEdge(t, strings.Replace(ruleSite, "[sites.a.", "[sites.r.", -1))
	e.ServeHTTP(w, r)
	if w.Code != 301 || w.Header().Get("Content-Security-Policy") != "default-src 'self'" || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("redirect to https: %d, headers %v; want 301 with the site's rules", w.Code, w.Header())
	}
}

// redirectEdge is a site r with redirect_https and the given extra lines.
func redirectEdge(t *testing.T, extra string) (*Edge, *httptest.ResponseRecorder, *http.Request) {
	t.Helper()
	cfg := `
[listeners.https]
address = "127.0.0.1:0"
[sites.r]
hosts = ["r.example"]
tls = "self_signed"
` + extra + `
[[sites.r.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`
	e := newTestEdge(t, cfg)
	r := httptest.NewRequest("GET", "/x", nil)
	r.Host = "r.example"
	ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.1")}
	return e, httptest.NewRecorder(), r.WithContext(edgeserver.WithConnInfo(r.Context(), ci))
}

// TestRequestHeaderRules (issue 14.4): request rules with variables reach
// the backend in both upstream clients and in the WebSocket handshake's
// rewrite; the client's own values of set or removed fields do not.
func TestRequestHeaderRules(t *testing.T) {
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			be, last := echoHeaders(t)
			route := `
[sites.a.routes.request_headers]
add = { X-Route = "r1" }
set = { X-Tls = "route wins" }
`
			f := newFwdEdge(t, ruleConfig(mode, be.Listener.Addr().String(), route, ""))
			base, c := f.serve(t, false)
			req, _ := http.NewRequest("GET", base+"/p", nil)
			req.Host = "A.Example:80"
			req.Header.Set("X-Client", "spoofed")
			req.Header.Set("X_Client", "spoofed too")
			req.Header.Set("X-Debug", "1")
			req.Header.Set("X-Route", "client's")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := last()
			id := resp.Header.Get("X-Request-Id")
			for k, want := range map[string][]string{
				"X-Client":     {"127.0.0.1 via http to a.example"},
				"X_client":     nil,
				"X-Debug":      nil,
				"X-Tls":        {"route wins"},
				"X-Route":      {"client's", "r1"},
				"X-Request-Id": {id},
			} {
				if got := h.Values(k); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("backend saw %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestRequestID (issue 14.5): every request gets a fresh 32-hex-digit ID,
// sent to the backend, returned to the client (even when the backend
// echoes another), written in the access log and shown on error pages; a
// client's own ID is kept only from a trusted proxy, and only when sane.
func TestRequestID(t *testing.T) {
	be, last := echoHeaders(t)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	f := newFwdEdge(t, fwdConfig("gatehouse", be.Listener.Addr().String(), "", "", ""))
	base, c := f.serve(t, false)
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = "a.example"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	seen := map[string]bool{}
	for range 3 {
		resp, _ := get("/echo-id", map[string]string{"X-Request-Id": "forged-by-client"})
		id := resp.Header.Get("X-Request-Id")
		if !hexID.MatchString(id) || seen[id] {
			t.Errorf("request ID %q: want a fresh 32-hex-digit one (a client's is not kept from an untrusted peer)", id)
		}
		seen[id] = true
		if got := last().Values("X-Request-Id"); len(got) != 1 || got[0] != id {
			t.Errorf("backend saw X-Request-Id %q, want [%q]", got, id)
		}
		<-f.served
		if !strings.Contains(f.log.String(), `"request_id":"`+id+`"`) {
			t.Errorf("access log lacks request_id %s:\n%s", id, f.log.String())
		}
	}

	// The built-in error page shows it.
	f2 := newFwdEdge(t, fwdConfig("gatehouse", "127.0.0.1:9", "", "", ""))
	base2, c2 := f2.serve(t, false)
	req, _ := http.NewRequest("GET", base2+"/", nil)
	req.Host = "a.example"
	resp, err := c2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 502 || !strings.Contains(string(body), "request ID <code>"+id+"</code>") || !hexID.MatchString(id) {
		t.Errorf("502 page: %d %q (ID %q); want the built-in page with the ID", resp.StatusCode, body, id)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("502 page: Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}

	// From a trusted proxy a sane ID is kept; an insane one is not.
	// A backend of its own: each edge's leak check looks for sockets to
	// its upstream servers, and f's pool to be is closed only after f3's
	// check has run.
	be3, last3 := echoHeaders(t)
	f3 := newFwdEdge(t, "trusted_proxies = [\"127.0.0.1\"]\n"+fwdConfig("gatehouse", be3.Listener.Addr().String(), "", "", ""))
	base, c = f3.serve(t, false)
	for v, kept := range map[string]bool{
		"6f1c2a1e-8d9b-4c3a-9a55-0d7e2f3b4c5d":     true,
		"Root=1-67891233-abcdef012345678912345678": true,
		"<script>alert(1)</script>":                false,
		"two words":                                false,
		strings.Repeat("a", 129):                   false,
	} {
		resp, _ := get("/", map[string]string{"X-Request-Id": v})
		id := resp.Header.Get("X-Request-Id")
		if kept && id != v || !kept && !hexID.MatchString(id) {
			t.Errorf("trusted proxy sent %q: ID %q (kept: want %v)", v, id, kept)
		}
		if got := last3().Get("X-Request-Id"); got != id {
			t.Errorf("trusted proxy sent %q: backend saw %q, client %q", v, got, id)
		}
	}
}

// TestRequestIDOff: with [request_id] enabled = false, no ID is made, and
// a client's header passes as any other.
func TestRequestIDOff(t *testing.T) {
	be, last := echoHeaders(t)
	f := newFwdEdge(t, "[request_id]\nenabled = false\n"+fwdConfig("gatehouse", be.Listener.Addr().String(), "", "", ""))
	base, c := f.serve(t, false)
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "a.example"
	req.Header.Set("X-Request-Id", "client")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "" {
		t.Errorf("response X-Request-Id %q, want none", got)
	}
	if got := last().Get("X-Request-Id"); got != "client" {
		t.Errorf("backend saw %q, want the client's header passed on", got)
	}
}

// TestResponseHeaderRules421: a Host no site claims (421) gets the rules
// and HSTS of the site its TLS server name belongs to, the site the
// browser applies them to.
func TestResponseHeaderRules421(t *testing.T) {
	e := newTestEdge(t, `
[listeners.https]
address = "127.0.0.1:0"
[sites.r]
hosts = ["r.example"]
tls = "self_signed"
hsts = "max-age=60"
`+strings.Replace(ruleSite, "[sites.a.", "[sites.r.", -1)+`
[[sites.r.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`)
	r := httptest.NewRequest("GET", "/x", nil)
	r.Host = "other.example"
	ci := &edgeserver.ConnInfo{Listener: "https", Peer: netip.MustParseAddr("192.0.2.1"), TLS: &tls.ConnectionState{ServerName: "r.example"}}
	r = r.WithContext(edgeserver.WithConnInfo(r.Context(), ci))
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != 421 || w.Header().Get("Content-Security-Policy") != "default-src 'self'" || w.Header().Get("Strict-Transport-Security") != "max-age=60" {
		t.Errorf("421: %d, headers %v; want the SNI site's rules and HSTS", w.Code, w.Header())
	}
}
