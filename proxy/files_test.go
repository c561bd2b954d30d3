package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/sendbound"
	"github.com/gatehouse-proxy/gatehouse/staticfile"
)

// fileTree writes the files of the file-route tests under dir: a hashed
// stylesheet with a gzip sibling, a plain file, a dot-file, a directory
// with an index, a protected download, and a 404 page.
func fileTree(t *testing.T) (dir string, css, pdf []byte) {
	t.Helper()
	dir = t.TempDir()
	css = bytes.Repeat([]byte("body { color: #333; }\n"), 100)
	pdf = bytes.Repeat([]byte("%PDF-1.7 protected bytes\n"), 4000) // 100 KB: sent with sendfile
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(css)
	zw.Close()
	files := map[string][]byte{
		"static/app.3f2a1b9c4d5e.css":    css,
		"static/app.3f2a1b9c4d5e.css.gz": gz.Bytes(),
		"static/plain.txt":               []byte("plain\n"),
		"static/.env":                    []byte("SECRET=1\n"),
		"static/docs/index.html":         []byte("<p>docs</p>\n"),
		"private/report.pdf":             pdf,
		"pages/404.html":                 []byte("<p>not here; quote $request_id</p>\n"),
		"root/robots.txt":                []byte("User-agent: *\n"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The sibling must not be older than its file.
	now := time.Now()
	os.Chtimes(filepath.Join(dir, "static/app.3f2a1b9c4d5e.css"), now, now.Add(-time.Minute))
	return dir, css, pdf
}

// fileConfig is a site with a CSP rule, a 404 page, /static/ (alias),
// /protected/ (internal), /robots.txt from a root with the backend as
// fallback for the rest of /, and upstream app at backend.
func fileConfig(dir, backend, upstreamExtra, siteExtra string) string {
	return fmt.Sprintf(`
[listeners.https]
address = ""
[timeouts]
send = "2s"
[sites.a]
hosts = ["a.example"]
tls = "off"
access_log = "stderr"
error_pages = { 404 = %[1]q }
%[4]s
[sites.a.response_headers]
set = { Content-Security-Policy = "default-src 'self'" }
[[sites.a.routes]]
path = "/static/"
alias = %[2]q
index = ["index.html"]
[[sites.a.routes]]
path = "/protected/"
alias = %[3]q
internal = true
[[sites.a.routes]]
path = "/"
root = %[5]q
upstream = "app"
[upstreams.app]
retries = 0
%[6]s
servers = [{ name = "s", address = %[7]q }]
`, filepath.Join(dir, "pages/404.html"), filepath.Join(dir, "static"), filepath.Join(dir, "private"), siteExtra,
		filepath.Join(dir, "root"), upstreamExtra, backend)
}

// fileClient does not ask for gzip by itself (so that the tests choose
// Accept-Encoding) and follows no redirect.
func fileClient(c *http.Client) *http.Client {
	tr := c.Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// fileDo sends a request for a.example and returns the response with its
// body read.
func fileDo(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a.example"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

const csp = "default-src 'self'"

// TestFileRoute (issue 14.1, 14.4, 14.5): a file route serves the
// directory with staticfile's headers (hashed name immutable, 304, 206,
// precompressed sibling), through the site's rules: the header rules and
// the request ID are on every answer, and the file server's 404 is the
// site's error page with the request ID in it.
func TestFileRoute(t *testing.T) {
	dir, css, _ := fileTree(t)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s %s", r.Method, r.URL.Path)
	}))
	defer be.Close()
	f := newFwdEdge(t, fileConfig(dir, be.Listener.Addr().String(), "", ""))
	base, c0 := f.serve(t, false)
	c := fileClient(c0)

	resp, body := fileDo(t, c, "GET", base+"/static/app.3f2a1b9c4d5e.css", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, css) {
		t.Fatalf("hashed CSS: %d, %d bytes; want 200 with the file", resp.StatusCode, len(body))
	}
	for k, want := range map[string]string{
		"Cache-Control":           "public, max-age=31536000, immutable",
		"Content-Type":            "text/css; charset=utf-8",
		"Content-Security-Policy": csp,
		"X-Content-Type-Options":  "nosniff",
		"Vary":                    "Accept-Encoding",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("hashed CSS: %s = %q, want %q", k, got, want)
		}
	}
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 32 {
		t.Errorf("X-Request-Id = %q, want 32 hex digits", id)
	}
	etag := resp.Header.Get("Etag")

	resp, body = fileDo(t, c, "GET", base+"/static/app.3f2a1b9c4d5e.css", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("revalidation: %d, %d bytes, CSP %q; want 304 with the CSP", resp.StatusCode, len(body), resp.Header.Get("Content-Security-Policy"))
	}
	resp, body = fileDo(t, c, "GET", base+"/static/app.3f2a1b9c4d5e.css", map[string]string{"Range": "bytes=0-9"})
	if resp.StatusCode != 206 || string(body) != string(css[:10]) {
		t.Errorf("range: %d %q; want 206 %q", resp.StatusCode, body, css[:10])
	}
	resp, body = fileDo(t, c, "GET", base+"/static/app.3f2a1b9c4d5e.css", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %d, Content-Encoding %q; want the .gz sibling", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr); !bytes.Equal(plain, css) {
		t.Error("the .gz sibling does not decompress to the file")
	}

	resp, body = fileDo(t, c, "GET", base+"/static/docs/", nil)
	if resp.StatusCode != 200 || string(body) != "<p>docs</p>\n" {
		t.Errorf("index: %d %q", resp.StatusCode, body)
	}
	resp, _ = fileDo(t, c, "GET", base+"/static/docs", nil)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "./docs/" {
		t.Errorf("directory without slash: %d Location %q, want 301 ./docs/", resp.StatusCode, resp.Header.Get("Location"))
	}

	for _, p := range []string{"/static/missing.css", "/static/.env", "/static/", "/static/app.3f2a1b9c4d5e.css/x"} {
		resp, body = fileDo(t, c, "GET", base+p, nil)
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != 404 || string(body) != "<p>not here; quote "+id+"</p>\n" || id == "" {
			t.Errorf("%s: %d %q (request ID %q); want 404 with the site's page quoting the ID", p, resp.StatusCode, body, id)
		}
		if resp.Header.Get("Content-Security-Policy") != csp {
			t.Errorf("%s: 404 without the CSP", p)
		}
	}

	resp, _ = fileDo(t, c, "POST", base+"/static/plain.txt", nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("POST to a file: %d Allow %q CSP %q; want 405, GET, HEAD, the CSP", resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Security-Policy"))
	}

	// The internal route is not reachable by clients.
	resp, body = fileDo(t, c, "GET", base+"/protected/report.pdf", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not here") {
		t.Errorf("internal route, asked directly: %d %q; want the 404 page", resp.StatusCode, body)
	}

	// root semantics with try_files: the file, else the application.
	resp, body = fileDo(t, c, "GET", base+"/robots.txt", nil)
	if resp.StatusCode != 200 || string(body) != "User-agent: *\n" {
		t.Errorf("/robots.txt: %d %q; want the file", resp.StatusCode, body)
	}
	resp, body = fileDo(t, c, "GET", base+"/accounts/login/", nil)
	if resp.StatusCode != 200 || string(body) != "app GET /accounts/login/" || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("missing file on a route with an upstream: %d %q; want the application's answer with the CSP", resp.StatusCode, body)
	}
	resp, body = fileDo(t, c, "POST", base+"/robots.txt", nil)
	if resp.StatusCode != 200 || string(body) != "app POST /robots.txt" {
		t.Errorf("POST on a route with files and an upstream: %d %q; want the application's answer", resp.StatusCode, body)
	}

	<-f.served
	if log := f.log.String(); !strings.Contains(log, `"uri":"/static/app.3f2a1b9c4d5e.css","proto":"HTTP/1.1","status":200,"bytes":2200`) {
		t.Errorf("access log lacks the file's line with its status and bytes:\n%s", log)
	}
}

