package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// runCmd runs the gatehouse command line args in-process.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpForEveryCommand: `gatehouse help X` prints X's usage on
// standard output and `gatehouse X -h` on standard error, both exiting
// 0, for every command.
func TestHelpForEveryCommand(t *testing.T) {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want := "Usage: gatehouse " + name
			code, out, errs := runCmd("help", name)
			if code != 0 || !strings.HasPrefix(out, want) || errs != "" {
				t.Errorf("help %s: exit %d, stdout %q, stderr %q; want 0 and %q on stdout", name, code, head(out), head(errs), want)
			}
			code, out, errs = runCmd(name, "-h")
			if code != 0 || !strings.HasPrefix(errs, want) || out != "" {
				t.Errorf("%s -h: exit %d, stdout %q, stderr %q; want 0 and %q on stderr", name, code, head(out), head(errs), want)
			}
		})
	}
	if code, _, errs := runCmd("help", "nope"); code != 2 || !strings.Contains(errs, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, stderr %q; want 2 and unknown command", code, head(errs))
	}
}

func head(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// TestCheckConfigFlag: check takes -c as well as -config, and without
// either reads /etc/gatehouse/gatehouse.toml.
func TestCheckConfigFlag(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, minimalConfig(dir))
	for _, args := range [][]string{{"check", "-c", path}, {"check", "-config", path}, {"check", path}} {
		if code, out, errs := runCmd(args...); code != 0 || !strings.Contains(out, ": ok:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want ok", args, code, out, errs)
		}
	}
	if _, err := os.Stat(defaultConfigPath); err == nil {
		t.Skipf("%s exists on this machine: cannot test the default", defaultConfigPath)
	}
	code, _, errs := runCmd("check")
	if code != 1 || !strings.Contains(errs, defaultConfigPath) {
		t.Errorf("check without -config: exit %d, stderr %q; want 1 and an error naming %s", code, errs, defaultConfigPath)
	}
}

// minimalConfig is a valid config with its state directory in dir.
func minimalConfig(dir string) string {
	return `state_dir = "` + filepath.Join(dir, "state") + `"
[listeners.http]
address = "127.0.0.1:0"
[listeners.https]
address = "127.0.0.1:0"
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
websocket.enabled = true
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
}

// TestCheckDump: check -dump prints the effective configuration on
// standard output (the summary goes to standard error), and checking the
// dump dumps it again unchanged.
func TestCheckDump(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, minimalConfig(dir))
	code, dump1, errs := runCmd("check", "-dump", "-c", path)
	if code != 0 || !strings.Contains(errs, ": ok:") {
		t.Fatalf("check -dump: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"\nclient_header = \"12s\"\n", "\nmax_body = \"10M\"\n", "\nhsts = \"off\"\n", "\naddress = \"127.0.0.1:9180\"\n"} {
		if !strings.Contains(dump1, want) {
			t.Errorf("dump lacks the default %q:\n%s", want, dump1)
		}
	}
	path2 := filepath.Join(t.TempDir(), "dump.toml")
	if err := os.WriteFile(path2, []byte(dump1), 0o600); err != nil {
		t.Fatal(err)
	}
	code, dump2, errs := runCmd("check", "-dump", path2)
	if code != 0 {
		t.Fatalf("check -dump of the dump: exit %d, stderr %q\n%s", code, errs, dump1)
	}
	if dump1 != dump2 {
		t.Errorf("dump of the dump differs:\n--- first\n%s\n--- second\n%s", dump1, dump2)
	}
}
