package statuspage

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

var t0 = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// fakeSource is a fixed data source: the tests here are about rendering,
// not about collecting.
type fakeSource struct {
	reload    Reload
	sites     []Site
	upstreams func(now time.Time) []Upstream
	token     bool
}

func (f *fakeSource) Reload() Reload                     { return f.reload }
func (f *fakeSource) Sites() []Site                      { return f.sites }
func (f *fakeSource) Upstreams(now time.Time) []Upstream { return f.upstreams(now) }
func (f *fakeSource) TokenRequired() bool                { return f.token }

type certList []Certificate

func (c certList) Certificates() []Certificate { return c }

type banList []Ban

func (b banList) Bans(now time.Time, max int) (int, []Ban) { return len(b), b[:min(max, len(b))] }

// everyState is one upstream with a server in each state, and the rest
// of a page: certificates of each source, bans (one with markup in its
// reason), a failed reload and two sites.
func everyState() (*fakeSource, certList, banList) {
	src := &fakeSource{
		reload: Reload{Path: "/etc/gatehouse/gatehouse.toml", Hash: strings.Repeat("ab", 32), LoadedAt: t0.Add(-time.Hour),
			LastAttempt: t0.Add(-time.Minute), LastOK: false, LastError: "gatehouse.toml:7: upstreams.app.servers: must not be empty"},
		sites: []Site{
			{Name: "app", Hosts: []string{"app.example", "www.app.example"}, TLS: "acme", Routes: []Route{
				{Path: "/ws/", Upstream: "app", WebSocket: true}, {Path: "/", Upstream: "app"}}},
			{Name: "static", Hosts: []string{"static.example"}, TLS: "files", Routes: []Route{{Path: "/"}}},
		},
		upstreams: func(now time.Time) []Upstream {
			return []Upstream{{
				Name: "app", Policy: "round_robin", Health: &Health{Method: "GET", Path: "/health/", Interval: "2s"},
				Servers: []Server{
					{Name: "up1", Label: "up1", Addr: "10.0.0.1:8000", State: StateUp, Weight: 1, InFlight: 3, Queue: 1, WebSockets: 2,
						LastCheck: &Check{At: now.Add(-2 * time.Second), OK: true, Reason: "status 200"},
						Counters:  Counters{Responses: 100, Errors: 0, Latency: 100 * 12 * time.Millisecond}},
					{Name: "down1", Label: "down1", Addr: "10.0.0.2:8000", State: StateDown, Detail: "status 500 from /health/",
						LastCheck: &Check{At: now.Add(-time.Second), OK: false, Reason: "status 500 from /health/"}},
					{Name: "drain1", Label: "drain1", Addr: "10.0.0.3:8000", State: StateDraining, Detail: "until undrained", Draining: true},
					{Name: "cfgdrain", Label: "cfgdrain", Addr: "10.0.0.4:8000", State: StateDraining, Detail: "drained by the configuration", Draining: true, DrainedByConfig: true},
					{Name: "slow1", Label: "slow1", Addr: "10.0.0.5:8000", State: StateSlowStart, Detail: "until 12:00:30Z"},
					{Name: "spare", Label: "spare", Addr: "10.0.0.6:8000", State: StateBackup, Backup: true},
					{Name: "multi", Label: "multi@10.0.0.7:8000", Addr: "10.0.0.7:8000", State: StateUp},
				},
			}}
		},
	}
	certs := certList{
		{Names: []string{"app.example", "www.app.example"}, Source: "acme", Issuer: "R11", NotAfter: t0.Add(60 * 24 * time.Hour), RenewAt: t0.Add(30 * 24 * time.Hour)},
		{Names: []string{"new.example"}, Source: "acme"},
		{Names: []string{"static.example"}, Source: "file", File: "/etc/ssl/static.pem", Issuer: "Example CA", NotAfter: t0.Add(90 * 24 * time.Hour)},
		{Names: []string{"localhost"}, Source: "self-signed", Issuer: "localhost", NotAfter: t0.Add(365 * 24 * time.Hour), RenewAt: t0.Add(335 * 24 * time.Hour)},
	}
	bans := banList{
		{Addr: "203.0.113.7", Reason: "rate limit", Since: t0.Add(-5 * time.Minute), Until: t0.Add(55 * time.Minute)},
		{Addr: "2001:db8:aa::/48", Reason: "<script>alert(1)</script>", Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)},
	}
	return src, certs, bans
}

