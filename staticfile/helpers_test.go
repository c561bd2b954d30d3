package staticfile

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is an injected clock for the open-file cache.
type testClock struct{ ns atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time                   { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *testClock) opts(o Options) Options           { o.Now = c.Now; return o }
func mtime(offset time.Duration) time.Time            { return baseTime.Add(offset) }
func writeFile(t testing.TB, root, name, body string) { writeFileAt(t, root, name, body, baseTime) }

var baseTime = time.Date(2025, 5, 1, 10, 0, 0, 123456789, time.UTC)

// writeFileAt writes root/name with the given content and modification
// time, creating directories.
func writeFileAt(t testing.TB, root, name, body string, mt time.Time) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes a new version of root/name beside it and renames it
// over the old one, as a deploy does (a new inode).
func replaceFile(t *testing.T, root, name, body string, mt time.Time) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	tmp := p + ".tmp-replace"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// newServer builds a Server over root and serves it on a real loopback
// HTTP server; both are closed when the test ends.
func newServer(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs
}

// response is what a test reads back from one request.
type response struct {
	status int
	header http.Header
	body   string
}

// client returns an HTTP client that leaves Accept-Encoding and bodies
// alone (no transparent gzip) and does not follow redirects.
func client(hs *httptest.Server) *http.Client {
	c := hs.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// do sends method path with the header lines given as "Name: value".
func do(t *testing.T, hs *httptest.Server, method, path string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, hs.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	res, err := client(hs).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func get(t *testing.T, hs *httptest.Server, path string, hdr ...string) response {
	t.Helper()
	return do(t, hs, http.MethodGet, path, hdr...)
}
