//go:build unix

package regularfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadRules: links to regular files are followed unless
// NoSymlink; the cap holds for files whose stat size is 0 (/proc); a
// directory is refused.
func TestReadRules(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "fullchain1.pem")
	if err := os.WriteFile(real, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "fullchain.pem")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(link, Rule{MaxBytes: 10}); err != nil || string(b) != "pem" {
		t.Errorf("link to a regular file, links allowed: %q, %v; want \"pem\"", b, err)
	}
	if err := Check(link, Rule{MaxBytes: 10}); err != nil {
		t.Errorf("Check on a link, links allowed: %v", err)
	}
	if _, err := Read(link, Rule{MaxBytes: 10, NoSymlink: true}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("link with NoSymlink: %v, want a symbolic-link error", err)
	}
	if _, err := Read(real, Rule{MaxBytes: 2}); err == nil || !strings.Contains(err.Error(), "larger than the limit of 2 bytes") {
		t.Errorf("3-byte file with a 2-byte cap: %v", err)
	}
	if fi, err := os.Stat("/proc/self/status"); err == nil && fi.Size() == 0 {
		if _, err := Read("/proc/self/status", Rule{MaxBytes: 16}); err == nil || !strings.Contains(err.Error(), "larger than the limit") {
			t.Errorf("/proc/self/status (stat size 0) with a 16-byte cap: %v, want too large", err)
		}
	}
	if _, err := Read(dir, Rule{MaxBytes: 10}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), Rule{MaxBytes: 10}); !os.IsNotExist(err) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
}

// readPromptly runs Read in a goroutine and fails the test, rather than
// hanging it, when Read does not return within a generous bound (a
// correct Read returns in microseconds; a blocked open never does).
func readPromptly(t *testing.T, path string, r Rule) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Read(path, r)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Read(%s) still running after 10s: the open blocked", path)
		return nil
	}
}

// TestNotRegular: a FIFO, a device, a socket-like path and a missing
// limit are refused at once, each saying what it is.
func TestNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		// Release a reader stuck in open(2), were there one.
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	for _, c := range []struct {
		path string
		rule Rule
		want string
	}{
		{fifo, Rule{MaxBytes: 10}, "fifo is a named pipe (FIFO), not a regular file"},
		{fifo, Rule{MaxBytes: 10, NoSymlink: true}, "fifo is a named pipe (FIFO), not a regular file"},
		{"/dev/zero", Rule{MaxBytes: 10}, "/dev/zero is a character device"},
		{dir, Rule{MaxBytes: 10}, "is a directory"},
		{filepath.Join(dir, "x"), Rule{}, "no size limit given"},
	} {
		if err := readPromptly(t, c.path, c.rule); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Read(%s, %+v) = %v, want an error containing %q", c.path, c.rule, err, c.want)
		}
	}
	if err := Check(fifo, Rule{MaxBytes: 10}); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("Check(fifo) = %v, want a named-pipe error", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 3<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(big, Rule{MaxBytes: 2 << 10}); err == nil || !strings.Contains(err.Error(), "larger than the limit of 2 KiB") {
		t.Errorf("Check of a 3 KiB file with a 2 KiB cap: %v", err)
	}
}
