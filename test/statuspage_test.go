package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// This file holds the real-browser test of the status page (issue 18
// items 1 and 2): headless Chromium against the gatehouse binary.

// statusHealth is the health check of the browser test: every second,
// one failure takes a server down.
const statusHealth = `
[upstreams.app.health]
path = "/health/"
interval = "1s"
timeout = "500ms"
fall = 1
rise = 1
`

// statusConfig serves app.test over plain HTTP (the default site) and
// localhost over HTTPS with the self-signed certificate, both from
// upstream app: servers ss, a backup server, and statusHealth; bans are
// on.
func statusConfig(ss []*lbServer, backup *lbServer) string {
	servers := strings.TrimSuffix(lbServers(ss), "]\n") +
		fmt.Sprintf(", { name = %q, address = %q, backup = true }]\n", backup.name, backup.addr)
	return baseListeners + `
[ban]
enabled = true

[sites.app]
hosts = ["app.test"]
default = true
tls = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[sites.dev]
hosts = ["localhost"]
tls = "self_signed"

[[sites.dev.routes]]
path = "/ws/"
upstream = "app"
websocket = { enabled = true }

[[sites.dev.routes]]
path = "/"
upstream = "app"

[upstreams.app]
` + servers + statusHealth
}

// statusPollSlack bounds how long after the health check's verdict the
// page may show it: the page polls every 2 s; the rest is room for a
// loaded machine. It only bounds a failing test.
const statusPollSlack = 2*time.Second + 10*time.Second

// newBrowser starts headless Chromium with a fresh profile and no
// background traffic (this machine has no network), and returns a
// chromedp context for one tab; the browser is stopped at cleanup. It
// skips the test when Chromium is not installed (fails with
// GATEHOUSE_REQUIRE_TOOLS=1).
func newBrowser(t *testing.T) (context.Context, *browserLog) {
	t.Helper()
	exe := requireTool(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		// Background tabs must keep their timers: the page polls.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	bl := &browserLog{}
	if err := chromedp.Listen(ctx, bl.record); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx, bl
}

// browserLog keeps the page's script exceptions and security messages
// (a Content-Security-Policy refusal, for one).
type browserLog struct {
	mu     sync.Mutex
	errors []string
}

func (b *browserLog) record(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if e.Entry.Source != log.EntrySourceSecurity && !strings.Contains(e.Entry.Text, "Content Security Policy") {
			return
		}
		msg = "log: " + e.Entry.Text
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

func (b *browserLog) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.errors
	b.errors = nil
	return out
}

// run runs the browser steps with a bound (the browser context itself
// must not carry a timeout: it would end the browser).
func run(t *testing.T, ctx context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// stateSel is the CSS selector of the state badge of server s.
func stateSel(s string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`tr.server[data-server=%q] .state`, s))
}

