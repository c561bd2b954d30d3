package staticfile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCleanName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		allowDot bool
		want     string
		dir, ok  bool
	}{
		{"", false, "", true, true},
		{"/", false, "", true, true},
		{"app.css", false, "app.css", false, true},
		{"/css/app.css", false, "css/app.css", false, true},
		{"css/", false, "css/", true, true},
		{"//etc/passwd", false, "", false, false},
		{"a//b", false, "", false, false},
		{"a/./b", false, "", false, false},
		{"./a", false, "", false, false},
		{"a/../b", false, "", false, false},
		{"..", false, "", false, false},
		{"../etc/passwd", false, "", false, false},
		{"a/..", false, "", false, false},
		{".env", false, "", false, false},
		{".git/config", false, "", false, false},
		{"a/.git/config", false, "", false, false},
		{"a/.hidden/", false, "", false, false},
		{".well-known/security.txt", false, "", false, false},
		{".well-known/security.txt", true, ".well-known/security.txt", false, true},
		{"..", true, "", false, false},
		{"a/./b", true, "", false, false},
		{"a\\..\\b", false, "", false, false},
		{"a\\b", false, "", false, false},
		{"a\x00.css", false, "", false, false},
		{"a.css\x00", false, "", false, false},
		{"a..b.css", false, "a..b.css", false, true},
		{"a./b", false, "a./b", false, true},
	} {
		got, dir, ok := cleanName(tc.in, tc.allowDot)
		if got != tc.want || dir != tc.dir || ok != tc.ok {
			t.Errorf("cleanName(%q, %v) = %q, %v, %v; want %q, %v, %v", tc.in, tc.allowDot, got, dir, ok, tc.want, tc.dir, tc.ok)
		}
	}
}

// TestRefused requests, over HTTP, every kind of name and file the server
// must not serve, next to a control that it does serve.
func TestRefused(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "static")
	outside := filepath.Join(base, "secret")
	writeFile(t, outside, "passwd", "SECRET")
	writeFile(t, root, "ok.css", "fine")
	writeFile(t, root, "sub/ok.css", "fine")
	writeFile(t, root, ".env", "SECRET")
	writeFile(t, root, ".git/config", "SECRET")
	writeFile(t, root, "sub/.htpasswd", "SECRET")
	writeFile(t, root, "a..b.css", "fine")
	must(t, os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(root, "abs-out")))
	must(t, os.Symlink("../secret/passwd", filepath.Join(root, "rel-out")))
	must(t, os.Symlink(outside, filepath.Join(root, "dir-out")))
	must(t, os.Symlink("ok.css", filepath.Join(root, "link-in.css")))
	must(t, os.Symlink("../ok.css", filepath.Join(root, "sub/link-up.css")))
	must(t, os.Symlink("sub", filepath.Join(root, "dirlink")))
	must(t, os.Symlink("nowhere", filepath.Join(root, "dangling")))
	must(t, os.Symlink("loop2", filepath.Join(root, "loop1")))
	must(t, os.Symlink("loop1", filepath.Join(root, "loop2")))
	must(t, os.Symlink(".env", filepath.Join(root, "to-dotfile")))
	must(t, os.Symlink(filepath.Join(root, "ok.css"), filepath.Join(root, "abs-in.css")))

	_, hs := newServer(t, Options{Root: root})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/ok.css", 200},
		{"/sub/ok.css", 200},
		{"/a..b.css", 200},
		{"/link-in.css", 200},     // symlink inside the root: followed
		{"/sub/link-up.css", 200}, // ".." in a symlink target that stays inside
		{"/dirlink/ok.css", 200},
		{"/to-dotfile", 200}, // the admin's link; the dot rule is about request names
		{"/.env", 404},
		{"/.git/config", 404},
		{"/sub/.htpasswd", 404},
		{"/%2egit/config", 404},
		{"/sub/../.env", 404},
		{"/../secret/passwd", 404},
		{"/sub/%2e%2e/%2e%2e/secret/passwd", 404},
		{"/..%2fsecret%2fpasswd", 404},
		{"/sub%5c..%5c.env", 404},
		{"/ok.css%00.png", 404},
		{"//ok.css", 404},
		{"/abs-out", 404}, // symlinks leaving the root: refused by os.Root
		{"/rel-out", 404},
		{"/dir-out/passwd", 404},
		{"/abs-in.css", 404}, // absolute links are refused even when they point inside
		{"/dangling", 404},
		{"/loop1", 404},
		{"/sub", 404}, // a directory: no listing
		{"/sub/", 404},
		{"/", 404},
		{"/ok.css/", 404},
		{"/missing.css", 404},
	} {
		r := get(t, hs, tc.path)
		if r.status != tc.want {
			t.Errorf("GET %s = %d %q, want %d", tc.path, r.status, r.body, tc.want)
		}
		if tc.want == 404 && r.body != "Not Found\n" {
			t.Errorf("GET %s: body %q, want the plain 404 page", tc.path, r.body)
		}
	}

	// The same names passed straight to Serve, as a caller that did not
	// normalise the path would.
	s, err := New(Options{Root: root})
	must(t, err)
	defer s.Close()
	for _, name := range []string{"../secret/passwd", "sub/../../secret/passwd", "..\\secret\\passwd", "/../secret/passwd", ".env", "abs-out", "sub/../.env", "\x00"} {
		rec := httptest.NewRecorder()
		s.Serve(rec, httptest.NewRequest("GET", "/", nil), name)
		if rec.Code != 404 || rec.Body.String() == "SECRET" {
			t.Errorf("Serve(%q) = %d %q, want 404", name, rec.Code, rec.Body.String())
		}
	}
}

// TestDotFilesAllowed: with AllowDotFiles, dot segments are served, but
// "." and ".." still are not.
func TestDotFilesAllowed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, ".well-known/security.txt", "Contact: x")
	_, hs := newServer(t, Options{Root: root, AllowDotFiles: true})
	if r := get(t, hs, "/.well-known/security.txt"); r.status != 200 || r.body != "Contact: x" {
		t.Errorf("GET /.well-known/security.txt = %d %q, want 200", r.status, r.body)
	}
	if r := get(t, hs, "/.well-known/../.well-known/security.txt"); r.status != 404 {
		t.Errorf("GET with .. = %d, want 404", r.status)
	}
}

// TestUnreadable: a file the server may not read is 404, not 500, and
// does not reveal itself.
func TestUnreadable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	root := t.TempDir()
	writeFile(t, root, "private.txt", "SECRET")
	must(t, os.Chmod(filepath.Join(root, "private.txt"), 0))
	_, hs := newServer(t, Options{Root: root})
	if r := get(t, hs, "/private.txt"); r.status != 404 {
		t.Errorf("GET /private.txt = %d %q, want 404", r.status, r.body)
	}
}

// getWithin fails the test if the request takes longer than d: a server
// that blocked on a FIFO would hang here.
func getWithin(t *testing.T, hs *httptest.Server, path string, d time.Duration, hdr ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", hs.URL+path, nil)
	must(t, err)
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	res, err := client(hs).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v (blocked?)", path, err)
	}
	res.Body.Close()
	return response{status: res.StatusCode, header: res.Header}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
