package staticfile

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// openFiles counts this process's descriptors open on files under dir
// (Linux: /proc/self/fd). ok is false where that cannot be read.
func openFiles(t *testing.T, dir string) (n int, ok bool) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n, true
}

func wantOpenFiles(t *testing.T, dir string, want int, when string) {
	t.Helper()
	n, ok := openFiles(t, dir)
	if !ok {
		return
	}
	if n != want {
		t.Errorf("%s: %d descriptors open on files under the root, want %d", when, n, want)
	}
}

// TestCacheInvalidation: a cached file is served from its descriptor until
// the revalidation interval has passed on the (injected) clock; then a
// change on disk gives new content and a new ETag.
func TestCacheInvalidation(t *testing.T) {
	t.Parallel()
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testCacheInvalidation(t, mode.memory)
		})
	}
}

// cacheModes: small files in memory (the default), or every file through
// descriptors.
var cacheModes = []struct {
	name   string
	memory int64
}{{"memory", 0}, {"descriptors", -1}}

func testCacheInvalidation(t *testing.T, memory int64) {
	root := t.TempDir()
	clk := newClock()
	writeFileAt(t, root, "app.css", "v1", mtime(0))
	_, hs := newServer(t, clk.opts(Options{Root: root, CacheValid: 5 * time.Second, MemoryBytes: memory}))

	r1 := get(t, hs, "/app.css")
	if r1.body != "v1" {
		t.Fatalf("first GET: %q, want v1", r1.body)
	}

	// A deploy renames a new version over the file.
	replaceFile(t, root, "app.css", "version 2", mtime(time.Minute))
	clk.Advance(4 * time.Second)
	if r := get(t, hs, "/app.css"); r.body != "v1" || r.header.Get("Etag") != r1.header.Get("Etag") {
		t.Errorf("within the interval: %q Etag %s, want the cached v1 %s", r.body, r.header.Get("Etag"), r1.header.Get("Etag"))
	}
	clk.Advance(time.Second)
	r2 := get(t, hs, "/app.css")
	if r2.body != "version 2" || r2.header.Get("Etag") == r1.header.Get("Etag") {
		t.Fatalf("after the interval: %q Etag %s, want version 2 with a new tag (old %s)", r2.body, r2.header.Get("Etag"), r1.header.Get("Etag"))
	}
	if r := get(t, hs, "/app.css", "If-None-Match: "+r1.header.Get("Etag")); r.status != 200 {
		t.Errorf("old tag after the change: %d, want 200", r.status)
	}

	// Rewritten in place (same inode, same size): only the time changes
	// (within the interval a descriptor would already read the new
	// bytes, so that is not checked).
	writeFileAt(t, root, "app.css", "VERSION 2", mtime(2*time.Minute))
	clk.Advance(5 * time.Second)
	r3 := get(t, hs, "/app.css")
	if r3.body != "VERSION 2" || r3.header.Get("Etag") == r2.header.Get("Etag") {
		t.Errorf("in-place rewrite: %q Etag %s, want VERSION 2 with a new tag (old %s)", r3.body, r3.header.Get("Etag"), r2.header.Get("Etag"))
	}

	// A precompressed sibling appears, then goes.
	writeFileAt(t, root, "app.css.gz", "GZ", mtime(3*time.Minute))
	if r := get(t, hs, "/app.css", "Accept-Encoding: gzip"); r.body != "VERSION 2" {
		t.Errorf("new sibling within the interval: %q, want VERSION 2 (not yet seen)", r.body)
	}
	clk.Advance(5 * time.Second)
	if r := get(t, hs, "/app.css", "Accept-Encoding: gzip"); r.body != "GZ" || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("new sibling after the interval: %q Vary %q, want GZ with Vary", r.body, r.header.Get("Vary"))
	}
	must(t, os.Remove(filepath.Join(root, "app.css.gz")))
	clk.Advance(5 * time.Second)
	if r := get(t, hs, "/app.css", "Accept-Encoding: gzip"); r.body != "VERSION 2" || r.header.Get("Vary") != "" {
		t.Errorf("removed sibling: %q Vary %q, want VERSION 2 without Vary", r.body, r.header.Get("Vary"))
	}

	// Removed: served from the cache until the check, then 404.
	must(t, os.Remove(filepath.Join(root, "app.css")))
	if r := get(t, hs, "/app.css"); r.status != 200 {
		t.Errorf("removed, within the interval: %d, want 200 from the cache", r.status)
	}
	clk.Advance(5 * time.Second)
	if r := get(t, hs, "/app.css"); r.status != 404 {
		t.Errorf("removed, after the interval: %d, want 404", r.status)
	}
	wantOpenFiles(t, root, 0, "after the file was removed")
}

