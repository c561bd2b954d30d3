package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
)

// daemonRace is set by GATEHOUSE_E2E_RACE=1: TestMain then builds the
// gatehouse binary with -race, so the end-to-end tests also catch data
// races in the daemon. It is opt-in because an instrumented daemon is
// several times larger and slower: tests that measure memory or
// throughput should skip when it is set.
var daemonRace = os.Getenv("GATEHOUSE_E2E_RACE") == "1"

// binPath is the gatehouse binary built by TestMain ("" if the build
// failed; binary tests then fail with buildErr).
var (
	binPath  string
	buildErr error
	// moduleRoot is the repository root (the parent of test/).
	moduleRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	moduleRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "gatehouse")
	args := []string{"build", "-o", binPath}
	if daemonRace {
		// The daemon is race-instrumented; a race it reports on stderr
		// fails the test that ran it (see runGatehouse).
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/gatehouse")...)
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/gatehouse: %v\n%s", err, out)
		binPath = ""
	}
	return m.Run()
}

func needBinary(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// syncBuffer is a bytes.Buffer safe for a writing subprocess pipe and a
// reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gatehouse is one running gatehouse process.
type gatehouse struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string // the test's temp dir; $DIR in configs
	cfgPath string

	httpAddr, httpsAddr, adminAddr string

	logs   *syncBuffer // stderr: the JSON (or text) process log
	stdout *syncBuffer

	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed

	clientsOnce sync.Once
	clientsMu   sync.Mutex
	clients     []*http.Transport // see trackClient
}

// baseListeners is the header most configs start with: JSON logs, the
// state directory in the test's temp dir, every listener on a free
// loopback port.
const baseListeners = `
state_dir = "$DIR/state"
grace_period = "10s"

[log]
format = "json"
level = "info"

[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = "127.0.0.1:0"

[listeners.admin]
address = "127.0.0.1:0"
`

// plainOnly is baseListeners without the HTTPS listener.
const plainOnly = `
state_dir = "$DIR/state"
grace_period = "10s"

[log]
format = "json"
level = "info"

[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = "127.0.0.1:0"
`

// startGatehouse writes tomlText (with $DIR replaced by a fresh temp dir)
// to a file, runs `gatehouse run -config FILE` and waits until its
// listeners are up. The process is killed in Cleanup if still running.
func startGatehouse(t *testing.T, tomlText string) *gatehouse {
	t.Helper()
	return startGatehouseIn(t, t.TempDir(), tomlText)
}

// startGatehouseIn is startGatehouse with a temp dir the test already
// made (to put certificates in it first).
func startGatehouseIn(t *testing.T, dir, tomlText string) *gatehouse {
	t.Helper()
	g := launchGatehouseIn(t, dir, tomlText)
	g.waitListening()
	g.checkDrained()
	return g
}

// launchGatehouseIn writes tomlText ($DIR replaced by dir) to
// dir/gatehouse.toml and runs the daemon on it, without waiting for it.
func launchGatehouseIn(t *testing.T, dir, tomlText string) *gatehouse {
	t.Helper()
	cfgPath := filepath.Join(dir, "gatehouse.toml")
	writeFileAtomic(t, cfgPath, strings.ReplaceAll(tomlText, "$DIR", dir))
	g := runGatehouse(t, dir, "run", "-config", cfgPath)
	g.cfgPath = cfgPath
	return g
}

// checkDrained registers leak checks of the running daemon, made at
// cleanup through its own gauges on the admin listener, before the process
// is killed (and after the test's own cleanups, which close its clients):
// no request in flight, no upstream slot held, no WebSocket stream open.
// Nothing is checked when the process has already exited or has no admin
// listener.
func (g *gatehouse) checkDrained() {
	g.t.Helper()
	if g.adminAddr == "" {
		return
	}
	for _, name := range []string{
		"gatehouse_http_requests_in_flight",
		"gatehouse_upstream_server_in_flight",
		"gatehouse_websocket_active",
	} {
		leakcheck.Zero(g.t, "gatehouse daemon's "+name, func() (int64, error) {
			select {
			case <-g.done:
				return 0, nil
			default:
			}
			m, err := g.tryMetrics()
			if err != nil {
				return 0, err
			}
			return int64(wsMetricSum(m, name)), nil
		})
	}
}

