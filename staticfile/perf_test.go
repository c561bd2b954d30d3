package staticfile

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// readFromConn is a TCP conn that notes what net/http hands to its
// ReadFrom (the path to sendfile) before passing it on.
type readFromConn struct {
	*net.TCPConn
	seen func(r io.Reader)
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.seen(r)
	return c.TCPConn.ReadFrom(r)
}

type readFromListener struct {
	net.Listener
	seen func(r io.Reader)
}

func (l readFromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readFromConn{TCPConn: c.(*net.TCPConn), seen: l.seen}, nil
}

// TestSendfilePath: over plaintext HTTP/1, net/http passes the file's own
// *os.File (inside the io.LimitedReader of http.ServeContent) to the TCP
// conn's ReadFrom, which is where Go uses sendfile(2). A reader wrapped in
// anything else (a SectionReader, a buffer) or a chunked response would
// lose it. This holds for precompressed variants too: they carry a
// Content-Length (see serveEntry), so the response is not chunked.
func TestSendfilePath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	big := strings.Repeat("x", 1<<20)
	writeFile(t, root, "app.js", big)
	writeFile(t, root, "app.js.br", big[:300000])
	s, err := New(Options{Root: root})
	must(t, err)
	defer s.Close()

	var mu sync.Mutex
	var seen []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	hs := &httptest.Server{
		Listener: readFromListener{Listener: ln, seen: func(r io.Reader) {
			kind := "other"
			if lr, ok := r.(*io.LimitedReader); ok {
				if _, ok := lr.R.(*os.File); ok {
					kind = "file"
				}
			}
			mu.Lock()
			seen = append(seen, kind)
			mu.Unlock()
		}},
		Config: &http.Server{Handler: s},
	}
	hs.Start()
	defer hs.Close()

	for _, tc := range []struct {
		ae   string
		size int
	}{{"", 1 << 20}, {"br", 300000}} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		hdr := []string{}
		if tc.ae != "" {
			hdr = append(hdr, "Accept-Encoding: "+tc.ae)
		}
		r := get(t, hs, "/app.js", hdr...)
		if r.status != 200 || len(r.body) != tc.size {
			t.Fatalf("Accept-Encoding %q: %d with %d bytes, want 200 with %d", tc.ae, r.status, len(r.body), tc.size)
		}
		mu.Lock()
		if len(seen) != 1 || seen[0] != "file" {
			t.Errorf("Accept-Encoding %q: the conn's ReadFrom got %v, want the *os.File once", tc.ae, seen)
		}
		mu.Unlock()
	}
}

// discardWriter is a ResponseWriter that keeps nothing, for allocation
// counts and benchmarks without a network.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// ReadFrom stands for net/http's, which copies with a pooled buffer.
func (w *discardWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// TestServeAllocs guards the cost of the responses that go through
// http.ServeContent (a revalidation, a file served from a descriptor):
// the package's own path (cache hit, negotiation, headers) allocates
// nothing; what is counted is ServeContent's (Last-Modified,
// Content-Length, Accept-Ranges, the LimitedReader of io.CopyN). A plain
// GET or HEAD of a file in memory allocates nothing at all
// (TestServeDirectAllocs).
func TestServeAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	root := t.TempDir()
	writeFile(t, root, "css/app.3f2a1b9c4d5e.css", strings.Repeat("a", 2048))
	writeFile(t, root, "css/app.3f2a1b9c4d5e.css.br", strings.Repeat("b", 512))
	mem, err := New(Options{Root: root})
	must(t, err)
	defer mem.Close()
	fds, err := New(Options{Root: root, MemoryBytes: -1})
	must(t, err)
	defer fds.Close()
	for _, tc := range []struct {
		name string
		s    *Server
		hdr  http.Header
		max  float64
	}{
		{"304", mem, http.Header{"Accept-Encoding": {"br"}, "If-None-Match": {"x"}}, 6},
		{"identity from a descriptor", fds, http.Header{}, 6},
		{"br from a descriptor", fds, http.Header{"Accept-Encoding": {"br"}}, 6},
	} {
		s := tc.s
		req := httptest.NewRequest("GET", "/css/app.3f2a1b9c4d5e.css", nil)
		req.Header = tc.hdr
		w := &discardWriter{h: make(http.Header, 16)}
		if tc.name == "304" {
			s.ServeHTTP(w, req)
			req.Header.Set("If-None-Match", w.h.Get("Etag"))
		}
		serve := func() {
			clear(w.h)
			w.code = 0
			s.ServeHTTP(w, req)
		}
		serve()
		allocs := testing.AllocsPerRun(200, serve)
		t.Logf("%s: %d, %.0f allocs per request", tc.name, w.code, allocs)
		if w.code != 200 && w.code != 304 {
			t.Fatalf("%s: status %d", tc.name, w.code)
		}
		if allocs > tc.max {
			t.Errorf("%s: %.1f allocations per cached request, want ≤ %.0f", tc.name, allocs, tc.max)
		}
	}
}

func benchmarkServe(b *testing.B, size int) {
	root := b.TempDir()
	writeFileAt(b, root, "static/app.3f2a1b9c4d5e.js", strings.Repeat("j", size), baseTime)
	s, err := New(Options{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	b.Run("inprocess", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/static/app.3f2a1b9c4d5e.js", nil)
		req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
		w := &discardWriter{h: make(http.Header, 16)}
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			clear(w.h)
			s.ServeHTTP(w, req)
		}
	})
	b.Run("loopback", func(b *testing.B) {
		hs := httptest.NewServer(s)
		defer hs.Close()
		c := hs.Client()
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			res, err := c.Get(hs.URL + "/static/app.3f2a1b9c4d5e.js")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// BenchmarkServe2KiB: a cached 2 KiB file (a small CSS).
func BenchmarkServe2KiB(b *testing.B) { benchmarkServe(b, 2<<10) }

// BenchmarkServe1MiB: a cached 1 MiB file (a JS bundle).
func BenchmarkServe1MiB(b *testing.B) { benchmarkServe(b, 1<<20) }
