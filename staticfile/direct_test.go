package staticfile

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// directRoot writes the files the direct-path tests serve: a hashed CSS
// with .br and .gz siblings, a plain text file without siblings, an empty
// file and one whose time is the Unix epoch (no Last-Modified).
func directRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	css := strings.Repeat("body{color:red}\n", 128) // 2 KiB
	writeFile(t, root, "css/app.3f2a1b9c4d5e.css", css)
	writeFileAt(t, root, "css/app.3f2a1b9c4d5e.css.br", "br-bytes", baseTime.Add(time.Second))
	writeFileAt(t, root, "css/app.3f2a1b9c4d5e.css.gz", "gz-bytes!", baseTime.Add(time.Second))
	writeFile(t, root, "robots.txt", "User-agent: *\nDisallow:\n")
	writeFile(t, root, "empty.css", "")
	writeFileAt(t, root, "epoch.js", "var x = 1;\n", time.Unix(0, 0))
	return root
}

// presetHandler serves through s, first setting the response headers a
// wrapping handler (the proxy) may have set already, as the request's
// X-Preset asks: "vary" sets Vary: Origin, "encoding" sets
// Content-Encoding: gzip (ServeContent then leaves Content-Length out).
// A path under /accel/ is served with ServeRedirect and a backend header.
func presetHandler(s *Server) http.Handler {
	backend := http.Header{
		"Content-Type":        {"application/pdf"},
		"Content-Disposition": {`attachment; filename="a.pdf"`},
		"Set-Cookie":          {"a=b"},
		"X-Other":             {"dropped"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Preset") {
		case "vary":
			w.Header().Set("Vary", "Origin")
		case "encoding":
			w.Header().Set("Content-Encoding", "gzip")
		}
		if name, ok := strings.CutPrefix(r.URL.Path, "/accel/"); ok {
			s.ServeRedirect(w, r, name, backend)
			return
		}
		s.ServeHTTP(w, r)
	})
}

// TestDirectMatchesServeContent: the direct path answers a plain GET or
// HEAD of a file in memory with exactly the status, headers and body that
// http.ServeContent gave before it existed, and conditional and Range
// requests (which go to ServeContent) still answer 304, 412 and 206. Two
// servers over one directory, one with every response forced through
// ServeContent, are asked the same requests over real HTTP.
func TestDirectMatchesServeContent(t *testing.T) {
	t.Parallel()
	root := directRoot(t)
	direct, err := New(Options{Root: root})
	must(t, err)
	via, err := New(Options{Root: root})
	must(t, err)
	via.viaServeContent = true
	hd, hv := httptest.NewServer(presetHandler(direct)), httptest.NewServer(presetHandler(via))
	t.Cleanup(func() {
		hd.Close()
		hv.Close()
		direct.Close()
		via.Close()
	})

	const css = "/css/app.3f2a1b9c4d5e.css"
	first := get(t, hd, css)
	etag, lm := first.header.Get("Etag"), first.header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no validators: Etag %q, Last-Modified %q", etag, lm)
	}

	plain := []struct {
		path string
		hdr  []string
	}{
		{css, nil},
		{css, []string{"Accept-Encoding: gzip, deflate, br, zstd"}},
		{css, []string{"Accept-Encoding: gzip"}},
		{css, []string{"Accept-Encoding: br;q=0, gzip;q=0"}},
		{css, []string{"X-Preset: vary", "Accept-Encoding: br"}},
		{css, []string{"X-Preset: encoding"}},
		{"/robots.txt", nil},
		{"/robots.txt", []string{"Accept-Encoding: br"}},
		{"/empty.css", nil},
		{"/epoch.js", nil},
		{"/accel" + css, nil},
		{"/accel" + css, []string{"Accept-Encoding: br"}},
	}
	conditional := []struct {
		path string
		hdr  []string
		want int
	}{
		{css, []string{"If-None-Match: " + etag}, http.StatusNotModified},
		{css, []string{"If-Modified-Since: " + lm}, http.StatusNotModified},
		{css, []string{"If-Match: \"other\""}, http.StatusPreconditionFailed},
		{css, []string{"If-Unmodified-Since: " + baseTime.Add(-time.Hour).UTC().Format(http.TimeFormat)}, http.StatusPreconditionFailed},
		{css, []string{"Range: bytes=0-9"}, http.StatusPartialContent},
		{css, []string{"Range: bytes=0-9", "Accept-Encoding: br"}, http.StatusPartialContent},
		{css, []string{"Range: bytes=0-9", "If-Range: \"other\""}, http.StatusOK},
		{css, []string{"Range: bytes=0-9", "If-Range: " + etag}, http.StatusPartialContent},
		{css, []string{"Range: bytes=99999-"}, http.StatusRequestedRangeNotSatisfiable},
		{css, []string{"If-None-Match: \"other\""}, http.StatusOK},
		{"/accel" + css, []string{"If-None-Match: " + etag}, http.StatusNotModified},
	}

	compare := func(method, path string, hdr []string) response {
		t.Helper()
		d, v := do(t, hd, method, path, hdr...), do(t, hv, method, path, hdr...)
		d.header.Del("Date")
		v.header.Del("Date")
		if d.status != v.status || !reflect.DeepEqual(d.header, v.header) || d.body != v.body {
			t.Errorf("%s %s %q:\ndirect:        %d %v %q\nServeContent:  %d %v %q",
				method, path, hdr, d.status, d.header, d.body, v.status, v.header, v.body)
		}
		return d
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		for _, tc := range plain {
			if r := compare(m, tc.path, tc.hdr); r.status != http.StatusOK {
				t.Errorf("%s %s %q: %d, want 200", m, tc.path, tc.hdr, r.status)
			}
		}
		for _, tc := range conditional {
			if r := compare(m, tc.path, tc.hdr); r.status != tc.want {
				t.Errorf("%s %s %q: %d, want %d", m, tc.path, tc.hdr, r.status, tc.want)
			}
		}
	}
}

