//go:build unix

package accesslog

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogFIFOWithoutReader: an access_log that is a FIFO nobody
// reads is an error at once; the open must not block the reload (it
// blocked forever before, holding the daemon's reload lock).
func TestAccessLogFIFOWithoutReader(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	logs := New() // not closed: a blocked open would hold its lock
	done := make(chan error, 1)
	go func() {
		_, err := logs.Open(fifo, "json")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no process reads") {
			t.Fatalf("Open(FIFO without reader) = %v, want an error saying no process reads it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening an access log FIFO without a reader still blocked after 10s")
	}
}