// TestServeAt: without Options.Now the open-file cache takes the time
// ServeAt is given (the proxy passes the request's arrival) instead of
// reading the clock: a cached file changed on disk is served as cached
// until a request arrives after the revalidation interval.
func TestServeAt(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFileAt(t, root, "app.css", "v1", mtime(0))
	s, err := New(Options{Root: root, CacheValid: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t0 := time.Now()
	at := t0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeAt(w, r, r.URL.Path, at)
	}))
	t.Cleanup(hs.Close)
	if r := get(t, hs, "/app.css"); r.body != "v1" {
		t.Fatalf("first GET: %q, want v1", r.body)
	}
	replaceFile(t, root, "app.css", "version 2", mtime(time.Minute))
	at = t0.Add(59 * time.Minute)
	if r := get(t, hs, "/app.css"); r.body != "v1" {
		t.Errorf("arrived within the interval: %q, want the cached v1", r.body)
	}
	at = t0.Add(time.Hour)
	if r := get(t, hs, "/app.css"); r.body != "version 2" {
		t.Errorf("arrived after the interval: %q, want version 2", r.body)
	}
}

// TestCacheValidNegative: CacheValid < 0 checks the disk on every request.
func TestCacheValidNegative(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFileAt(t, root, "a.txt", "one", mtime(0))
	_, hs := newServer(t, Options{Root: root, CacheValid: -1, Now: newClock().Now})
	get(t, hs, "/a.txt")
	replaceFile(t, root, "a.txt", "two", mtime(time.Second))
	if r := get(t, hs, "/a.txt"); r.body != "two" {
		t.Errorf("CacheValid -1: %q after a change, want two at once", r.body)
	}
}

// TestCacheConcurrentReplace: readers over HTTP while the file is replaced
// again and again, and the clock runs past the revalidation interval after
// each replacement. Every response must be one whole version whose
// ETag and length belong to it. Run with -race.
func TestCacheConcurrentReplace(t *testing.T) {
	t.Parallel()
	for _, mode := range cacheModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testCacheConcurrentReplace(t, mode.memory)
		})
	}
}

func testCacheConcurrentReplace(t *testing.T, memory int64) {
	root := t.TempDir()
	clk := newClock()
	version := func(k int) (string, time.Time) {
		head := fmt.Sprintf("v=%04d;", k)
		return head + strings.Repeat(string(rune('a'+k%26)), 3000+k*37), mtime(time.Duration(k) * time.Second)
	}
	body0, mt0 := version(0)
	writeFileAt(t, root, "app.js", body0, mt0)
	_, hs := newServer(t, clk.opts(Options{Root: root, CacheValid: time.Second, MemoryBytes: memory}))

	const readers, versions = 6, 60
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, readers)
	c := client(hs)
	for i := range readers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				req, _ := http.NewRequest("GET", hs.URL+"/app.js", nil)
				if i%3 == 0 {
					req.Header.Set("Range", "bytes=0-6")
				}
				res, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				if err := checkVersion(string(b), res, i%3 == 0, version); err != nil {
					errs <- fmt.Errorf("reader %d request %d: %w", i, n, err)
					return
				}
			}
		})
	}
	for k := 1; k <= versions; k++ {
		b, mt := version(k)
		replaceFile(t, root, "app.js", b, mt)
		clk.Advance(time.Second)
		// Let the readers see this version before the next one. A reader
		// may be checking the entry right now; until its stat is done,
		// other requests get the entry as it was (as in nginx), so ask
		// until the check has gone through.
		want := fmt.Sprintf("v=%04d;", k)
		var got string
		for range 1000 {
			if got = get(t, hs, "/app.js").body; strings.HasPrefix(got, want) {
				break
			}
		}
		if !strings.HasPrefix(got, want) {
			t.Errorf("after replacing with version %d and advancing the clock: still %.7q after 1000 requests", k, got)
		}
	}
	close(stop)
	wg.Wait()
	for range readers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// checkVersion checks that a response is one whole version k: its body,
