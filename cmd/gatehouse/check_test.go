package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// checkResult is one run of `gatehouse check`.
type checkResult struct {
	code           int
	stdout, stderr string
}

// runCheckCmd runs cmdCheck on the config at path and fails the test,
// rather than hanging it, when check has not returned within a generous
// bound (a correct check of these small configs takes milliseconds; one
// blocked on a FIFO never returns).
func runCheckCmd(t *testing.T, path string) checkResult {
	t.Helper()
	done := make(chan checkResult, 1)
	go func() {
		var out, errb bytes.Buffer
		code := cmdCheck([]string{"-config", path}, &out, &errb)
		done <- checkResult{code, out.String(), errb.String()}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("gatehouse check %s still running after 10s: blocked on a file", path)
		return checkResult{}
	}
}

// writeConfig writes body as gatehouse.toml in dir (mode 0600) and
// returns its path.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "gatehouse.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// filesSite is a config with one tls = "files" site; state_dir is in dir.
func filesSite(dir, cert, key, extra string) string {
	return `state_dir = "` + filepath.Join(dir, "state") + `"
` + extra + `
[sites.a]
hosts = ["a.example"]
cert_file = "` + cert + `"
key_file = "` + key + `"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
}

// fifo makes a named pipe; Cleanup opens it read-write once so that a
// reader stuck in open(2) (the defect) is released.
func fifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	return path
}

func wantCheckError(t *testing.T, r checkResult, parts ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("stderr %q\ndoes not contain %q", r.stderr, p)
		}
	}
}

// TestCheckFilesNotRegular: certificate, key and ACME root files that are
// FIFOs or devices make check fail at once, naming the key; they used to
// block it (and every reload) forever, or read /dev/zero without end.
func TestCheckFilesNotRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular.pem")
	if err := os.WriteFile(regular, []byte("not checked this far"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("cert_file FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "fullchain.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, p, regular, "")))
		wantCheckError(t, r, "sites.a.cert_file: "+p+" is a named pipe (FIFO), not a regular file")
	})
	t.Run("key_file FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "privkey.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, p, "")))
		wantCheckError(t, r, "sites.a.key_file: "+p+" is a named pipe (FIFO)")
	})
	t.Run("ca_roots FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "roots.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \""+p+"\"\n")))
		wantCheckError(t, r, "acme.ca_roots: "+p+" is a named pipe (FIFO)")
	})
	t.Run("ca_roots /dev/zero", func(t *testing.T) {
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \"/dev/zero\"\n")))
		wantCheckError(t, r, "acme.ca_roots: /dev/zero is a character device")
	})
	t.Run("ca_roots too large", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "roots.pem")
		if err := os.WriteFile(p, make([]byte, 4<<20+1), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \""+p+"\"\n")))
		wantCheckError(t, r, "acme.ca_roots: "+p+" is larger than the limit of 4 MiB")
	})
	t.Run("config FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "gatehouse.toml"))
		wantCheckError(t, runCheckCmd(t, p), p+" is a named pipe (FIFO)")
	})
	t.Run("error page FIFO", func(t *testing.T) {
		d := t.TempDir()
		fifo(t, filepath.Join(d, "502.html"))
		body := strings.Replace(filesSite(dir, regular, regular, ""), "[[sites.a.routes]]", "error_pages = { 502 = \"502.html\" }\n[[sites.a.routes]]", 1)
		wantCheckError(t, runCheckCmd(t, writeConfig(t, d, body)), "sites.a.error_pages.502:", "502.html is a named pipe (FIFO)")
	})
}
