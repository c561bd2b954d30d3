package test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCheck runs `gatehouse check -config path` and returns the exit code,
// stdout and stderr.
func runCheck(t *testing.T, path string) (int, string, string) {
	t.Helper()
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "check", "-config", path)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("running gatehouse check: %v", err)
	return 0, "", ""
}

// TestCheckExamples: every shipped example config is valid.
func TestCheckExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(moduleRoot, "examples", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("examples/ has no *.toml files yet: nothing to check")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCheck(t, f)
			if code != 0 {
				t.Errorf("gatehouse check %s: exit %d, want 0\nstdout: %s\nstderr: %s", filepath.Base(f), code, out, errOut)
			}
			if !strings.Contains(out, ": ok:") {
				t.Errorf("gatehouse check %s printed %q, want a one-line \"ok\" summary", filepath.Base(f), out)
			}
		})
	}
}

// problemLine is how check reports one problem: FILE:LINE: key.path: msg.
var problemLine = regexp.MustCompile(`(?m)^.+\.toml:(\d+): ([a-z0-9_]+(?:\[\d+\])?(?:\.[a-z0-9_]+(?:\[\d+\])?)*): .+$`)

// TestCheckInvalid: every config/testdata/invalid-*.toml is rejected with a
// non-zero exit and a problem line naming the key path and the line.
func TestCheckInvalid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(moduleRoot, "config", "testdata", "invalid-*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no config/testdata/invalid-*.toml files found")
	}
	// The key path each file must name; files added later are checked
	// against the general FILE:LINE: key: shape only.
	want := map[string]string{
		"invalid-acme-wildcard.toml":     ":2: sites.a.hosts[0]:",
		"invalid-admin-public.toml":      ":2: listeners.admin.address:",
		"invalid-cipher.toml":            ":2: listeners.https.ciphers[1]:",
		"invalid-duplicate-host.toml":    ":8: sites.b.hosts[0]:",
		"invalid-duration.toml":          ":2: timeouts.client_header:",
		"invalid-files-missing-key.toml": ":4: sites.a.cert_file:",
		"invalid-health.toml":            ":11: upstreams.app.health.path:",
		"invalid-policy.toml":            ":8: upstreams.app.policy:",
		"invalid-server-address.toml":    ":10: upstreams.app.servers[1].address:",
		"invalid-syntax.toml":            ":3:",
		"invalid-type.toml":              ":2: limits.conn_per_ip:",
		"invalid-unknown-key.toml":       ":3: listeners.https.tickets:",
		"invalid-unknown-upstream.toml":  ":7: sites.a.routes[0].upstream:",
		"invalid-websocket-origin.toml":  ":8: sites.a.routes[0].websocket.origins[0]:",
		"invalid-zone-rate.toml":         ":2: zones.login.rate:",
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCheck(t, f)
			if code == 0 {
				t.Fatalf("gatehouse check %s: exit 0, want non-zero\nstdout: %s", name, out)
			}
			if !problemLine.MatchString(errOut) {
				t.Errorf("gatehouse check %s: no \"FILE:LINE: key.path: message\" line in stderr:\n%s", name, errOut)
			}
			if !strings.Contains(errOut, name+":") {
				t.Errorf("gatehouse check %s: stderr does not name the file:\n%s", name, errOut)
			}
			if w, ok := want[name]; ok && !strings.Contains(errOut, w) {
				t.Errorf("gatehouse check %s: stderr lacks %q:\n%s", name, w, errOut)
			}
			if !strings.Contains(errOut, "not valid") {
				t.Errorf("gatehouse check %s: no closing \"configuration is not valid\" line:\n%s", name, errOut)
			}
		})
	}
}
