//go:build unix

package staticfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFIFO: a named pipe in the root (or reached through a symlink) is
// refused at once. Opened without O_NONBLOCK, open(2) would wait for a
// writer forever and the request would hang.
func TestFIFO(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "ok.txt", "ok")
	must(t, syscall.Mkfifo(filepath.Join(root, "pipe.css"), 0o644))
	must(t, os.Symlink("pipe.css", filepath.Join(root, "to-pipe.css")))
	// A FIFO as a precompressed sibling is ignored as well.
	must(t, syscall.Mkfifo(filepath.Join(root, "ok.txt.gz"), 0o644))
	for _, cache := range []int{0, -1} {
		_, hs := newServer(t, Options{Root: root, CacheEntries: cache})
		// Should a handler be stuck in open(2) (the defect this test
		// guards against), a writer unblocks it so that the server can
		// close and the test report the failure instead of hanging.
		t.Cleanup(func() {
			for _, p := range []string{"pipe.css", "ok.txt.gz"} {
				if w, err := os.OpenFile(filepath.Join(root, p), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
		})
		for _, p := range []string{"/pipe.css", "/to-pipe.css"} {
			if r := getWithin(t, hs, p, 5*time.Second); r.status != 404 {
				t.Errorf("cache %d: GET %s = %d, want 404", cache, p, r.status)
			}
		}
		r := getWithin(t, hs, "/ok.txt", 10*time.Second, "Accept-Encoding: gzip")
		if r.status != 200 || r.header.Get("Content-Encoding") != "" {
			t.Errorf("cache %d: GET /ok.txt = %d Content-Encoding %q, want 200 identity", cache, r.status, r.header.Get("Content-Encoding"))
		}
	}
}