// waitState polls the page's DOM (the page is not reloaded) until server
// s shows state, and returns how long that took.
func waitState(t *testing.T, ctx context.Context, s, state string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	expr := fmt.Sprintf(`(function(){ var e = document.querySelector('tr.server[data-server=%q] .state'); return e !== null && e.textContent === %q; })()`, s, state)
	if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("upstreams").innerText`))
		t.Fatalf("server %s did not show %q within %v: %v\nupstreams on the page:\n%s", s, state, timeout, err, got)
	}
	return time.Since(start)
}

// saveScreenshot writes the page's screenshot as a test artefact: to
// $GATEHOUSE_ARTIFACTS when set, else to the test's artefact directory
// (kept with go test -artifacts).
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	dir := os.Getenv("GATEHOUSE_ARTIFACTS")
	if dir == "" {
		dir = t.ArtifactDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
}

// crossSiteServer serves, on another site than the admin listener (a
// different address, 127.0.0.2 where it can bind), the attacker's page:
// an HTML form that posts itself to target when loaded, in the encoding
// enctype, and a no-cors fetch of the same.
func crossSiteServer(t *testing.T, target, enctype string) *httptest.Server {
	t.Helper()
	page := fmt.Sprintf(`<!doctype html><html><body>
<form method="POST" action=%q enctype=%q><input type="hidden" name="x" value="1"></form>
<script>
fetch(%q, {method: "POST", mode: "no-cors", body: "x", headers: {"Content-Type": "text/plain"}}).catch(function(){});
fetch(%q, {method: "POST", body: "{}", headers: {"Content-Type": "application/json", "X-CSRF-Token": "guess"}}).catch(function(){});
setTimeout(function(){ document.forms[0].submit(); }, 300);
</script></body></html>`, target, enctype, target, target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// statusServerDraining reads server name's drain state from the JSON
// the page polls.
func statusServerDraining(t *testing.T, g *gatehouse, name string) bool {
	t.Helper()
	code, body := adminDo(t, g.adminAddr, "GET", "/status.json", "", nil, "")
	if code != 200 {
		t.Fatalf("GET /status.json: %d %s", code, body)
	}
	var s struct {
		Upstreams []struct {
			Servers []struct {
				Name     string
				Draining bool
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	for _, u := range s.Upstreams {
		for _, sv := range u.Servers {
			if sv.Name == name {
				return sv.Draining
			}
		}
	}
	t.Fatalf("GET /status.json has no server %s: %s", name, body)
	return false
}

// TestStatusPageBrowser drives the status page in headless Chromium
// against the gatehouse binary with three backends and active health
// checks:
//
//   - the page lists every server as up, the script runs under the
//     page's Content-Security-Policy and keeps the page live;
//   - a backend killed by the test turns "down" on the page within the
//     health interval plus the page's poll period (plus slack), without
//     a reload of the page;
//   - Drain on the page drains a server, and real requests then go only
//     to the one left;
//   - Lift on the page lifts a ban;
//   - a page on another site that posts a form (and no-cors and
//     preflighted fetches) to the drain endpoint is refused and drains
//     nothing.
//
// A screenshot of the page is saved as a test artefact.
func TestStatusPageBrowser(t *testing.T) {
	t.Parallel()
	ctx, blog := newBrowser(t)
	ss := lbThree(t)
	spare := newLBServer(t, "spare")
	g := startGatehouse(t, statusConfig(ss, spare))
	admin := "http://" + g.adminAddr
	c := lbClient(g)

	// A ban to lift from the page.
	resp, err := adminPost(g.adminAddr, "/bans?addr=192.0.2.7&duration=1h&reason=test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /bans: %s", resp.Status)
	}

	run(t, ctx, 60*time.Second, "open the status page",
		chromedp.Navigate(admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr.server[data-server="s3"]`)),
		chromedp.Evaluate[chromedp.Void](`window.gatehouseNotReloaded = true`),
	)
	for _, s := range []string{"s1", "s2", "s3"} {
		waitState(t, ctx, s, "up", 10*time.Second)
	}
	waitState(t, ctx, "spare", "backup", 10*time.Second)
	if certs, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("certificates"))); err != nil ||
		!strings.Contains(certs, "localhost") || !strings.Contains(certs, "self-signed") {
		t.Errorf("certificates on the page: %q (%v), want the self-signed one for localhost", certs, err)
	}
	// The script runs (its first poll rewrites the "as of" line).
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("live").textContent.indexOf("live") === 0`,
		chromedp.WithPollingTimeout(statusPollSlack))); err != nil {
		t.Fatalf("the page's script never updated the page: %v (browser: %q)", err, blog.take())
	}

	// Traffic goes to every server.
	for range 9 {
		lbGet(t, c, g, "/")
	}
	for _, s := range ss {
		if s.hits.Load() == 0 {
			t.Fatalf("%s got no request of 9 (round robin)", s.name)
		}
	}

	// Kill s1: the page shows it down without being reloaded.
	ss[0].stop()
	took := waitState(t, ctx, "s1", "down", time.Second+500*time.Millisecond+statusPollSlack)
	t.Logf("s1 shown down %v after it was killed (health interval 1s, fall 1, page poll 2s)", took)
	if reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.gatehouseNotReloaded !== true`)); err != nil || reloaded {
		t.Fatalf("the page was reloaded (%v)", err)
	}
	detail, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr.server[data-server="s1"]`)))
	if err != nil || !strings.Contains(detail, "health check") || !strings.Contains(detail, "fail") {
		t.Errorf("s1's row %q (%v): want the failed health check", detail, err)
	}

	// Drain s2 from the page.
	run(t, ctx, 30*time.Second, "click Drain on s2",
		chromedp.Click(chromedp.CSS(`tr.server[data-server="s2"] button[data-action="drain"]`)))
	waitState(t, ctx, "s2", "draining", statusPollSlack)
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message"))); err != nil || msg != "Done: drain app/s2." {
		t.Errorf("message after Drain: %q (%v)", msg, err)
	}
	if !statusServerDraining(t, g, "s2") {
		t.Fatal("the page says s2 is draining, the daemon does not")
	}
	// Traffic moves away: s1 is down, s2 draining, s3 gets everything.
	h2, h3 := ss[1].hits.Load(), ss[2].hits.Load()
	for range 20 {
		if res := lbGet(t, c, g, "/"); res.status != 200 || res.backend != "s3" {
			t.Fatalf("request after draining s2: %d from %q, want 200 from s3", res.status, res.backend)
		}
	}
	if d2, d3 := ss[1].hits.Load()-h2, ss[2].hits.Load()-h3; d2 != 0 || d3 != 20 {
		t.Errorf("after the drain: s2 got %d, s3 %d of 20 requests; want 0 and 20", d2, d3)
	}

	saveScreenshot(t, ctx, "status-page.png")

	// Lift the ban from the page.
	run(t, ctx, 30*time.Second, "click Lift on 192.0.2.7/32",
		chromedp.WaitVisible(chromedp.CSS(`tr.ban[data-addr="192.0.2.7/32"] button`)),
		chromedp.Click(chromedp.CSS(`tr.ban[data-addr="192.0.2.7/32"] button`)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('tr.ban[data-addr="192.0.2.7/32"]') === null`,
		chromedp.WithPollingTimeout(statusPollSlack))); err != nil {
		t.Fatalf("the ban is still listed after Lift: %v", err)
	}
	if _, body := adminDo(t, g.adminAddr, "GET", "/bans", "", nil, ""); strings.Contains(body, "192.0.2.7") {
		t.Errorf("GET /bans after Lift: %s", body)
	}
	if errs := blog.take(); len(errs) > 0 {
		t.Errorf("the status page logged errors in the browser: %q", errs)
	}

	// The attack: a page on another site posts a form (and no-cors and
	// preflighted fetches) to the drain endpoint of s3, in each encoding a
	// form can have.
	target := admin + "/upstreams/app/servers/s3/drain"
	for _, enctype := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data"} {
		refused := g.countLog("admin request refused")
		evil := crossSiteServer(t, target, enctype)
		run(t, ctx, 30*time.Second, "load the cross-site page ("+enctype+")", chromedp.Navigate(evil.URL+"/"))
		// The form navigates the tab to the admin listener's answer.
		waitUntil(t, 30*time.Second, "the cross-site form ("+enctype+") submitted", func() bool {
			// Evaluate, not Poll: the navigation destroys the page a poll
			// would run in.
			href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
			return err == nil && href == target
		})
		answer, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if !strings.Contains(answer, "refused") {
			t.Errorf("the admin listener's answer to the cross-site form (%s): %q, want a refusal", enctype, answer)
		}
		// The form and the no-cors fetch reach the listener and are
		// refused there; the fetch with X-CSRF-Token needs a preflight,
		// which is refused too, so the browser never sends the POST.
		waitUntil(t, 10*time.Second, "the admin listener's refusals of the cross-site requests", func() bool {
			return g.countLog("admin request refused") >= refused+3
		})
		if statusServerDraining(t, g, "s3") {
			t.Fatalf("s3 is draining after a cross-site form post (%s)", enctype)
		}
	}
	if !strings.Contains(g.logs.String(), `"origin":"http://127.0.0.`) {
		t.Error("the refusals do not log the cross-site Origin")
	}
	if res := lbGet(t, c, g, "/"); res.backend != "s3" {
		t.Errorf("after the cross-site posts a request went to %q, want s3 still serving", res.backend)
	}
}

