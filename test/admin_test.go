package test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runCmd runs the gatehouse binary with args and returns its exit code and
// combined output.
func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("gatehouse %v: %v", args, err)
	return 0, ""
}

// TestAdminListener: /healthz, /readyz and /upstreams on the admin
// listener, and `gatehouse health` (the container HEALTHCHECK) against a
// running and a stopped instance.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	g := startGatehouse(t, plainOnly+twoBackendSite(b1.addr(), b2.addr(), "10r/s"))
	admin := "http://" + g.adminAddr

	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		code, body := get(t, plainClient(), admin+path, "", nil)
		if code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}

	code, body := get(t, plainClient(), admin+"/upstreams", "", nil)
	if code != 200 {
		t.Fatalf("GET /upstreams: %d %q", code, body)
	}
	var ups map[string][]struct {
		Name string `json:"name"`
		Addr string `json:"addr"`
		Up   bool   `json:"up"`
	}
	if err := json.Unmarshal([]byte(body), &ups); err != nil {
		t.Fatalf("/upstreams is not JSON: %v\n%s", err, body)
	}
	servers := ups["app"]
	if len(servers) != 2 {
		t.Fatalf("/upstreams app = %+v, want servers b1 and b2", servers)
	}
	for _, s := range servers {
		if (s.Name != "b1" || s.Addr != b1.addr()) && (s.Name != "b2" || s.Addr != b2.addr()) || !s.Up {
			t.Errorf("/upstreams server %+v, want b1/b2 at their addresses and up", s)
		}
	}

	if code, out := runCmd(t, "health", "-admin", g.adminAddr); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("gatehouse health against a running instance: exit %d %q, want 0 and \"ready\"", code, out)
	}
	if code, out := runCmd(t, "version"); code != 0 || !strings.HasPrefix(out, "gatehouse ") {
		t.Errorf("gatehouse version: exit %d %q", code, out)
	}
	if code, _ := runCmd(t, "no-such-command"); code != 2 {
		t.Errorf("gatehouse no-such-command: exit %d, want 2 (usage)", code)
	}

	g.signal(syscall.SIGTERM)
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if code, out := runCmd(t, "health", "-admin", g.adminAddr, "-timeout", "1s"); code != 1 {
		t.Errorf("gatehouse health against a stopped instance: exit %d %q, want 1", code, out)
	}
	// The admin listener is gone with the process.
	if resp, err := http.Get(admin + "/healthz"); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Errorf("admin listener still answers after exit: %s", resp.Status)
	}
}