// writeCountConn counts the writes and ReadFroms net/http makes on a
// connection (each at least one system call), before making them.
type writeCountConn struct {
	*net.TCPConn
	writes, readFroms *atomic.Int64
}

func (c *writeCountConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

func (c *writeCountConn) ReadFrom(r io.Reader) (int64, error) {
	c.readFroms.Add(1)
	return c.TCPConn.ReadFrom(r)
}

type writeCountListener struct {
	net.Listener
	writes, readFroms *atomic.Int64
}

func (l writeCountListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeCountConn{TCPConn: c.(*net.TCPConn), writes: l.writes, readFroms: l.readFroms}, nil
}

// TestDirectOneWrite: a small file from memory leaves in one write on the
// connection, its head and body together. Through http.ServeContent it
// took two (net/http's ReadFrom writes the head with the first 512 bytes,
// then hands the rest to the connection's ReadFrom).
func TestDirectOneWrite(t *testing.T) {
	t.Parallel()
	root := directRoot(t)
	s, err := New(Options{Root: root})
	must(t, err)
	var writes, readFroms atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	hs := &httptest.Server{
		Listener: writeCountListener{Listener: ln, writes: &writes, readFroms: &readFroms},
		Config:   &http.Server{Handler: s},
	}
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	for _, ae := range []string{"", "br"} {
		for range 3 { // the first request also fills the cache
			writes.Store(0)
			readFroms.Store(0)
			r := get(t, hs, "/css/app.3f2a1b9c4d5e.css", "Accept-Encoding: "+ae)
			if r.status != 200 || (ae == "" && len(r.body) != 2048) {
				t.Fatalf("Accept-Encoding %q: %d with %d bytes", ae, r.status, len(r.body))
			}
			if w, rf := writes.Load(), readFroms.Load(); w != 1 || rf != 0 {
				t.Errorf("Accept-Encoding %q: %d writes and %d ReadFroms on the connection, want 1 write", ae, w, rf)
			}
		}
	}
}

// TestServeDirectAllocs guards the direct path: a plain GET or HEAD of a
// cached small file, identity or precompressed, allocates nothing (cache
// hit, negotiation, every header value a shared slice, one Write).
func TestServeDirectAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	root := directRoot(t)
	s, err := New(Options{Root: root})
	must(t, err)
	defer s.Close()
	for _, tc := range []struct {
		name, method, ae string
	}{
		{"GET", "GET", ""},
		{"GET, a browser's Accept-Encoding, br", "GET", "gzip, deflate, br, zstd"},
		{"HEAD", "HEAD", ""},
		{"HEAD br", "HEAD", "br"},
	} {
		req := httptest.NewRequest(tc.method, "/css/app.3f2a1b9c4d5e.css", nil)
		if tc.ae != "" {
			req.Header.Set("Accept-Encoding", tc.ae)
		}
		w := &discardWriter{h: make(http.Header, 16)}
		serve := func() {
			clear(w.h)
			w.code = 0
			s.ServeHTTP(w, req)
		}
		serve()
		if w.code != 200 {
			t.Fatalf("%s: status %d", tc.name, w.code)
		}
		if allocs := testing.AllocsPerRun(200, serve); allocs != 0 {
			t.Errorf("%s: %.1f allocations per cached request, want 0", tc.name, allocs)
		}
	}
}

// BenchmarkServeSmall: the small-file paths in process (no network), a
// cached 2 KiB hashed CSS with a .br sibling: the direct path for GET,
// HEAD and a browser's Accept-Encoding, the same GET forced through
// http.ServeContent (every request's cost before the direct path), and a
// revalidation (304, through ServeContent).
func BenchmarkServeSmall(b *testing.B) {
	root := b.TempDir()
	writeFile(b, root, "css/app.3f2a1b9c4d5e.css", strings.Repeat("a", 2048))
	writeFileAt(b, root, "css/app.3f2a1b9c4d5e.css.br", strings.Repeat("b", 512), baseTime.Add(time.Second))
	s, err := New(Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, bc := range []struct {
		name, method string
		hdr          http.Header
		via          bool
	}{
		{"GET", "GET", http.Header{}, false},
		{"GET/ServeContent", "GET", http.Header{}, true},
		{"HEAD", "HEAD", http.Header{}, false},
		{"GET-br", "GET", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}, false},
		{"GET-br/ServeContent", "GET", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}, true},
		{"304", "GET", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "If-None-Match": {"*"}}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s.viaServeContent = bc.via
			defer func() { s.viaServeContent = false }()
			req := httptest.NewRequest(bc.method, "/css/app.3f2a1b9c4d5e.css", nil)
			req.Header = bc.hdr
			w := &discardWriter{h: make(http.Header, 16)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				s.ServeHTTP(w, req)
			}
			if want := 200; bc.name == "304" {
				if w.code != 304 {
					b.Fatalf("status %d, want 304", w.code)
				}
			} else if w.code != want {
				b.Fatalf("status %d, want %d", w.code, want)
			}
		})
	}
}