func newTestPage(src Source, certs CertLister, bans BanLister) *Page {
	now := t0
	return New(Options{Version: "v1.2.3", Source: src, Certs: certs, Bans: bans, CSRFToken: "csrf-token-value", Now: func() time.Time { return now }})
}

// parse parses rendered HTML and fails on anything x/net/html cannot read.
func parse(t *testing.T, b []byte) *html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// find returns the elements for which match holds, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func byAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, ok := attr(n, key); return ok && v == val }
}

func byClass(class string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		v, _ := attr(n, "class")
		for _, c := range strings.Fields(v) {
			if c == class {
				return true
			}
		}
		return false
	}
}

// row matches the table row of a server by its label.
func row(label string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == "tr" && byAttr("data-server", label)(n) }
}

// text is the visible text under n (no script or style), one space
// between elements.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style"):
			return
		case n.Type == html.ElementNode:
			b.WriteByte(' ') // cells are words apart
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// TestRenderEveryState renders a server in each state and checks each
// row: its state class and text, its detail, its action button.
func TestRenderEveryState(t *testing.T) {
	src, certs, bans := everyState()
	p := newTestPage(src, certs, bans)
	var buf bytes.Buffer
	if err := p.Render(&buf, p.Snapshot(), "nonce123"); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	for _, c := range []struct {
		server, class, state, detail, button string
	}{
		{"up1", "st-up", "up", "", "Drain"},
		{"down1", "st-down", "down", "status 500 from /health/", "Drain"},
		{"drain1", "st-draining", "draining", "until undrained", "Undrain"},
		{"cfgdrain", "st-draining", "draining", "drained by the configuration", ""},
		{"slow1", "st-slow-start", "slow start", "until 12:00:30Z", "Drain"},
		{"spare", "st-backup", "backup", "", "Drain"},
		{"multi@10.0.0.7:8000", "st-up", "up", "", "Drain"},
	} {
		rows := find(doc, row(c.server))
		if len(rows) != 1 {
			t.Errorf("server %s: %d rows, want 1", c.server, len(rows))
			continue
		}
		row := rows[0]
		if !byClass(c.class)(row) {
			v, _ := attr(row, "class")
			t.Errorf("server %s: row class %q, want %s", c.server, v, c.class)
		}
		if st := find(row, byClass("state")); len(st) != 1 || text(st[0]) != c.state {
			t.Errorf("server %s: state cell %q, want %q", c.server, text(row), c.state)
		}
		if c.detail != "" && !strings.Contains(text(row), c.detail) {
			t.Errorf("server %s: row %q lacks detail %q", c.server, text(row), c.detail)
		}
		btns := find(row, func(n *html.Node) bool { return n.Data == "button" })
		switch {
		case c.button == "" && len(btns) != 0:
			t.Errorf("server %s: has a button %q, want none (drained by the configuration)", c.server, text(btns[0]))
		case c.button != "" && (len(btns) != 1 || text(btns[0]) != c.button):
			t.Errorf("server %s: buttons %d, want one %q", c.server, len(btns), c.button)
		case c.button != "":
			up, _ := attr(btns[0], "data-upstream")
			srv, _ := attr(btns[0], "data-server")
			if up != "app" || (srv != c.server && c.server != "multi@10.0.0.7:8000") || (c.server == "multi@10.0.0.7:8000" && srv != "multi") {
				t.Errorf("server %s: button targets %s/%s", c.server, up, srv)
			}
		}
	}
	up1 := text(find(doc, row("up1"))[0])
	for _, want := range []string{"10.0.0.1:8000", "pass", "2 s ago", "status 200"} {
		if !strings.Contains(up1, want) {
			t.Errorf("up1 row %q lacks %q", up1, want)
		}
	}
	if got := text(find(doc, row("spare"))[0]); !strings.Contains(got, "spare 10.0.0.6:8000 backup") {
		t.Errorf("backup server row %q lacks its backup tag", got)
	}
	down := text(find(doc, row("down1"))[0])
	if !strings.Contains(down, "fail 1 s ago") {
		t.Errorf("down1 row %q: want its failed check", down)
	}
	// The first snapshot has no earlier sample: rates are unknown.
	if !strings.Contains(up1, "3 1 2 – – – –") {
		t.Errorf("up1 row %q: want in flight 3, queue 1, 2 WebSockets, then unknown rates", up1)
	}

	page := text(doc)
	for _, want := range []string{
		"version v1.2.3",
		"Configuration abababababab from /etc/gatehouse/gatehouse.toml, loaded 2026-03-04 11:00:00Z (1 h ago)",
		"Last reload 2026-03-04 11:59:00Z failed; the configuration above is still serving: gatehouse.toml:7: upstreams.app.servers: must not be empty",
		"round_robin · health check GET /health/ every 2s",
		"app.example, www.app.example acme R11 2026-05-03 12:00:00Z (in 60 d) 2026-04-03 12:00:00Z (in 30 d)",
		"new.example acme — not obtained yet —",
		"static.example file /etc/ssl/static.pem Example CA 2026-06-02 12:00:00Z (in 90 d) when the file changes",
		"localhost self-signed localhost",
		"2 active bans; the latest:",
		"203.0.113.7 rate limit 2026-03-04 11:55:00Z 2026-03-04 12:55:00Z (in 55 min) Lift",
		"/ws/ app yes / app no",
		"static static.example · TLS files Route Upstream WebSocket / — no",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q\npage text: %s", want, page)
		}
	}
	// The ban reason with markup is text, not markup.
	if n := len(find(doc, func(n *html.Node) bool { return n.Data == "script" })); n != 1 {
		t.Errorf("%d script elements, want 1 (a ban reason became markup?)", n)
	}
	if !strings.Contains(page, "<script>alert(1)</script>") {
		t.Error("the ban reason is not shown as text")
	}
	for _, b := range find(doc, byAttr("data-action", "unban")) {
		if a, _ := attr(b, "data-addr"); a != "203.0.113.7" && a != "2001:db8:aa::/48" {
			t.Errorf("Lift button for %q", a)
		}
	}
	// The CSRF token is embedded for the script; the token bar is hidden
	// without an admin token.
	if body := find(doc, func(n *html.Node) bool { return n.Data == "body" }); len(body) != 1 {
		t.Fatal("no body")
	} else if v, _ := attr(body[0], "data-csrf"); v != "csrf-token-value" {
		t.Errorf("body data-csrf = %q", v)
	}
	if _, hidden := attr(find(doc, byAttr("id", "auth"))[0], "hidden"); !hidden {
		t.Error("admin token field shown without a token configured")
	}
}