// trackClient registers a transport of the test's (lbClient's): at
// cleanup its idle connections are closed, and the daemon's
// gatehouse_connections_open must then come back to 0. The first call
// registers the check, so it covers tests whose clients are all tracked
// (or closed by the test itself).
func (g *gatehouse) trackClient(tr *http.Transport) {
	g.clientsOnce.Do(func() {
		leakcheck.Zero(g.t, "gatehouse daemon's gatehouse_connections_open (after the test's clients closed)", func() (int64, error) {
			select {
			case <-g.done:
				return 0, nil
			default:
			}
			m, err := g.tryMetrics()
			if err != nil {
				return 0, err
			}
			return int64(wsMetricSum(m, "gatehouse_connections_open")), nil
		})
		g.t.Cleanup(func() { // runs first: the clients close, then the check
			g.clientsMu.Lock()
			defer g.clientsMu.Unlock()
			for _, tr := range g.clients {
				tr.CloseIdleConnections()
			}
		})
	})
	g.clientsMu.Lock()
	g.clients = append(g.clients, tr)
	g.clientsMu.Unlock()
}

// runGatehouse starts the binary with args; it does not wait for anything.
func runGatehouse(t *testing.T, dir string, args ...string) *gatehouse {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "STATE_DIRECTORY=")
	return startCmd(t, dir, cmd)
}

// startCmd starts a prepared gatehouse command, collecting its output; the
// process is killed in Cleanup if still running, and its log is shown when
// the test failed (or fails it when the race detector spoke).
func startCmd(t *testing.T, dir string, cmd *exec.Cmd) *gatehouse {
	t.Helper()
	g := &gatehouse{t: t, dir: dir, cmd: cmd, logs: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan struct{})}
	g.cmd.Stderr = g.logs
	g.cmd.Stdout = g.stdout
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("starting gatehouse: %v", err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if logs := g.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in gatehouse:\n%s", logs)
		} else if t.Failed() {
			t.Logf("gatehouse log:\n%s", logs)
		}
	})
	return g
}

var textListening = regexp.MustCompile(`msg=listening listener=(\S+) addr=(\S+)`)

// listeners parses the "listening" log lines, JSON or text.
func (g *gatehouse) listeners() map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			var m struct{ Msg, Listener, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "listening" {
				out[m.Listener] = m.Addr
			}
			continue
		}
		if sm := textListening.FindStringSubmatch(line); sm != nil {
			out[sm[1]] = sm[2]
		}
	}
	return out
}

// waitListening waits until the admin listener (which is opened last) is
// logged, and records every listener's address.
func (g *gatehouse) waitListening() {
	g.t.Helper()
	if err := g.tryWaitListening(); err != nil {
		g.t.Fatal(err)
	}
}

// tryWaitListening is waitListening returning its failure.
func (g *gatehouse) tryWaitListening() error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := g.listeners()
		if l["admin"] != "" {
			g.httpAddr, g.httpsAddr, g.adminAddr = l["http"], l["https"], l["admin"]
			return nil
		}
		select {
		case <-g.done:
			return fmt.Errorf("gatehouse exited before listening (%v); log:\n%s", g.waitErr, g.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gatehouse did not log its listeners within 20s; log:\n%s", g.logs.String())
		}
	}
}

// startGatehouseOnPort starts a daemon whose configuration must name a
// fixed port (cfgFor makes it from a port that was free a moment ago).
// Between finding the port free and the daemon binding it, a test running
// in parallel may take it; the start is then tried again with another
// port, up to five times. It returns the daemon and its port.
func startGatehouseOnPort(t *testing.T, dir string, cfgFor func(port string) string) (*gatehouse, string) {
	t.Helper()
	for try := 1; ; try++ {
		port := strconv.Itoa(freePort(t))
		g := launchGatehouseIn(t, dir, cfgFor(port))
		err := g.tryWaitListening()
		if err == nil {
			g.checkDrained()
			return g, port
		}
		if try == 5 || !strings.Contains(g.logs.String(), ":"+port+": bind: address already in use") {
			t.Fatal(err)
		}
		t.Logf("port %s was taken before gatehouse bound it; again with another", port)
	}
}

// waitUntil polls cond every 10 ms until it holds, and returns how long
// that took; after timeout it fails the test, naming what. It is the one
// way tests here wait for something observable (a metric, a log line, a
// backend's count, a port refusing connections): timeout only bounds a
// failing test, so make it generous. cond runs on the test goroutine and
// may call t.Fatal.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		<-tick.C
	}
	return time.Since(start)
}

// countLog counts log lines whose msg is msg.
func (g *gatehouse) countLog(msg string) int {
	n := 0
	for _, line := range strings.Split(g.logs.String(), "\n") {
		if !strings.Contains(line, msg) {
			continue // cheap filter (a test may send access log lines to stderr too)
		}
		var m struct{ Msg string }
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil && m.Msg == msg {
			n++
		} else if strings.Contains(line, "msg="+msg) || strings.Contains(line, `msg="`+msg+`"`) {
			n++
		}
	}
	return n
}