// length and ETag.
func checkVersion(body string, res *http.Response, ranged bool, version func(int) (string, time.Time)) error {
	if len(body) < 7 || !strings.HasPrefix(body, "v=") {
		return fmt.Errorf("status %d, body %.20q", res.StatusCode, body)
	}
	k, err := strconv.Atoi(body[2:6])
	if err != nil {
		return fmt.Errorf("body %.20q: %w", body, err)
	}
	want, mt := version(k)
	if ranged {
		if res.StatusCode != 206 || body != want[:7] || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-6/%d", len(want)) {
			return fmt.Errorf("range: %d %q Content-Range %q, want 206 of version %d", res.StatusCode, body, res.Header.Get("Content-Range"), k)
		}
	} else if body != want {
		return fmt.Errorf("body of %d bytes is not version %d (%d bytes)", len(body), k, len(want))
	}
	tag := fmt.Sprintf(`"%x-%x"`, mt.UnixNano(), len(want))
	if got := res.Header.Get("Etag"); got != tag {
		return fmt.Errorf("version %d with Etag %s, want %s", k, got, tag)
	}
	return nil
}

// TestCacheBounded: the cache holds at most CacheEntries names, evicting
// the least recently used and closing their descriptors.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 10 {
		writeFile(t, root, fmt.Sprintf("f%d.txt", i), "x")
	}
	s, hs := newServer(t, Options{Root: root, CacheEntries: 3, MemoryBytes: -1, Now: newClock().Now})
	for i := range 10 {
		get(t, hs, fmt.Sprintf("/f%d.txt", i))
		if n := s.cache.len(); n > 3 {
			t.Fatalf("after %d files the cache holds %d names, want ≤ 3", i+1, n)
		}
	}
	wantOpenFiles(t, root, 3, "three cached names")
	// f7..f9 are cached; using f7 makes f8 the least recently used.
	get(t, hs, "/f7.txt")
	get(t, hs, "/f0.txt")
	s.cache.mu.Lock()
	_, has7 := s.cache.m["f7.txt"]
	_, has8 := s.cache.m["f8.txt"]
	s.cache.mu.Unlock()
	if !has7 || has8 {
		t.Errorf("LRU: f7 cached %v (want true), f8 cached %v (want false)", has7, has8)
	}
	hs.Close()
	s.Close()
	wantOpenFiles(t, root, 0, "after Close")
}

// TestCacheInactive: entries unused for CacheInactive are dropped (their
// descriptors closed) the next time the cache is used.
func TestCacheInactive(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		writeFile(t, root, n+".txt", n)
	}
	clk := newClock()
	s, hs := newServer(t, clk.opts(Options{Root: root, CacheInactive: time.Minute, MemoryBytes: -1}))
	get(t, hs, "/a.txt")
	get(t, hs, "/b.txt")
	clk.Advance(30 * time.Second)
	get(t, hs, "/b.txt")
	clk.Advance(45 * time.Second) // a: 75 s unused; b: 45 s
	get(t, hs, "/c.txt")
	if n := s.cache.len(); n != 2 {
		t.Errorf("cache holds %d names, want 2 (b and c)", n)
	}
	wantOpenFiles(t, root, 2, "after a was dropped")
}

// TestNoCacheClosesFiles: without a cache no descriptor outlives its
// request, including the file's own when a sibling was sent.
func TestNoCacheClosesFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "app.css", "css")
	writeFile(t, root, "app.css.br", "br")
	writeFile(t, root, "app.css.gz", "gz")
	writeFile(t, root, "docs/index.html", "index")
	s, hs := newServer(t, Options{Root: root, CacheEntries: -1, Index: []string{"index.html"}})
	if s.cache != nil {
		t.Fatal("CacheEntries -1 built a cache")
	}
	for _, ae := range []string{"br", "gzip", "identity"} {
		r := get(t, hs, "/app.css", "Accept-Encoding: "+ae)
		if r.status != 200 {
			t.Fatalf("GET with %s: %d", ae, r.status)
		}
	}
	get(t, hs, "/docs/")
	get(t, hs, "/docs")
	get(t, hs, "/app.css", "Range: bytes=0-0,2-2")
	wantOpenFiles(t, root, 0, "after requests without a cache")
}

// blockingWriter is a ResponseWriter whose first body write waits until
// released, so a request can be held in flight.
type blockingWriter struct {
	h       http.Header
	started chan struct{}
	release chan struct{}
	once    sync.Once
	n       int
}

func (w *blockingWriter) Header() http.Header { return w.h }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.started)
		<-w.release
	})
	w.n += len(p)
	return len(p), nil
}

