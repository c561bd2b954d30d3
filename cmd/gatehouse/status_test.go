package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/internal/statuspage"
)

// TestServerViewStates: each balancer state maps to the page's state and
// says why, with a real pool driven through its own API.
func TestServerViewStates(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	clk := now
	srv := func(name string, port int) balancer.Server {
		return balancer.Server{Name: name, Host: "127.0.0.1", Port: port, Weight: 1}
	}
	o := balancer.Options{
		Name: "app", MaxFails: 1, FailTimeout: 10 * time.Second, SlowStart: time.Minute, Rise: 1, Fall: 1,
		Now: func() time.Time { return clk },
		Servers: []balancer.Server{srv("up", 1), srv("down", 2), srv("starting", 3), srv("passive", 4),
			srv("drained", 5), srv("sticky", 6), srv("cfgdrain", 7), srv("slow", 8), srv("spare", 9)},
	}
	o.Servers[6].Drain = true
	o.Servers[8].Backup = true
	p, err := balancer.New(balancer.NewRegistry(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := map[string]*balancer.Backend{}
	for _, be := range p.Backends() {
		b[be.Name()] = be
	}
	b["up"].ReportCheck(true, "status 200")
	b["down"].ReportCheck(false, "status 503 from /health/")
	b["starting"].SetUp(false, "test")
	b["passive"].ReportFailure(now)
	if err := p.Drain("drained", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Drain("sticky", now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	b["slow"].SetUp(false, "test")
	clk = now.Add(-10 * time.Second)
	b["slow"].SetUp(true, "test") // up 10 s ago: 50 s of slow start left

	for _, c := range []struct{ name, state, detail string }{
		{"up", statuspage.StateUp, ""},
		{"down", statuspage.StateDown, "failing its health check"},
		{"starting", statuspage.StateDown, "waiting for its first passing health check"},
		{"passive", statuspage.StateDown, "max_fails reached; out until 12:00:10Z"},
		{"drained", statuspage.StateDraining, "until undrained"},
		{"sticky", statuspage.StateDraining, "sticky clients until 12:00:30Z"},
		{"cfgdrain", statuspage.StateDraining, "drain = true in the configuration"},
		{"slow", statuspage.StateSlowStart, "full weight at 12:00:50Z"},
		{"spare", statuspage.StateBackup, "serves when no primary server can"},
	} {
		v := serverView(b[c.name], now, c.name == "cfgdrain")
		if v.State != c.state || v.Detail != c.detail {
			t.Errorf("%s: state %q (%s), want %q (%s)", c.name, v.State, v.Detail, c.state, c.detail)
		}
		if (c.state == statuspage.StateDraining) != v.Draining {
			t.Errorf("%s: Draining = %v", c.name, v.Draining)
		}
	}
	if v := serverView(b["up"], now, false); v.LastCheck == nil || !v.LastCheck.OK || v.LastCheck.Reason != "status 200" {
		t.Errorf("up: last check %+v", v.LastCheck)
	}
	if v := serverView(b["spare"], now, false); v.LastCheck != nil {
		t.Errorf("never checked: last check %+v, want none", v.LastCheck)
	}
}

// startFileDaemon runs the daemon in-process on the config file path
// until the test ends.
func startFileDaemon(t *testing.T, path string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *daemon, 1)
	exited := make(chan int, 1)
	var logs strings.Builder
	lw := &lockedWriter{w: &logs}
	go func() {
		exited <- serve(ctx, source{path: path}, lw, func(d *daemon) { started <- d })
	}()
	select {
	case d := <-started:
		var once sync.Once
		t.Cleanup(func() {
			once.Do(func() {
				cancel()
				if code := <-exited; code != 0 {
					t.Errorf("daemon exited %d", code)
				}
			})
		})
		return d
	case code := <-exited:
		cancel()
		t.Fatalf("daemon exited %d before serving: %s", code, logs.String())
		return nil
	}
}

func adminGet(t *testing.T, d *daemon, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

type statusJSON struct {
	Reload struct {
		Path, Hash, Last_error string
		Last_ok                bool
	}
	Upstreams []struct {
		Name    string
		Servers []struct{ Label, State string }
	}
	Sites []struct{ Name string }
	Bans  *struct{ Count int }
}

func getStatus(t *testing.T, d *daemon) statusJSON {
	t.Helper()
	resp, body := adminGet(t, d, "/status.json")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /status.json: %d %s", resp.StatusCode, body)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("GET /status.json: %v: %s", err, body)
	}
	return s
}

func sha(b string) string {
	h := sha256.Sum256([]byte(b))
	return hex.EncodeToString(h[:])
}

// TestStatusPageDaemon: the daemon serves the page at /, its JSON and the
// CSRF token; the JSON names the serving config by the hash of its file,
// and a failed reload is shown with its error while the old hash stays.
func TestStatusPageDaemon(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.toml")
	cfg := banTestConfig(filepath.Join(dir, "state"), be.Listener.Addr().String())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startFileDaemon(t, path)

	resp, page := adminGet(t, d, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if len(d.csrf) < 20 || !strings.Contains(page, `data-csrf="`+d.csrf+`"`) {
		t.Errorf("GET /: the page does not embed the process's CSRF token %q", d.csrf)
	}
	if _, tok := adminGet(t, d, "/csrf-token"); tok != d.csrf {
		t.Errorf("GET /csrf-token = %q, want %q", tok, d.csrf)
	}
	if resp, _ := adminGet(t, d, "/nothing-here"); resp.StatusCode != 404 {
		t.Errorf("GET /nothing-here: %d, want 404 (only / itself is the page)", resp.StatusCode)
	}

	s := getStatus(t, d)
	if s.Reload.Hash != sha(cfg) || s.Reload.Path != path || !s.Reload.Last_ok {
		t.Errorf("reload state %+v, want hash %s of %s, ok", s.Reload, sha(cfg), path)
	}
	if len(s.Upstreams) != 1 || s.Upstreams[0].Name != "app" || len(s.Upstreams[0].Servers) != 1 || s.Upstreams[0].Servers[0].State != "up" {
		t.Errorf("upstreams %+v, want app with b1 up", s.Upstreams)
	}
	if len(s.Sites) != 1 || s.Bans == nil || s.Bans.Count != 0 {
		t.Errorf("sites %+v, bans %+v", s.Sites, s.Bans)
	}

	// A bad reload: shown, the serving hash stays.
	if err := os.WriteFile(path, []byte(cfg+"\n[upstreams.app.nonsense]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload()
	s = getStatus(t, d)
	if s.Reload.Last_ok || s.Reload.Last_error == "" || s.Reload.Hash != sha(cfg) {
		t.Errorf("after a bad reload: %+v, want the failure and the old hash", s.Reload)
	}
	// A good one: the new hash.
	cfg2 := cfg + "\n# edited\n"
	if err := os.WriteFile(path, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload()
	if s = getStatus(t, d); !s.Reload.Last_ok || s.Reload.Hash != sha(cfg2) {
		t.Errorf("after a good reload: %+v, want ok and hash %s", s.Reload, sha(cfg2))
	}

	// The page's action: same origin with the CSRF token drains; without
	// the token it is refused.
	drain := func(csrf string) int {
		req, _ := http.NewRequest("POST", "http://"+d.adminAddr+"/upstreams/app/servers/b1/drain", strings.NewReader("{}"))
		req.Header.Set("Origin", "http://"+d.adminAddr)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := drain(""); code != http.StatusForbidden {
		t.Errorf("same-origin drain without the CSRF token: %d, want 403", code)
	}
	if code := drain("not-" + d.csrf); code != http.StatusForbidden {
		t.Errorf("same-origin drain with a wrong CSRF token: %d, want 403", code)
	}
	if s = getStatus(t, d); s.Upstreams[0].Servers[0].State != "up" {
		t.Fatalf("b1 is %s after refused drains", s.Upstreams[0].Servers[0].State)
	}
	if code := drain(d.csrf); code != 200 {
		t.Errorf("same-origin drain with the CSRF token: %d, want 200", code)
	}
	if s = getStatus(t, d); s.Upstreams[0].Servers[0].State != "draining" {
		t.Errorf("b1 is %s after the page's drain, want draining", s.Upstreams[0].Servers[0].State)
	}
}

// TestConfigHashMatchesSha256sum: the hash is what sha256sum prints for
// the file, so an operator can compare it with the file on disk.
func TestConfigHashMatchesSha256sum(t *testing.T) {
	// printf 'a = 1\n' | sha256sum
	const want = "cb78bd8a17f7b751fe0d4663366dcbc257204033ef7ddd64b1f2969573b5b2e2"
	if got := configHash([]byte("a = 1\n")); got != want {
		t.Errorf("configHash = %s, want %s", got, want)
	}
}