// waitLog waits until at least n log lines with msg were written.
func (g *gatehouse) waitLog(msg string, n int, timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for g.countLog(msg) < n {
		if time.Now().After(deadline) {
			g.t.Fatalf("waited %v for %d log line(s) %q, have %d; log:\n%s", timeout, n, msg, g.countLog(msg), g.logs.String())
		}
		select {
		case <-g.done:
			g.t.Fatalf("gatehouse exited (%v) while waiting for log %q; log:\n%s", g.waitErr, msg, g.logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (g *gatehouse) signal(sig os.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits for the process to exit and returns its exit code.
func (g *gatehouse) exitCode(timeout time.Duration) int {
	g.t.Helper()
	select {
	case <-g.done:
	case <-time.After(timeout):
		g.t.Fatalf("gatehouse still running %v after being told to stop; log:\n%s", timeout, g.logs.String())
	}
	var ee *exec.ExitError
	if errors.As(g.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if g.waitErr != nil {
		g.t.Fatalf("waiting for gatehouse: %v", g.waitErr)
	}
	return 0
}

// metrics fetches the admin listener's /metrics exposition.
func (g *gatehouse) metrics() string {
	g.t.Helper()
	m, err := g.tryMetrics()
	if err != nil {
		g.t.Fatal(err)
	}
	return m
}

// tryMetrics is metrics for callers that must not fail the test at once.
func (g *gatehouse) tryMetrics() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+g.adminAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("GET /metrics: status %d, err %v", resp.StatusCode, err)
	}
	return string(b), nil
}

// metricValue returns the value of the sample whose name and labels are
// exactly series (e.g. `x_total{result="failure"}`), and whether it exists.
func metricValue(exposition, series string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// seen is one request as a backend received it.
type seen struct {
	Method   string
	Host     string
	URI      string
	Header   http.Header
	Body     int64 // bytes of body read
	BodyErr  error // error reading the body (nil: read to EOF)
	Received time.Time
}

// backend is a real HTTP server on loopback that records every request.
type backend struct {
	*httptest.Server
	mu    sync.Mutex
	begun map[string]int // requests whose handler started, by URI
	reqs  []seen
	// handle, when set, answers instead of the default 200 "ok from NAME".
	handle func(w http.ResponseWriter, r *http.Request)
	name   string
}

// newBackend starts a recording backend; handle may be nil.
func newBackend(t *testing.T, name string, handle func(w http.ResponseWriter, r *http.Request)) *backend {
	t.Helper()
	b := &backend{handle: handle, name: name, begun: map[string]int{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{Method: r.Method, Host: r.Host, URI: r.RequestURI, Header: r.Header.Clone(), Received: time.Now()}
		b.mu.Lock()
		b.begun[r.RequestURI]++
		b.mu.Unlock()
		n, err := io.Copy(io.Discard, r.Body)
		s.Body, s.BodyErr = n, err
		b.mu.Lock()
		b.reqs = append(b.reqs, s)
		b.mu.Unlock()
		if b.handle != nil {
			b.handle(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ok from %s\n", name)
	}))
	t.Cleanup(b.Close)
	return b
}

// addr is host:port of the backend.
func (b *backend) addr() string { return b.Listener.Addr().String() }

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// last returns the last request the backend saw; it fails the test when
// there is none.
func (b *backend) last(t *testing.T) seen {
	t.Helper()
	rs := b.requests()
	if len(rs) == 0 {
		t.Fatalf("backend %s received no request", b.name)
	}
	return rs[len(rs)-1]
}

// get sends a GET through client with a Host header and returns the status
// and body.
func get(t *testing.T, c *http.Client, url, host string, hdr map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rawExchange writes req on a fresh TCP connection and reads the response
// head (and body, if it has a Content-Length). It reports whether the
// server then closed the connection within closeWait.
func rawExchange(t *testing.T, addr, req string, closeWait time.Duration) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", firstLine(req), err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(closeWait))
	var one [1]byte
	_, err = br.Read(one[:])
	closed = err != nil && !isTimeout(err)
	return resp, string(b), closed
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// plainClient is an HTTP/1.1 client for the plain listener.
func plainClient() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// raiseNoFile makes sure this process and the gatehouse it starts may
// open at least want files: it sets RLIMIT_NOFILE explicitly (which also
// makes Go pass the raised limit on to children instead of restoring the
// original soft limit), or skips.
func raiseNoFile(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit RLIMIT_NOFILE: %v", err)
	}
	setRlimitField(&lim.Cur, max(uint64(lim.Cur), min(uint64(lim.Max), want)))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot set RLIMIT_NOFILE to %d: %v", lim.Cur, err)
	}
	if uint64(lim.Cur) < want {
		t.Skipf("RLIMIT_NOFILE hard limit is %d; this test needs %d (raise it with ulimit -Hn)", lim.Max, want)
	}
}

// setRlimitField sets a field of syscall.Rlimit, which is uint64 on
// Linux and int64 on the BSDs.
func setRlimitField[T int64 | uint64](f *T, n uint64) { *f = T(n) }