// TestStatusPageBrowserToken: with listeners.admin.token set, the page
// asks for the token; its buttons fail with 401 without it and work once
// it is typed in (sent as a bearer token, never stored by the page). And
// the page polls only while visible.
func TestStatusPageBrowserToken(t *testing.T) {
	t.Parallel()
	ctx, blog := newBrowser(t)
	ss := []*lbServer{newLBServer(t, "s1"), newLBServer(t, "s2")}
	g := startGatehouse(t, strings.Replace(lbConfig(lbServers(ss)), "[listeners.admin]\n", "[listeners.admin]\ntoken = \"s3cret\"\n", 1))
	drain := chromedp.CSS(`tr.server[data-server="s1"] button[data-action="drain"]`)
	run(t, ctx, 60*time.Second, "open the status page",
		chromedp.Navigate("http://"+g.adminAddr+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Click(drain))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("message").textContent.indexOf("HTTP 401") >= 0`,
		chromedp.WithPollingTimeout(statusPollSlack))); err != nil {
		msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message")))
		t.Fatalf("Drain without the token: message %q (%v), want HTTP 401", msg, err)
	}
	if statusServerDraining(t, g, "s1") {
		t.Fatal("s1 drained from the page without the admin token")
	}
	run(t, ctx, 30*time.Second, "type the token, click Drain",
		chromedp.SendKeys(chromedp.ID("token"), "s3cret"),
		chromedp.Click(drain))
	waitState(t, ctx, "s1", "draining", statusPollSlack)
	if !statusServerDraining(t, g, "s1") {
		t.Error("the page shows s1 draining, the daemon does not")
	}

	// A hidden page does not poll (the cost is bounded by the people
	// looking); shown again, it polls at once. The polls are counted by
	// the browser's resource timing entries.
	const polls = `performance.getEntriesByType("resource").filter(function (e) { return e.name.endsWith("/status.json"); }).length`
	visibility := func(state string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`Object.defineProperty(document, "visibilityState", {configurable: true, get: function () { return %q; }});
document.dispatchEvent(new Event("visibilitychange"))`, state))
	}
	run(t, ctx, 10*time.Second, "hide the page", visibility("hidden"))
	// Let a poll that was under way finish, then count: the absence of
	// polls can only be seen over time; three poll periods.
	time.Sleep(2500 * time.Millisecond)
	before, err := chromedp.Run(ctx, chromedp.Evaluate[int](polls))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * 2 * time.Second)
	if after, err := chromedp.Run(ctx, chromedp.Evaluate[int](polls)); err != nil || after != before {
		t.Errorf("the hidden page polled: %d polls before, %d after three periods (%v)", before, after, err)
	}
	run(t, ctx, 10*time.Second, "show the page", visibility("visible"))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(%s) > %d`, polls, before),
		chromedp.WithPollingTimeout(time.Second))); err != nil {
		t.Errorf("the page shown again did not poll within a second: %v", err)
	}
	if errs := blog.take(); len(errs) > 0 {
		t.Errorf("the status page logged errors in the browser: %q", errs)
	}
}
