package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
	"github.com/prometheus/client_golang/prometheus"
)

// TestAccessLogDefaultIsStdout: a site without access_log writes its
// access log to standard output, leaving standard error to the process
// log (containers and the journal tell the two streams apart).
func TestAccessLogDefaultIsStdout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(backend.Close)
	cfg := `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "` + strings.TrimPrefix(backend.URL, "http://") + `" }]
`
	var stdout, stderr lockedBuffer
	logs := accesslog.New()
	logs.Stdout, logs.Stderr = &stdout, &stderr
	e, _ := startTestEdge(t, cfg, Deps{AccessLogs: logs})
	r := httptest.NewRequest("GET", "http://a.example/hello", nil)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if !strings.Contains(stdout.String(), `"status":200`) {
		t.Errorf("standard output = %q, want the access log line", stdout.String())
	}
	if stderr.String() != "" {
		t.Errorf("standard error = %q, want nothing", stderr.String())
	}
}

// logEdge serves cfg from an Edge whose process log (Edge and Runtime)
// goes to a buffer, at debug level, with the clock now.
func logEdge(t *testing.T, cfg string, now func() time.Time) (*Edge, *lockedBuffer) {
	t.Helper()
	leakcheck.Goroutines(t, modulePath)
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	al := accesslog.New()
	al.Stdout, al.Stderr = io.Discard, io.Discard
	m := NewMetrics(prometheus.NewRegistry(), "test")
	rt, err := Build(t.Context(), mustParse(t, cfg), Deps{Metrics: m, AccessLogs: al, Logger: logger, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rt.Start()
	e := NewEdge(EdgeOptions{Metrics: m, Logger: logger, Now: now})
	e.Swap(rt)
	t.Cleanup(func() {
		if old := e.Swap(nil); old != nil {
			old.Close()
		}
		e.Close()
	})
	return e, &logs
}

// serveGET sends GET path to e as a client of a.example would and
// returns the status.
func serveGET(e *Edge, path string) int {
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest("GET", "http://a.example"+path, nil))
	return w.Code
}

// TestPassiveHealthLoggedOnce: a server taken out by passive health is
// logged down once — not again when it fails once more after fail_timeout
// — and logged up once, when it answers again.
func TestPassiveHealthLoggedOnce(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(backend.Close)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	e, logs := logEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
retries = 0
max_fails = 2
fail_timeout = "10s"
fail_statuses = [502]
servers = [{ name = "s", address = "`+strings.TrimPrefix(backend.URL, "http://")+`" }]
`, now)
	for round := range 3 { // out; tried again after fail_timeout and out again; ...
		serveGET(e, "/")
		serveGET(e, "/")
		if code := serveGET(e, "/"); code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
			t.Fatalf("round %d: status %d with the only server out, want 502 or 503", round, code)
		}
		clock.Add(int64(10 * time.Second))
	}
	failing.Store(false)
	for range 3 {
		if code := serveGET(e, "/"); code != 200 {
			t.Fatalf("status %d after the server recovered, want 200", code)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "msg=\"upstream server down\""); n != 1 {
		t.Errorf("logged down %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "msg=\"upstream server up\""); n != 1 {
		t.Errorf("logged up %d times, want once:\n%s", n, out)
	}
}

// TestRetryLoggedAtDebug: a request that failed on one server and was
// sent to another is logged at debug level, with the server and why; so
// is a request sent once more on a new connection after the first one
// was closed before any response byte.
func TestRetryLoggedAtDebug(t *testing.T) {
	// A closed port: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(live.Close)
	e, logs := logEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
policy = "first"
max_fails = 0
servers = [{ name = "dead", address = "`+dead+`" }, { name = "live", address = "`+strings.TrimPrefix(live.URL, "http://")+`" }]
`, time.Now)
	if code := serveGET(e, "/"); code != 200 {
		t.Fatalf("status %d, want 200 from the second server", code)
	}
	if out := logs.String(); !strings.Contains(out, `level=DEBUG msg="upstream request retried on another server" upstream=app server=dead kind=dial`) {
		t.Errorf("no debug line for the retry:\n%s", out)
	}

	// A backend that drops every other new connection after reading the
	// request, before answering.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil && n%2 == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			}
			c.Close()
		}
	}()
	e, logs = logEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
retries = 0
servers = [{ name = "flaky", address = "`+ln.Addr().String()+`" }]
`, time.Now)
	if code := serveGET(e, "/"); code != 200 {
		t.Fatalf("status %d, want 200 from the second connection", code)
	}
	if out := logs.String(); !strings.Contains(out, `level=DEBUG msg="upstream connection closed before any response byte; request sent once more on a new connection" upstream=app server=`+ln.Addr().String()) {
		t.Errorf("no debug line for the resend:\n%s", out)
	}
}
