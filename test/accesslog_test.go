package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type accessLine struct {
	Client string `json:"client"`
	Method string `json:"method"`
	Host   string `json:"host"`
	URI    string `json:"uri"`
	Status int    `json:"status"`
	Route  string `json:"route"`
}

// readAccessLog parses a JSON access log; a missing file is empty.
func readAccessLog(t *testing.T, path string) []accessLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []accessLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var a accessLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("access log line is not JSON: %v\n%s", err, l)
		}
		out = append(out, a)
	}
	return out
}

// waitAccessLog waits until path has n lines (lines are written just after
// the response is sent).
func waitAccessLog(t *testing.T, path string, n int) []accessLine {
	t.Helper()
	var ls []accessLine
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d access log lines in %s", n, path), func() bool {
		ls = readAccessLog(t, path)
		return len(ls) >= n
	})
	return ls
}

// TestAccessLog: one JSON line per request with its status, none for a
// route with access_log = false, and SIGUSR1 after a rename (logrotate)
// makes Gatehouse write to a new file at the original path.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	g := startGatehouse(t, plainOnly+fmt.Sprintf(`
[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "$DIR/access.log"
access_log_format = "json"

[[sites.app.routes]]
path = "/"
upstream = "app"

[[sites.app.routes]]
path = "/quiet/"
upstream = "app"
access_log = false

[upstreams.app]
servers = [{ name = "b1", address = %q }]
`, be.addr()))
	logPath := filepath.Join(g.dir, "access.log")

	// One keep-alive client: requests are served in order, so once the
	// last line is there, every earlier request has been logged or not.
	c := plainClient()
	base := "http://" + g.httpAddr
	for _, p := range []string{"/quiet/1", "/quiet/2", "/a?x=1", "/missing"} {
		get(t, c, base+p, "app.test", nil)
	}
	lines := waitAccessLog(t, logPath, 2)
	if len(lines) != 2 {
		t.Fatalf("access log has %d lines, want 2 (the /quiet/ route is not logged): %+v", len(lines), lines)
	}
	for i, want := range []struct {
		uri    string
		status int
	}{{"/a?x=1", 200}, {"/missing", 404}} {
		l := lines[i]
		if l.URI != want.uri || l.Status != want.status || l.Method != "GET" || l.Host != "app.test" || l.Client != "127.0.0.1" {
			t.Errorf("line %d = %+v, want GET app.test %s %d from 127.0.0.1", i+1, l, want.uri, want.status)
		}
	}
	if be.count() != 4 {
		t.Errorf("backend saw %d requests, want 4 (quiet routes are proxied, just not logged)", be.count())
	}

	// logrotate: rename, then SIGUSR1.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	g.signal(syscall.SIGUSR1)
	g.waitLog("access logs reopened", 1, 5*time.Second)
	get(t, c, base+"/after-rotate", "app.test", nil)
	fresh := waitAccessLog(t, logPath, 1)
	if len(fresh) != 1 || fresh[0].URI != "/after-rotate" {
		t.Errorf("new access.log after SIGUSR1 has %+v, want one line for /after-rotate", fresh)
	}
	if old := readAccessLog(t, logPath+".1"); len(old) != 2 {
		t.Errorf("rotated access.log.1 has %d lines, want the 2 from before the rotation", len(old))
	}
}