// TestRenderEmpty: a page with nothing configured says so for each
// section, and shows the token field when a token is set.
func TestRenderEmpty(t *testing.T) {
	src := &fakeSource{upstreams: func(time.Time) []Upstream { return nil }, token: true,
		reload: Reload{Hash: "0123456789abcdef", LoadedAt: t0, LastAttempt: t0, LastOK: true}}
	p := newTestPage(src, nil, nil)
	var buf bytes.Buffer
	if err := p.Render(&buf, p.Snapshot(), "n"); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, buf.Bytes())
	page := text(doc)
	for _, want := range []string{"No upstreams.", "No certificates (no HTTPS site).", "Bans are off ([ban] enabled = false).", "No sites.",
		"Configuration 0123456789ab (embedded)", "Last reload 2026-03-04 12:00:00Z: ok."} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q: %s", want, page)
		}
	}
	if _, hidden := attr(find(doc, byAttr("id", "auth"))[0], "hidden"); hidden {
		t.Error("admin token field hidden with a token configured")
	}
}

// TestServeHTML: the page is one self-contained response of a few KiB:
// its style and script are inline and carry the nonce the CSP names,
// nothing is loaded from elsewhere, and it may not be framed.
func TestServeHTML(t *testing.T) {
	src, certs, bans := everyState()
	p := newTestPage(src, certs, bans)
	rec := httptest.NewRecorder()
	p.ServeHTML(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.Bytes()
	if len(body) > 32<<10 {
		t.Errorf("page is %d bytes, want a few KiB (at most 32 KiB with this data)", len(body))
	}
	csp := rec.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9+/]+)'`).FindStringSubmatch(csp)
	if m == nil || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "style-src 'nonce-"+m[1]+"'") {
		t.Fatalf("Content-Security-Policy %q: want default-src 'none', nonces, frame-ancestors 'none'", csp)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "same-origin"} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	doc := parse(t, body)
	for _, tag := range []string{"script", "style"} {
		els := find(doc, func(n *html.Node) bool { return n.Data == tag })
		if len(els) != 1 {
			t.Fatalf("%d %s elements, want 1", len(els), tag)
		}
		if n, _ := attr(els[0], "nonce"); n != m[1] {
			t.Errorf("%s nonce %q, CSP nonce %q", tag, n, m[1])
		}
		if _, ok := attr(els[0], "src"); ok {
			t.Errorf("%s loads a file", tag)
		}
	}
	if ext := find(doc, func(n *html.Node) bool { _, src := attr(n, "src"); _, href := attr(n, "href"); return src || href }); len(ext) > 0 {
		t.Errorf("%d elements with src or href, want none (no external assets)", len(ext))
	}
	rec2 := httptest.NewRecorder()
	p.ServeHTML(rec2, httptest.NewRequest("GET", "/", nil))
	if rec2.Header().Get("Content-Security-Policy") == csp {
		t.Error("two responses share a nonce")
	}
}

