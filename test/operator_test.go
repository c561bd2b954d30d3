package test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxyOneLiner runs `gatehouse proxy --from localhost --to BACKEND`
// (listeners on free loopback ports): it serves the backend over HTTPS
// with its self-signed certificate, redirects HTTP to HTTPS, writes the
// access log on standard output and its own log on standard error.
func TestProxyOneLiner(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "one", nil)
	dir := t.TempDir()
	g := runGatehouse(t, dir, "proxy", "--from", "localhost", "--to", b.addr(),
		"--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "state"))
	g.waitListening()

	c := insecureClient("localhost", false)
	code, body := get(t, c, "https://"+g.httpsAddr+"/hello", "localhost", nil)
	if code != 200 || body != "ok from one\n" {
		t.Fatalf("GET https://localhost/hello: %d %q, want 200 from the backend", code, body)
	}
	if got := b.last(t); got.URI != "/hello" || got.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("backend saw %s with X-Forwarded-Proto %q", got.URI, got.Header.Get("X-Forwarded-Proto"))
	}
	code, _ = get(t, plainClient(), "http://"+g.httpAddr+"/x", "localhost", nil)
	if code != 308 && code != 301 {
		t.Errorf("GET http://localhost/x: %d, want a redirect to HTTPS", code)
	}
	waitUntil(t, 10*time.Second, "the access log line on standard output", func() bool {
		return strings.Contains(g.stdout.String(), `"uri":"/hello"`)
	})
	if logs := g.logs.String(); strings.Contains(logs, `"uri":"/hello"`) || !strings.Contains(logs, "msg=listening") {
		t.Errorf("standard error holds the access log, or not the process log:\n%s", logs)
	}
	g.signal(syscall.SIGTERM)
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

// TestCheckReportsEveryProblem: `gatehouse check` on a file with six
// problems of different kinds reports all six, each with its line and
// indexed key path.
func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	path := filepath.Join(moduleRoot, "config", "testdata", "invalid-six-problems.toml")
	code, _, stderr := runCheck(t, path)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		":3: limits.max_body: invalid size",
		":6: timeouts.client_header: invalid duration",
		":19: sites.app.routes[1].websockets: unknown key",
		":23: sites.app.routes[2].root: must be a string, not the integer 5",
		":27: sites.app.routes[3].upstream: unknown upstream \"djangoo\"",
		":30: sites.other.hosts[1]: \"app.example\" is already claimed",
		": 6 problem(s); configuration is not valid",
	} {
		if !strings.Contains(stderr, path+want) {
			t.Errorf("stderr lacks %q:\n%s", path+want, stderr)
		}
	}
}