// TestFileRouteChecks (issue 14.1): the route checks of proxied requests
// apply to file routes too: allow/deny, rate-limit zones, TRACE; the
// error pages carry the site's header rules.
func TestFileRouteChecks(t *testing.T) {
	dir, _, _ := fileTree(t)
	cfg := fileConfig(dir, "127.0.0.1:9", "", "") + `
[zones.one]
rate = "1r/m"
`
	cfg = strings.Replace(cfg, "path = \"/static/\"\n", "path = \"/static/\"\nlimit = [\"one\"]\nallow_trace = true\n", 1)
	cfg = strings.Replace(cfg, "path = \"/protected/\"\n", "path = \"/protected/\"\ndeny = [\"127.0.0.1\"]\n", 1)
	cfg = strings.Replace(cfg, "internal = true\n", "internal = true\n[[sites.a.routes]]\npath = \"/denied/\"\nalias = \""+filepath.Join(dir, "static")+"\"\ndeny = [\"127.0.0.0/8\"]\n", 1)
	f := newFwdEdge(t, cfg)
	base, c0 := f.serve(t, false)
	c := fileClient(c0)

	if resp, _ := fileDo(t, c, "GET", base+"/denied/plain.txt", nil); resp.StatusCode != 403 || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("denied client: %d (CSP %q), want 403 with the CSP", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if resp, _ := fileDo(t, c, "TRACE", base+"/static/plain.txt", nil); resp.StatusCode != 405 {
		t.Errorf("TRACE on a file route (allow_trace): %d, want 405 from the file server", resp.StatusCode)
	}
	if resp, _ := fileDo(t, c, "GET", base+"/static/plain.txt", nil); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("over the zone: %d (Retry-After %q, CSP %q), want 429 with both", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Security-Policy"))
	}
}

// bigFile writes a file of n bytes under a fresh directory and returns the
// directory.
func bigFile(t *testing.T, name string, n int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte("0123456789abcdef"), n/16), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func bigFileConfig(dir, send string) string {
	return `
[listeners.https]
address = ""
[timeouts]
send = "` + send + `"
[sites.a]
hosts = ["a.example"]
tls = "off"
access_log = "stderr"
[[sites.a.routes]]
path = "/"
alias = "` + dir + `"
`
}

// TestFileSendTimeoutStalledClient (issue 14.1): a client that stops
// reading a file is cut by timeouts.send, and the request ends (logged
// 499).
func TestFileSendTimeoutStalledClient(t *testing.T) {
	dir := bigFile(t, "big.bin", 32<<20)
	f := newFwdEdge(t, bigFileConfig(dir, "300ms"))
	base, _ := f.serve(t, false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /big.bin HTTP/1.1\r\nHost: a.example\r\n\r\n")
	select {
	case <-f.served:
	case <-time.After(30 * time.Second):
		t.Fatal("the request for a 32 MiB file still runs 30 s after its client stopped reading; want it cut by the 300 ms send timeout")
	}
	if log := f.log.String(); !strings.Contains(log, `"status":499`) {
		t.Errorf("access log: want the stalled download logged 499:\n%s", log)
	}
}

// TestFileSendTimeoutIsIdle (issue 14.1): the send timeout bounds each
// write, not the download: a client that takes longer than the timeout to
// read a large file, but keeps reading, gets all of it (the file goes to
// sendfile in pieces, each under a fresh deadline).
func TestFileSendTimeoutIsIdle(t *testing.T) {
	const size = 32 << 20
	dir := bigFile(t, "big.bin", size)
	f := newFwdEdge(t, bigFileConfig(dir, "1s"))
	base, _ := f.serve(t, false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(conn, "GET /big.bin HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
	start := time.Now()
	var n int64
	buf := make([]byte, 64<<10)
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		m, err := conn.Read(buf)
		n += int64(m)
		if err != nil {
			break
		}
		time.Sleep(2 * time.Millisecond) // about 32 MiB/s at most: well over a second for the file
	}
	took := time.Since(start)
	if n < size {
		t.Fatalf("read %d bytes in %v, want the whole %d-byte file (and its head): the download was cut", n, took, size)
	}
	if took < time.Second {
		t.Logf("the download took %v, less than the 1 s send timeout: this run proves little", took)
	}
}

// TestFileServersSurviveReload: a reload that keeps a file route keeps its
// server (no request of the old generation meets a closed one); a removed
// route's server is closed with the last generation using it.
func TestFileServersSurviveReload(t *testing.T) {
	dir, _, _ := fileTree(t)
	fs := staticfile.NewServers()
	build := func(text string) *Runtime {
		cfg := mustParse(t, text)
		rt, err := Build(t.Context(), cfg, Deps{Files: fs})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	text := fileConfig(dir, "127.0.0.1:9", "", "")
	a := build(text)
	b := build(text)
	if a.sites[0].routes[0].files != b.sites[0].routes[0].files {
		t.Fatal("two generations of the same file route got different servers")
	}
	a.Close()
	e := NewEdge(EdgeOptions{})
	defer e.Close()
	e.Swap(b)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/static/plain.txt", nil)
	r.Host = "a.example"
	e.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("after the old generation closed: %d, want 200 (the server is shared)", w.Code)
	}
	b.Close()
	if n := fs.Open(); n != 0 {
		t.Errorf("%d servers left open after every generation closed", n)
	}
}

// TestFileServerNewDirectory: a directory replaced under the same path (a
// symlink flipped to a new release) gets a new server at the next build.
func TestFileServerNewDirectory(t *testing.T) {
	base := t.TempDir()
	for _, rel := range []string{"r1", "r2"} {
		os.MkdirAll(filepath.Join(base, rel), 0o755)
		os.WriteFile(filepath.Join(base, rel, "v.txt"), []byte(rel), 0o644)
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink("r1", link); err != nil {
		t.Fatal(err)
	}
	fs := staticfile.NewServers()
	text := bigFileConfig(link, "10s")
	get := func(rt *Runtime) string {
		e := NewEdge(EdgeOptions{})
		defer e.Close()
		e.Swap(rt)
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v.txt", nil)
		r.Host = "a.example"
		e.ServeHTTP(w, r)
		return w.Body.String()
	}
	a, err := Build(t.Context(), mustParse(t, text), Deps{Files: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := get(a); got != "r1" {
		t.Fatalf("first release: %q", got)
	}
	os.Remove(link)
	os.Symlink("r2", link)
	b, err := Build(t.Context(), mustParse(t, text), Deps{Files: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := get(b); got != "r2" {
		t.Errorf("after the symlink moved and a reload: %q, want r2", got)
	}
	if got := get(a); got != "r1" {
		t.Errorf("the old generation: %q, want r1 (its server stays open until it closes)", got)
	}
}

// TestFileServerReplacedStaysForItsUsers: a server whose directory was
// replaced stays open while any generation still uses it, not only until
// the first of them closes.
func TestFileServerReplacedStaysForItsUsers(t *testing.T) {
	base := t.TempDir()
	for _, rel := range []string{"r1", "r2"} {
		os.MkdirAll(filepath.Join(base, rel), 0o755)
		os.WriteFile(filepath.Join(base, rel, "v.txt"), []byte(rel), 0o644)
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink("r1", link); err != nil {
		t.Fatal(err)
	}
	fs := staticfile.NewServers()
	text := bigFileConfig(link, "10s")
	build := func() *Runtime {
		rt, err := Build(t.Context(), mustParse(t, text), Deps{Files: fs})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	get := func(rt *Runtime) (int, string) {
		e := NewEdge(EdgeOptions{})
		defer e.Close()
		e.Swap(rt)
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v.txt", nil)
		r.Host = "a.example"
		e.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	a, b := build(), build() // two generations on r1 (a reload, a failed apply ...)
	defer b.Close()
	os.Remove(link)
	os.Symlink("r2", link)
	c := build()
	defer c.Close()
	a.Close()
	if code, body := get(b); code != 200 || body != "r1" {
		t.Errorf("a generation still using the replaced directory: %d %q, want 200 r1", code, body)
	}
	if code, body := get(c); code != 200 || body != "r2" {
		t.Errorf("the new generation: %d %q, want 200 r2", code, body)
	}
}

func mustParse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return cfg
}

// TestFileDefaultsAgree: config's defaults for the open-file cache are
// staticfile's, and config refuses in header rules exactly the names
// staticfile calls proxy instructions.
func TestFileDefaultsAgree(t *testing.T) {
	if config.DefaultOpenFileCacheEntries != staticfile.DefaultCacheEntries ||
		config.DefaultOpenFileCacheValid != staticfile.DefaultCacheValid ||
		config.DefaultOpenFileCacheInactive != staticfile.DefaultCacheInactive ||
		config.DefaultOpenFileCacheMemory != staticfile.DefaultMemoryBytes {
		t.Error("config's open_file_cache defaults differ from staticfile's")
	}
	for _, name := range []string{"X-Accel-Redirect", "X-Accel-Buffering", "X-Accel-Expires", "X-Accel-Anything",
		"X-Sendfile", "X-Sendfile-Type", "X-Lighttpd-Send-File", "X-Accelerated", "X-Send"} {
		_, err := config.Parse([]byte(`
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
response_headers.set = { ` + name + ` = "x" }
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`))
		if refused := err != nil; refused != staticfile.IsAccelHeader(name) {
			t.Errorf("%s: config refuses it in a rule: %v (%v); staticfile.IsAccelHeader: %v", name, refused, err, staticfile.IsAccelHeader(name))
		}
	}
}

// TestFileRouteHTTP2: over HTTP/2 (no ReadFrom, no sendfile) a large file
// and a small one arrive whole, with the route's rules.
func TestFileRouteHTTP2(t *testing.T) {
	dir, css, _ := fileTree(t)
	f := newFwdEdge(t, fileConfig(dir, "127.0.0.1:9", "x_accel_redirect = true", ""))
	base, c0 := f.serve(t, true)
	c := fileClient(c0)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	for path, want := range map[string][]byte{"/static/app.3f2a1b9c4d5e.css": css, "/static/plain.txt": []byte("plain\n")} {
		resp, body := fileDo(t, c, "GET", base+path, nil)
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Content-Security-Policy") != csp {
			t.Errorf("%s over %s: %d, %d bytes, CSP %q", path, resp.Proto, resp.StatusCode, len(body), resp.Header.Get("Content-Security-Policy"))
		}
	}
	big := bigFile(t, "big.bin", 4<<20)
	f2 := newFwdEdge(t, bigFileConfig(big, "10s"))
	base2, c2 := f2.serve(t, true)
	resp, body := fileDo(t, fileClient(c2), "GET", base2+"/big.bin", nil)
	if resp.StatusCode != 200 || len(body) != 4<<20 {
		t.Errorf("4 MiB over %s: %d, %d bytes", resp.Proto, resp.StatusCode, len(body))
	}
}

// readFromConn records what net/http passes to the TCP conn's ReadFrom,
// where Go uses sendfile(2).
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

// TestFileSendfilePath (issue 14.1): through the proxy's file writer, a
// large file still reaches the TCP conn's ReadFrom as an *os.File inside
// an *io.LimitedReader (what sendfile takes), in pieces of at most
// sendbound.FileChunk that add up to the file.
func TestFileSendfilePath(t *testing.T) {
	const size = 1 << 20
	dir := bigFile(t, "app.js", size)
	f := newFwdEdge(t, bigFileConfig(dir, "10s"))
	var mu sync.Mutex
	var pieces []int64
	others := 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: readFromListener{Listener: ln, seen: func(r io.Reader) {
		mu.Lock()
		defer mu.Unlock()
		if lr, ok := r.(*io.LimitedReader); ok {
			if _, ok := lr.R.(*os.File); ok {
				pieces = append(pieces, lr.N)
				return
			}
		}
		others++
	}}, Config: &http.Server{Handler: f}}
	hs.Start()
	defer hs.Close()
	resp, body := fileDo(t, hs.Client(), "GET", hs.URL+"/app.js", nil)
	if resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("%d, %d bytes", resp.StatusCode, len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	var sum int64
	for _, n := range pieces {
		if n > sendbound.FileChunk {
			t.Errorf("a piece of %d bytes, more than sendbound.FileChunk", n)
		}
		sum += n
	}
	// net/http writes the first 512 bytes itself, then hands over the
	// rest of the first piece.
	if others != 0 || sum != size-512 || len(pieces) != (size+sendbound.FileChunk-1)/sendbound.FileChunk {
		t.Errorf("the conn's ReadFrom got %d file pieces adding to %d (and %d other readers); want %d adding to %d",
			len(pieces), sum, others, (size+sendbound.FileChunk-1)/sendbound.FileChunk, size-512)
	}
}

// TestAccelHeaderAgrees: the proxy's quick test gives staticfile's answer.
func TestAccelHeaderAgrees(t *testing.T) {
	for _, k := range []string{"X-Accel-", "X-Accel-Redirect", "x-accel-buffering", "X-Sendfile", "X-Sendfile-Type",
		"X-Lighttpd-Send-File", "X-Accel", "Content-Type", "X", "", "Y-Accel-Redirect", "X-Frame-Options"} {
		if got, want := accelHeader(k), staticfile.IsAccelHeader(k); got != want {
			t.Errorf("accelHeader(%q) = %v, staticfile.IsAccelHeader: %v", k, got, want)
		}
	}
}
