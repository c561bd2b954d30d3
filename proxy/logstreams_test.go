package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	logs := NewAccessLogs()
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