// TestCloseWithRequestInFlight: Close does not pull a descriptor from
// under a request; it is closed when the request ends, and later requests
// get 503.
func TestCloseWithRequestInFlight(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	body := strings.Repeat("z", 100000)
	writeFile(t, root, "big.bin", body)
	writeFile(t, root, "small.txt", "s")
	s, err := New(Options{Root: root, MemoryBytes: -1})
	must(t, err)
	rec := httptest.NewRecorder()
	s.Serve(rec, httptest.NewRequest("GET", "/", nil), "small.txt")

	w := &blockingWriter{h: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(w, httptest.NewRequest("GET", "/", nil), "big.bin")
	}()
	<-w.started
	s.Close()
	wantOpenFiles(t, root, 2, "Close with a request in flight") // small.txt's idle descriptor, big.bin's borrowed one
	rec = httptest.NewRecorder()
	s.Serve(rec, httptest.NewRequest("GET", "/", nil), "small.txt")
	if rec.Code != 503 {
		t.Errorf("request after Close: %d, want 503", rec.Code)
	}
	close(w.release)
	<-done
	if w.n != len(body) {
		t.Errorf("in-flight request wrote %d bytes, want %d", w.n, len(body))
	}
	wantOpenFiles(t, root, 0, "after the last request")
}

// TestReplacedWhileBorrowed: while a request holds the cached descriptor,
// the file is replaced; a second request, before the revalidation
// interval, must open the new file and then describe it with the new
// file's metadata, not the cached one's.
func TestReplacedWhileBorrowed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFileAt(t, root, "app.css", "v1", mtime(0))
	clk := newClock()
	s, err := New(clk.opts(Options{Root: root, MemoryBytes: -1}))
	must(t, err)
	defer s.Close()
	s.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "app.css") // cached, one idle descriptor

	a := &blockingWriter{h: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(a, httptest.NewRequest("GET", "/", nil), "app.css")
	}()
	<-a.started // a holds the only descriptor

	replaceFile(t, root, "app.css", "version 2", mtime(time.Minute))
	rec := httptest.NewRecorder()
	s.Serve(rec, httptest.NewRequest("GET", "/", nil), "app.css")
	wantTag := fmt.Sprintf(`"%x-%x"`, mtime(time.Minute).UnixNano(), len("version 2"))
	if rec.Body.String() != "version 2" || rec.Header().Get("Etag") != wantTag {
		t.Errorf("second request: %q Etag %s, want version 2 with Etag %s", rec.Body.String(), rec.Header().Get("Etag"), wantTag)
	}
	close(a.release)
	<-done
	if a.n != 2 || a.h.Get("Etag") != fmt.Sprintf(`"%x-2"`, mtime(0).UnixNano()) {
		t.Errorf("first request: %d bytes, Etag %s; want v1 and its tag", a.n, a.h.Get("Etag"))
	}
}

// TestMemoryBudget: small files are kept in memory up to MemoryBytes, the
// rest go through descriptors, and the budget is given back when entries
// leave the cache.
func TestMemoryBudget(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 4 {
		writeFile(t, root, fmt.Sprintf("f%d.css", i), strings.Repeat("x", 1000))
	}
	writeFile(t, root, "big.js", strings.Repeat("y", SmallFileBytes+1))
	clk := newClock()
	s, hs := newServer(t, clk.opts(Options{Root: root, MemoryBytes: 2500, CacheInactive: time.Minute}))
	for i := range 4 {
		if r := get(t, hs, fmt.Sprintf("/f%d.css", i)); len(r.body) != 1000 {
			t.Fatalf("f%d.css: %d bytes", i, len(r.body))
		}
	}
	get(t, hs, "/big.js")
	if got := s.cache.mem.Load(); got != 2000 {
		t.Errorf("memory in use: %d bytes, want 2000 (two files of 1000 in a budget of 2500)", got)
	}
	wantOpenFiles(t, root, 3, "two small files beyond the budget and one over SmallFileBytes")
	clk.Advance(2 * time.Minute)
	get(t, hs, "/f0.css") // sweeps the others out
	if got := s.cache.mem.Load(); got != 1000 {
		t.Errorf("memory in use after the sweep: %d bytes, want 1000", got)
	}
	hs.Close()
	s.Close()
	if got := s.cache.mem.Load(); got != 0 {
		t.Errorf("memory in use after Close: %d bytes, want 0", got)
	}
}