// TestServeJSON: the JSON has every section; empty lists are [] (the
// script does not check for null), and bans are null when off.
func TestServeJSON(t *testing.T) {
	src, certs, bans := everyState()
	p := newTestPage(src, certs, bans)
	rec := httptest.NewRecorder()
	p.ServeJSON(rec, httptest.NewRequest("GET", "/status.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /status.json: %d %v", rec.Code, rec.Header())
	}
	var s struct {
		Version   string
		Now       time.Time
		Reload    struct{ Hash, Last_error string }
		Upstreams []struct {
			Name    string
			Health  *struct{ Interval string }
			Servers []struct {
				Label, State, Detail string
				Backup, Draining     bool
				In_flight            int64
				Last_check           *struct{ OK bool }
			}
		}
		Certificates []struct{ Source string }
		Bans         *struct {
			Count  int
			Latest []struct{ Addr, Reason string }
		}
		Sites []struct{ Routes []struct{ Path string } }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != "v1.2.3" || !s.Now.Equal(t0) || s.Reload.Last_error == "" || len(s.Upstreams) != 1 || s.Upstreams[0].Health.Interval != "2s" {
		t.Errorf("JSON head: %+v", s)
	}
	want := map[string]string{"up1": "up", "down1": "down", "drain1": "draining", "cfgdrain": "draining", "slow1": "slow start", "spare": "backup", "multi@10.0.0.7:8000": "up"}
	for _, sv := range s.Upstreams[0].Servers {
		if want[sv.Label] != sv.State {
			t.Errorf("server %s state %q, want %q", sv.Label, sv.State, want[sv.Label])
		}
		delete(want, sv.Label)
	}
	if len(want) != 0 {
		t.Errorf("servers missing from the JSON: %v", want)
	}
	if len(s.Certificates) != 4 || s.Bans == nil || s.Bans.Count != 2 || s.Bans.Latest[1].Reason != "<script>alert(1)</script>" || len(s.Sites) != 2 {
		t.Errorf("JSON sections: %+v", s)
	}

	empty := newTestPage(&fakeSource{upstreams: func(time.Time) []Upstream { return nil }}, nil, nil)
	rec = httptest.NewRecorder()
	empty.ServeJSON(rec, httptest.NewRequest("GET", "/status.json", nil))
	for _, want := range []string{`"upstreams":[]`, `"certificates":[]`, `"sites":[]`, `"bans":null`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("empty JSON lacks %s: %s", want, rec.Body.String())
		}
	}
	// Bans on but none: latest is [].
	noBans := newTestPage(&fakeSource{upstreams: func(time.Time) []Upstream { return nil }}, nil, banList{})
	rec = httptest.NewRecorder()
	noBans.ServeJSON(rec, httptest.NewRequest("GET", "/status.json", nil))
	if !strings.Contains(rec.Body.String(), `"bans":{"count":0,"latest":[]}`) {
		t.Errorf("JSON with no bans: %s", rec.Body.String())
	}
}

// TestBansCapped: the page lists at most MaxBans bans but counts all.
func TestBansCapped(t *testing.T) {
	var bans banList
	for i := range 30 {
		bans = append(bans, Ban{Addr: "192.0.2." + string(rune('0'+i%10)), Reason: "x"})
	}
	p := New(Options{Source: &fakeSource{upstreams: func(time.Time) []Upstream { return nil }}, Bans: bans})
	s := p.Snapshot()
	if s.Bans.Count != 30 || len(s.Bans.Latest) != DefaultMaxBans {
		t.Errorf("bans: count %d, listed %d; want 30 and %d", s.Bans.Count, len(s.Bans.Latest), DefaultMaxBans)
	}
}

var _ http.Handler = http.HandlerFunc((*Page)(nil).ServeHTML)
