package test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The deployment kit (deploy/, examples/senex.toml) checked against the
// tools that consume it and against the binary it deploys.

// deployUnitPath is the systemd unit under test.
func deployUnitPath() string {
	return filepath.Join(moduleRoot, "deploy", "systemd", "gatehouse.service")
}

// deployUnitDirectives returns the unit's directives in order, as
// key → values (a key may repeat).
func deployUnitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(deployUnitPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not KEY=VALUE", line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var exposureRe = regexp.MustCompile(`Overall exposure level for gatehouse\.service: ([0-9]+(?:\.[0-9]+)?)`)

// TestSystemdUnitSecurity: systemd-analyze rates the unit's sandbox at
// exposure <= 2.0, verify finds nothing wrong with it, and the directives
// the daemon depends on are there (check before start and reload, SIGHUP,
// Type=notify, the state directory, and no PrivateUsers=, which would make
// CAP_NET_BIND_SERVICE useless for :80 and :443).
func TestSystemdUnitSecurity(t *testing.T) {
	needBinary(t)
	sa := requireTool(t, "systemd-analyze", "systemd")

	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", deployUnitPath()).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Overall exposure level\" in systemd-analyze security output:\n%s", out)
	}
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if exposure > 2.0 {
		t.Errorf("exposure level %.1f, want <= 2.0:\n%s", exposure, out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", exposure)

	// verify insists that the ExecStart= binaries exist: check a copy that
	// names the binary this test run built.
	unit, err := os.ReadFile(deployUnitPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "/usr/local/bin/gatehouse ") {
		t.Fatal("unit does not run /usr/local/bin/gatehouse")
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "gatehouse.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/gatehouse ", binPath+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(sa, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Unknown keys and bad values are only warnings (exit 0): any line
	// about the unit is a failure.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "gatehouse.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}

	d := deployUnitDirectives(t)
	want := map[string]string{
		"Type":                   "notify",
		"StateDirectory":         "gatehouse",
		"StateDirectoryMode":     "0700",
		"ConfigurationDirectory": "gatehouse",
		"AmbientCapabilities":    "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":  "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":        "yes",
		"UMask":                  "0077",
		"LimitNOFILE":            "1048576",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if v, ok := d["PrivateUsers"]; ok {
		t.Errorf("PrivateUsers=%v: in a private user namespace CAP_NET_BIND_SERVICE cannot bind :80/:443", v)
	}
	start := d["ExecStart"]
	if len(start) != 1 || !strings.Contains(start[0], " run -config ") {
		t.Fatalf("ExecStart = %q, want one `gatehouse run -config FILE`", start)
	}
	cfg := start[0][strings.Index(start[0], " -config ")+len(" -config "):]
	checkCmd := "/usr/local/bin/gatehouse check -config " + cfg
	if pre := d["ExecStartPre"]; len(pre) != 1 || pre[0] != checkCmd {
		t.Errorf("ExecStartPre = %q, want %q", pre, checkCmd)
	}
	if rl := d["ExecReload"]; len(rl) != 2 || rl[0] != checkCmd || rl[1] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %q, want [%q, \"/bin/kill -HUP $MAINPID\"] (check first, then SIGHUP)", rl, checkCmd)
	}
	// The stop timeout must cover the default 30 s grace period.
	if ts := d["TimeoutStopSec"]; len(ts) != 1 {
		t.Errorf("TimeoutStopSec = %q", ts)
	} else if dur, err := time.ParseDuration(ts[0]); err != nil || dur <= 30*time.Second {
		t.Errorf("TimeoutStopSec = %s, want more than the 30s grace period", ts[0])
	}
}

// TestSenexExampleChecks: the whole reference stack as one file passes
// `gatehouse check`, and the count it reports is the reference's.
func TestSenexExampleChecks(t *testing.T) {
	needBinary(t)
	path := filepath.Join(moduleRoot, "examples", "senex.toml")
	cmd := exec.Command(binPath, "check", "-config", path)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gatehouse check %s: %v\n%s%s", path, err, stdout.String(), stderr.String())
	}
	const want = "ok: 1 site(s), 5 route(s), 1 upstream(s) with 3 server(s), 3 rate-limit zone(s)"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("check output %q, want it to contain %q", stdout.String(), want)
	}
}

// deployMetricNameRe finds metric names in PromQL: every name of ours has
// one of these prefixes, and any identifier directly before "{" is a
// selector.
var (
	deployMetricNameRe = regexp.MustCompile(`\b((?:gatehouse|process|go)_[a-z0-9_]+)\b`)
	deploySelectorRe   = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
)

func deployMetricNames(expr string) []string {
	var out []string
	for _, m := range deployMetricNameRe.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	for _, m := range deploySelectorRe.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// deployDashboardExprs returns every PromQL expression in a Grafana
// dashboard: panel targets (rows nest panels) and templating queries.
func deployDashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("%s: dashboard has no title or uid", path)
	}
	type panel struct {
		Title   string            `json:"title"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var exprs []string
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: panel: %v", path, err)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	return exprs
}

// deployExposedNames returns the metric family names and sample names in
// a text exposition.
func deployExposedNames(exposition string, into map[string]bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			into[strings.Fields(rest)[0]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			into[line[:i]] = true
		}
	}
}

// deployWSBackend answers WebSocket upgrades with an echo and everything
// else with 200.
func deployWSBackend(t *testing.T) *backend {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return newBackend(t, "web", func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			io.WriteString(w, "ok\n")
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(typ, msg) != nil {
				return
			}
		}
	})
}

// TestPrometheusRules: promtool accepts the scrape config and the rules,
// the rules' unit tests pass, and the dashboard and the rules use only
// metrics a running gatehouse really exports (after traffic that makes the
// event-only series appear: a rate-limit rejection, an upstream error, a
// WebSocket, a ban, a refused connection).
func TestPrometheusRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	dir := filepath.Join(moduleRoot, "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "gatehouse-rules.yml"},
		{"test", "rules", "gatehouse-rules.test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Names the dashboard and the rules use.
	used := map[string][]string{} // name -> where
	exprs := deployDashboardExprs(t, filepath.Join(moduleRoot, "deploy", "grafana", "gatehouse.json"))
	for _, e := range exprs {
		for _, n := range deployMetricNames(e) {
			used[n] = append(used[n], "dashboard")
		}
	}
	rules, err := os.ReadFile(filepath.Join(dir, "gatehouse-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ruleExprs int
	for _, block := range regexp.MustCompile(`(?m)^\s+expr: (\|\n(?:\s{10,}.*\n)+|.*)`).FindAllStringSubmatch(string(rules), -1) {
		ruleExprs++
		for _, n := range deployMetricNames(block[1]) {
			used[n] = append(used[n], "rules")
		}
	}
	if len(exprs) < 30 || ruleExprs < 10 {
		t.Fatalf("found %d dashboard and %d rule expressions; the parser is broken", len(exprs), ruleExprs)
	}
	// up is made by Prometheus itself, not exported.
	delete(used, "up")

	needBinary(t)
	web := deployWSBackend(t)
	closed1, closed2 := deployClosedAddr(t), deployClosedAddr(t)
	g := startGatehouse(t, baseListeners+fmt.Sprintf(`
[ban]
enabled = true
statuses = [403]

[zones.tight]
rate = "1r/m"
burst = 1

[sites.app]
hosts = ["app.test"]
tls = "self_signed"

[[sites.app.routes]]
path = "/"
upstream = "web"

[[sites.app.routes]]
path = "/limited/"
upstream = "web"
limit = ["tight"]

[[sites.app.routes]]
path = "/ws/"
upstream = "web"
websocket.enabled = true

[[sites.app.routes]]
path = "/dead/"
upstream = "dead"

[upstreams.web]
servers = [{ name = "web1", address = %q }]

[upstreams.dead]
servers = [{ name = "d1", address = %q }, { name = "d2", address = %q }]
retries = 1
`, web.addr(), closed1, closed2))

	c := insecureClient("app.test", false)
	base := "https://" + g.httpsAddr
	if code, body := get(t, c, base+"/", "app.test", nil); code != 200 {
		t.Fatalf("GET / = %d %q", code, body)
	}
	get(t, c, base+"/limited/", "app.test", nil)
	if code, _ := get(t, c, base+"/limited/", "app.test", nil); code != 429 {
		t.Errorf("second GET /limited/ = %d, want 429", code)
	}
	if code, _ := get(t, c, base+"/dead/", "app.test", nil); code < 500 {
		t.Errorf("GET /dead/ = %d, want 5xx", code)
	}
	if code, _ := get(t, c, base+"/", "other.test", nil); code != 421 {
		t.Errorf("GET / with an unknown Host = %d, want 421", code)
	}

	exposed := map[string]bool{}
	ws := deployDialWS(t, g.httpsAddr, "app.test")
	deployExposedNames(g.metrics(), exposed) // with the tunnel open
	ws.Close()
	deployWaitSeries(t, g, "gatehouse_websocket_closes_total")

	deployAdmin(t, g, "POST", "/bans?addr=192.0.2.7&duration=1h")
	deployAdmin(t, g, "POST", "/bans?addr=127.0.0.1&duration=1h")
	if conn, err := net.DialTimeout("tcp", g.httpsAddr, 5*time.Second); err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(make([]byte, 1)) // closed at accept
		conn.Close()
	}
	deployWaitSeries(t, g, "gatehouse_connections_refused_total")
	deployExposedNames(g.metrics(), exposed)

	var missing []string
	for n, where := range used {
		if !exposed[n] {
			missing = append(missing, fmt.Sprintf("%s (%s)", n, strings.Join(deployUniq(where), ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("referenced but not exported by gatehouse:\n  %s", strings.Join(missing, "\n  "))
	} else {
		t.Logf("%d metric names referenced, all exported", len(used))
	}
}

func deployUniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// deployClosedAddr is a loopback address nothing listens on.
func deployClosedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// deployDialWS opens a WebSocket through gatehouse's HTTPS listener and
// checks one echo.
func deployDialWS(t *testing.T, addr, host string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true, ServerName: host},
		HandshakeTimeout: 10 * time.Second,
		NetDial: func(network, _ string) (net.Conn, error) {
			return net.DialTimeout(network, addr, 5*time.Second)
		},
	}
	hdr := http.Header{"Origin": {"https://" + host}}
	c, resp, err := d.Dial("wss://"+host+"/ws/echo", hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("websocket dial: %v (status %d)", err, status)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "ping" {
		t.Fatalf("websocket echo: %q, %v", msg, err)
	}
	return c
}

// deployWaitSeries waits until a metric family appears in /metrics.
func deployWaitSeries(t *testing.T, g *gatehouse, name string) {
	t.Helper()
	waitUntil(t, 10*time.Second, name+" in /metrics", func() bool { return strings.Contains(g.metrics(), "\n"+name+"{") })
}

// deployAdmin sends a request to the admin listener and wants 200.
func deployAdmin(t *testing.T, g *gatehouse, method, path string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.adminAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := adminSameOrigin(req, g.adminAddr); err != nil { // tokenless state changes must be same-origin
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
}

// deployNotifySocket is a stand-in for systemd's $NOTIFY_SOCKET: it
// collects the datagrams gatehouse sends.
type deployNotifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	done chan struct{}
}

func newDeployNotifySocket(t *testing.T, dir string) *deployNotifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	// The service user must be able to send to it, as to systemd's.
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	n := &deployNotifySocket{path: path, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-n.done })
	return n
}

// has reports whether some datagram contains the line l.
func (n *deployNotifySocket) has(l string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		for _, line := range strings.Split(m, "\n") {
			if line == l {
				return true
			}
		}
	}
	return false
}

func (n *deployNotifySocket) wait(t *testing.T, l string) {
	t.Helper()
	waitUntil(t, 10*time.Second, fmt.Sprintf("%q on the notify socket", l), func() bool { return n.has(l) })
}

// TestRunsLikeTheUnit runs gatehouse the way deploy/systemd/gatehouse.service
// does: as an unprivileged user (uid/gid 65534 when the test runs as root),
// config from $CONFIGURATION_DIRECTORY (root:group 0750/0640, as the unit's
// install steps make it), state in $STATE_DIRECTORY (0700, owned by the
// user), readiness over $NOTIFY_SOCKET. The ExecStartPre check passes as
// that user, `gatehouse health` (the container HEALTHCHECK) says ready, the
// self-signed certificate lands in the state directory owned by the user,
// and SIGTERM exits 0 after STOPPING=1.
func TestRunsLikeTheUnit(t *testing.T) {
	needBinary(t)
	uid, gid := os.Getuid(), os.Getgid()
	asRoot := uid == 0
	if asRoot {
		uid, gid = 65534, 65534
	}

	// Every directory on the way must be traversable by the service user:
	// t.TempDir and TestMain's build dir are 0700.
	root := t.TempDir()
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "gatehouse")
	deployCopyFile(t, binPath, bin, 0o755)
	stateDir := filepath.Join(root, "state")
	confDir := filepath.Join(root, "etc")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(confDir, 0o750); err != nil {
		t.Fatal(err)
	}
	web := newBackend(t, "web", nil)
	cfgPath := filepath.Join(confDir, "gatehouse.toml")
	// No state_dir: $STATE_DIRECTORY must be honoured.
	cfg := fmt.Sprintf(`
grace_period = "5s"

[log]
format = "json"

[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = "127.0.0.1:0"

[listeners.admin]
address = "127.0.0.1:0"

[ban]
enabled = true

[sites.app]
hosts = ["localhost"]
tls = "self_signed"

[[sites.app.routes]]
path = "/"
upstream = "web"

[upstreams.web]
servers = [{ name = "web1", address = %q }]
`, web.addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	if asRoot {
		for _, p := range []string{confDir, cfgPath} {
			if err := os.Chown(p, 0, gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(stateDir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	notify := newDeployNotifySocket(t, root)

	env := append(os.Environ(),
		"STATE_DIRECTORY="+stateDir,
		"CONFIGURATION_DIRECTORY="+confDir,
		"NOTIFY_SOCKET="+notify.path,
	)
	asUser := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Env = env
		cmd.Dir = "/"
		if asRoot {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		}
		return cmd
	}

	// ExecStartPre.
	if out, err := asUser(exec.Command(bin, "check", "-config", cfgPath)).CombinedOutput(); err != nil {
		t.Fatalf("gatehouse check as uid %d: %v\n%s", uid, err, out)
	}

	// ExecStart.
	g := startCmd(t, root, asUser(exec.Command(bin, "run", "-config", cfgPath)))
	g.cfgPath = cfgPath
	g.waitListening()
	notify.wait(t, "READY=1")
	t.Logf("running as uid %d gid %d (test as root: %v)", uid, gid, asRoot)

	// The process really is the service user.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err == nil {
		wantUID := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid)
		if !strings.Contains(string(status), wantUID) {
			t.Errorf("/proc/PID/status has no %q", wantUID)
		}
	}

	// HEALTHCHECK / readiness.
	if out, err := asUser(exec.Command(bin, "health", "-admin", g.adminAddr)).CombinedOutput(); err != nil {
		t.Errorf("gatehouse health -admin %s: %v\n%s", g.adminAddr, err, out)
	}
	if code, body := get(t, insecureClient("localhost", false), "https://"+g.httpsAddr+"/", "localhost", nil); code != 200 || body != "ok from web\n" {
		t.Errorf("GET https://localhost/ = %d %q", code, body)
	}

	// State directory: 0700, and the certificate in it belongs to the
	// service user and nobody else can read it.
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{stateDir, 0o700 | os.ModeDir},
		{filepath.Join(stateDir, "selfsigned", "cert.pem"), 0o600},
		{filepath.Join(stateDir, "selfsigned", "key.pem"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("%v (the self-signed certificate belongs in $STATE_DIRECTORY)", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, want %d", c.path, st.Uid, uid)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}

	// systemctl stop.
	g.signal(syscall.SIGTERM)
	if code := g.exitCode(20 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	notify.wait(t, "STOPPING=1")
}

func deployCopyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}
