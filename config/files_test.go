//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// errorPageConfig writes a config whose site a has error page 502 = page
// into dir and returns its path.
func errorPageConfig(t *testing.T, dir, page string) string {
	t.Helper()
	cfg := filepath.Join(dir, "gatehouse.toml")
	body := `[sites.a]
hosts = ["a.example"]
tls = "off"
error_pages = { 502 = "` + page + `" }
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadPromptly runs Load in a goroutine and fails the test, rather than
// hanging it, when Load does not return within a generous bound (a
// correct Load returns in microseconds; a blocked open never does).
func loadPromptly(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Load(%s) still running after 10s: a FIFO blocks config loading (and every later reload) forever, a device never ends", path)
		return nil
	}
}

// mkfifo makes a named pipe and, in Cleanup, opens it read-write once so
// that a reader stuck in open(2) (the defect) is released.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
}

func wantProblem(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded; want an error containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\ndoes not contain %q", err, p)
		}
	}
}

// TestErrorPageSymlink: an error page that is a symbolic link is refused,
// both one leading out of the config directory (the /etc/shadow attack)
// and one inside it (a link to the config itself would leak its secrets).
func TestErrorPageSymlink(t *testing.T) {
	for name, target := range map[string]func(dir string) string{
		"outside": func(string) string { return "/etc/passwd" },
		"inside": func(dir string) string {
			return filepath.Join(dir, "gatehouse.toml")
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink(target(dir), filepath.Join(dir, "502.html")); err != nil {
				t.Fatal(err)
			}
			err := loadPromptly(t, errorPageConfig(t, dir, "502.html"))
			wantProblem(t, err, "gatehouse.toml:4: sites.a.error_pages.502:", "502.html is a symbolic link, not a regular file")
		})
	}
}

// TestErrorPageFIFO: a FIFO as an error page is an error at once; it used
// to block Load (and so `check` and every reload) forever.
func TestErrorPageFIFO(t *testing.T) {
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "502.html"))
	err := loadPromptly(t, errorPageConfig(t, dir, "502.html"))
	wantProblem(t, err, "sites.a.error_pages.502:", "is a named pipe (FIFO), not a regular file")
}

// TestErrorPageDevice: /dev/zero as an error page is refused instead of
// read until memory runs out.
func TestErrorPageDevice(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	err := loadPromptly(t, errorPageConfig(t, t.TempDir(), "/dev/zero"))
	wantProblem(t, err, "sites.a.error_pages.502:", "/dev/zero is a character device, not a regular file")
}

// TestErrorPageSize: a page of exactly MaxErrorPageSize loads; one byte
// more is an error naming the key and the limit.
func TestErrorPageSize(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "502.html")
	if err := os.WriteFile(page, make([]byte, MaxErrorPageSize), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(errorPageConfig(t, dir, "502.html"))
	if err != nil {
		t.Fatalf("page of exactly the limit: %v", err)
	}
	if got := len(c.Sites[0].ErrorPages[502]); got != MaxErrorPageSize {
		t.Errorf("page read as %d bytes, want %d", got, MaxErrorPageSize)
	}
	if err := os.WriteFile(page, make([]byte, MaxErrorPageSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	err = loadPromptly(t, errorPageConfig(t, dir, "502.html"))
	wantProblem(t, err, "gatehouse.toml:4: sites.a.error_pages.502:", "502.html is larger than the limit of 1 MiB")
}

// TestLoadConfigFIFO: `check -config FIFO` and a reload of a config that
// became a FIFO fail at once.
func TestLoadConfigFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gatehouse.toml")
	mkfifo(t, p)
	wantProblem(t, loadPromptly(t, p), "gatehouse.toml is a named pipe (FIFO), not a regular file")
	wantProblem(t, loadPromptly(t, "/dev/zero"), "/dev/zero is a character device")
}
