package staticfile

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestServersShared: Gets with the same options share one server, other
// options get another, a replaced directory gets a new one while the old
// stays open for its users, and the last Put closes a server.
func TestServersShared(t *testing.T) {
	base := t.TempDir()
	for _, rel := range []string{"r1", "r2"} {
		if err := os.MkdirAll(filepath.Join(base, rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, rel, "v.txt"), []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink("r1", link); err != nil {
		t.Fatal(err)
	}
	get := func(s *Server) (int, string) {
		w := httptest.NewRecorder()
		s.Serve(w, httptest.NewRequest(http.MethodGet, "/v.txt", nil), "v.txt")
		return w.Code, w.Body.String()
	}
	ss := NewServers()
	a, err := ss.Get(Options{Root: link})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ss.Get(Options{Root: link})
	if a != b {
		t.Fatal("two Gets with the same options got different servers")
	}
	c, _ := ss.Get(Options{Root: link, Precompressed: []string{}})
	if c == a {
		t.Fatal("other options got the same server")
	}
	ss.Put(c)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("r2", link); err != nil {
		t.Fatal(err)
	}
	d, _ := ss.Get(Options{Root: link})
	if d == a {
		t.Fatal("a replaced directory got the old server")
	}
	if code, body := get(d); code != 200 || body != "r2" {
		t.Errorf("new server: %d %q, want 200 r2", code, body)
	}
	ss.Put(a)
	if code, body := get(b); code != 200 || body != "r1" {
		t.Errorf("old server, one user left: %d %q, want 200 r1", code, body)
	}
	if n := ss.Open(); n != 2 {
		t.Errorf("%d servers open, want 2", n)
	}
	ss.Put(b)
	if code, _ := get(b); code != http.StatusServiceUnavailable {
		t.Errorf("old server after its last Put: %d, want 503 (closed)", code)
	}
	ss.Put(d)
	ss.Put(d) // a Put too many is ignored
	if n := ss.Open(); n != 0 {
		t.Errorf("%d servers open after every Put, want 0", n)
	}
}
