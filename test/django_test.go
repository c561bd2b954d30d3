package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// The Django end-to-end test (issue 14): a real Django project, collected
// with ManifestStaticFilesStorage, served by real Daphne behind Gatehouse,
// which serves its static files, its protected downloads (X-Accel-
// Redirect) and its header rules, as nginx would.
//
// Needs the Debian packages python3-django, python3-django-channels and
// python3-daphne (python3-brotli for the .br part); .ci/run installs them.

// requirePythonModule skips the test (fails it with
// GATEHOUSE_REQUIRE_TOOLS=1) when python cannot import module.
func requirePythonModule(t *testing.T, python, module, debianPackage string) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import "+module).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s cannot import %s (Debian package %s): %v %s", python, module, debianPackage, err, bytes.TrimSpace(out))
		if os.Getenv("GATEHOUSE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s, and GATEHOUSE_REQUIRE_TOOLS=1", msg)
		}
		t.Skip(msg)
	}
}

// djangoPython is the interpreter Debian's Django runs with: the one named
// by django-admin's #! line (a pyenv or venv python3 earlier in $PATH
// would not see the Debian packages).
func djangoPython(t *testing.T) string {
	t.Helper()
	admin := requireTool(t, "django-admin", "python3-django")
	f, err := os.Open(admin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 {
		t.Fatalf("%s has no #! line", admin)
	}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 {
		p, err := exec.LookPath(fields[1])
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return fields[0]
}

// djangoFiles is the project: settings with ManifestStaticFilesStorage,
// a page that links its stylesheet through {% static %} and echoes the
// request ID it was given, a protected download handed to the proxy with
// X-Accel-Redirect, an event stream (SSE) that sends its next event when
// the test acknowledges the last, and the Channels ASGI application
// Daphne serves.
//
// The stream is a Channels AsyncHttpConsumer, the Channels way of
// serving SSE, which works with every Django the Debian packages bring:
// an async view returning a StreamingHttpResponse over an async
// generator needs Django 4.2, and bookworm has 3.2.
var djangoFiles = map[string]string{
	"project/__init__.py": "",
	"project/settings.py": `
from pathlib import Path
import django
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "gatehouse-e2e-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["app.test"]
INSTALLED_APPS = ["django.contrib.staticfiles", "channels"]
MIDDLEWARE = []
ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "assets"]
if django.VERSION >= (4, 2):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
else:
    STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
USE_TZ = True
`,
	"project/views.py": `
import asyncio
from django.http import HttpResponse
from django.templatetags.static import static

def page(request):
    rid = request.META.get("HTTP_X_REQUEST_ID", "")
    items = "".join('<li><a href="/articles/%d/">Article %d</a></li>' % (i, i) for i in range(60))
    return HttpResponse(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="%s"></head>'
        '<body><p id="rid">%s</p><ul>%s</ul></body></html>' % (static("app/site.css"), rid, items))

_acks = None

def acks():
    """The events' go-aheads, in Daphne's event loop."""
    global _acks
    if _acks is None:
        _acks = asyncio.Queue()
    return _acks

async def ack(request):
    acks().put_nowait(1)
    return HttpResponse("ok")

def download(request, name):
    # What a permission-checking view does: hand the file to the proxy.
    response = HttpResponse(content_type="")
    response["Content-Disposition"] = 'attachment; filename="%s"' % name
    response["X-Accel-Redirect"] = "/protected/" + name
    return response
`,
	"project/urls.py": `
from django.urls import path
from . import views
urlpatterns = [
    path("", views.page),
    path("download/<str:name>", views.download),
    path("events/ack", views.ack),
]
`,
	"project/events.py": `
from channels.generic.http import AsyncHttpConsumer
from .views import acks

EVENTS = 5

class Events(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_headers(headers=[
            (b"Content-Type", b"text/event-stream"),
            (b"Cache-Control", b"no-cache"),
        ])
        for i in range(EVENTS):
            await self.send_body(b'id: %d\ndata: {"n": %d, "text": "event number %d"}\n\n' % (i, i, i), more_body=True)
            if i < EVENTS - 1:
                await acks().get()
        await self.send_body(b"")
`,
	"project/asgi.py": `
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
from django.core.asgi import get_asgi_application
django_asgi = get_asgi_application()
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path, re_path
from project.events import Events
application = ProtocolTypeRouter({"http": URLRouter([
    path("events/", Events.as_asgi()),
    re_path(r"", django_asgi),
])})
`,
	"assets/app/site.css": strings.Repeat("body { font-family: sans-serif; color: #222; }\n", 60),
}

// decodeContent undoes the content coding ce ("" for none) of body.
func decodeContent(ce string, body []byte) ([]byte, error) {
	var r io.Reader = bytes.NewReader(body)
	switch ce {
	case "":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	default:
		return nil, fmt.Errorf("unknown content coding %q", ce)
	}
	return io.ReadAll(r)
}

// startDaphne runs Daphne for the project in dir on a free loopback port
// and returns its address once it listens; it is killed in Cleanup.
func startDaphne(t *testing.T, python, dir string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(python, "-m", "daphne", "-b", "127.0.0.1", "-p", fmt.Sprint(port), "project.asgi:application")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=project.settings", "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
		out := &syncBuffer{}
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = io.MultiWriter(out, pw), io.MultiWriter(out, pw)
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting daphne: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			pw.Close()
			close(exited)
		}()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("daphne output:\n%s", out.String())
			}
		})
		listening := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			found := false
			for sc.Scan() {
				if !found && strings.Contains(sc.Text(), "Listening on TCP address") {
					found = true
					listening <- true
				}
			}
			if !found {
				listening <- false
			}
			io.Copy(io.Discard, pr)
		}()
		select {
		case ok := <-listening:
			if ok {
				return fmt.Sprintf("127.0.0.1:%d", port)
			}
			if attempt < 2 && strings.Contains(out.String(), "Address already in use") {
				continue // the port was taken meanwhile: another one
			}
			t.Fatalf("daphne exited before listening:\n%s", out.String())
		case <-time.After(60 * time.Second):
			t.Fatalf("daphne did not listen within 60 s:\n%s", out.String())
		}
	}
}

// TestDjangoStaticAndDownloads (issue 14 acceptance): a Django project
// with ManifestStaticFilesStorage behind Gatehouse. Its page arrives
// compressed and its SSE view streams event by event through the
// compressor; its hashed CSS is served with immutable caching, 304 on
// revalidation, 206 on a range and precompressed siblings (a compress
// step's, and gatehouse compress's) by Accept-Encoding; a protected download goes
// through X-Accel-Redirect with the file's bytes and no X-Accel-* header,
// while the internal path asked for directly is 404; a CSP set in the
// config is on the page, on a 404 file and on a 502; the request ID is in
// the Django view's response and in the access log.
func TestDjangoStaticAndDownloads(t *testing.T) {
	python := djangoPython(t)
	requirePythonModule(t, python, "django", "python3-django")
	requirePythonModule(t, python, "channels", "python3-django-channels")
	requirePythonModule(t, python, "daphne", "python3-daphne")
	dir := t.TempDir()
	proj := filepath.Join(dir, "proj")
	for name, body := range djangoFiles {
		p := filepath.Join(proj, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pdf := bytes.Repeat([]byte("%PDF-1.4 invoice 42\n"), 5000)
	for name, b := range map[string][]byte{
		"private/invoice-42.pdf": pdf,
		"pages/404.html":         []byte("<p>Not found. Request ID: $request_id</p>\n"),
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// collectstatic, as a deploy runs it.
	collect := exec.Command(python, "-m", "django", "collectstatic", "--noinput")
	collect.Dir = proj
	collect.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=project.settings", "PYTHONPATH="+proj, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := collect.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic: %v\n%s", err, out)
	}
	manifest, err := os.ReadFile(filepath.Join(proj, "staticfiles", "staticfiles.json"))
	if err != nil {
		t.Fatalf("collectstatic wrote no manifest: %v", err)
	}
	var m struct{ Paths map[string]string }
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	hashed := m.Paths["app/site.css"]
	if !regexp.MustCompile(`^app/site\.[0-9a-f]{12}\.css$`).MatchString(hashed) {
		t.Fatalf("manifest names %q for app/site.css, want a hashed name", hashed)
	}
	css, err := os.ReadFile(filepath.Join(proj, "staticfiles", hashed))
	if err != nil {
		t.Fatal(err)
	}
	// The precompressed siblings a compress step (whitenoise,
	// django-compressor) writes: .gz with Go, .br with python3-brotli.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(css)
	zw.Close()
	if err := os.WriteFile(filepath.Join(proj, "staticfiles", hashed+".gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	haveBrotli := false
	br := exec.Command(python, "-c", "import brotli, sys; sys.stdout.buffer.write(brotli.compress(sys.stdin.buffer.read()))")
	br.Stdin = bytes.NewReader(css)
	if out, err := br.Output(); err == nil && len(out) > 0 {
		haveBrotli = os.WriteFile(filepath.Join(proj, "staticfiles", hashed+".br"), out, 0o644) == nil
	} else {
		t.Logf("no brotli encoder (Debian package python3-brotli): the .br part is skipped")
	}

	// gatehouse compress, as a deploy runs it after collectstatic.
	needBinary(t)
	if out, err := exec.Command(binPath, "compress", filepath.Join(proj, "staticfiles")).CombinedOutput(); err != nil {
		t.Fatalf("gatehouse compress: %v\n%s", err, out)
	} else {
		t.Logf("gatehouse compress: %s", bytes.TrimSpace(out))
	}

	daphne := startDaphne(t, python, proj)
	deadPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	const csp = "default-src 'self'"
	g := startGatehouseIn(t, dir, plainOnly+`
[sites.app]
hosts = ["app.test"]
tls = "off"
error_pages = { 404 = "$DIR/pages/404.html" }

[sites.app.response_headers]
set = { Content-Security-Policy = "`+csp+`" }

[[sites.app.routes]]
path = "/static/"
alias = "$DIR/proj/staticfiles"

[[sites.app.routes]]
path = "/protected/"
alias = "$DIR/private"
internal = true

[[sites.app.routes]]
path = "/down/"
upstream = "down"

[[sites.app.routes]]
path = "/"
upstream = "django"

[upstreams.django]
x_accel_redirect = true
servers = [{ name = "daphne", address = "`+daphne+`" }]

[upstreams.down]
retries = 0
servers = [{ name = "gone", address = "`+deadPort+`" }]
`)
	base := "http://" + g.httpAddr
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	do := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Host = "app.test"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, b
	}

	// The page: Django's answer, with the config's CSP, linking the
	// hashed stylesheet, quoting the request ID Gatehouse gave it.
	resp, body := do("/", nil)
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != csp {
		t.Fatalf("page: %d, CSP %q\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}
	if !strings.Contains(string(body), `href="/static/`+hashed+`"`) {
		t.Errorf("page does not link the hashed stylesheet %s:\n%s", hashed, body)
	}
	if len(id) != 32 || !strings.Contains(string(body), `<p id="rid">`+id+`</p>`) {
		t.Errorf("page: request ID %q, and Django saw (in the page):\n%s", id, body)
	}
	// The page's HTML arrives compressed (issue 14.3), with the coding
	// the Accept-Encoding chooses (a browser's: the server's first, gzip),
	// and decodes to the page Django wrote; its Vary says so.
	for ae, coding := range map[string]string{"gzip, deflate, br, zstd": "gzip", "br": "br", "gzip;q=0.5, zstd": "zstd"} {
		resp, raw := do("/", map[string]string{"Accept-Encoding": ae})
		if ce := resp.Header.Get("Content-Encoding"); ce != coding || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("page with Accept-Encoding %q: Content-Encoding %q, Vary %q; want %s", ae, ce, resp.Header.Get("Vary"), coding)
			continue
		}
		page, err := decodeContent(coding, raw)
		if err != nil {
			t.Errorf("page in %s: %v", coding, err)
			continue
		}
		// The same page but for the request ID Django quoted.
		if want := strings.Replace(string(body), id, resp.Header.Get("X-Request-Id"), 1); string(page) != want {
			t.Errorf("page in %s decodes to\n%s\nwant\n%s", coding, page, want)
		}
		if len(raw) >= len(page)/2 {
			t.Errorf("page in %s: %d bytes for %d", coding, len(raw), len(page))
		}
	}
	// The SSE view's events arrive one by one through the compressor:
	// Django sends the next only once the test has decoded the last one
	// and said so, so an event held in an encoder or a buffer would stop
	// the stream (and the read's deadline would fail the test).
	sseCtx, sseCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer sseCancel()
	sseReq, _ := http.NewRequestWithContext(sseCtx, "GET", base+"/events/", nil)
	sseReq.Host = "app.test"
	sseReq.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	sse, err := c.Do(sseReq)
	if err != nil {
		t.Fatalf("GET /events/: %v", err)
	}
	defer sse.Body.Close()
	if sse.StatusCode != 200 || sse.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(sse.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("event stream: %d, Content-Type %q, Content-Encoding %q; want a gzip event stream",
			sse.StatusCode, sse.Header.Get("Content-Type"), sse.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(sse.Body)
	if err != nil {
		t.Fatalf("event stream: the first event did not arrive: %v", err)
	}
	events := bufio.NewReader(zr)
	for i := range 5 {
		var ev string
		for !strings.HasSuffix(ev, "\n\n") {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v after %q (it was not flushed through the compressor)", i, err, ev+line)
			}
			ev += line
		}
		if want := fmt.Sprintf("id: %d\ndata: {\"n\": %d, \"text\": \"event number %d\"}\n\n", i, i, i); ev != want {
			t.Fatalf("event %d: %q, want %q", i, ev, want)
		}
		if i < 4 {
			// The go-ahead, straight to Daphne.
			ack, _ := http.NewRequestWithContext(sseCtx, "GET", "http://"+daphne+"/events/ack", nil)
			ack.Host = "app.test"
			r, err := c.Do(ack)
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != 200 {
				t.Fatalf("ack %d: %d", i, r.StatusCode)
			}
		}
	}
	if rest, err := io.ReadAll(events); err != nil || len(rest) != 0 {
		t.Errorf("after the last event: %q, %v; want the coded stream's clean end", rest, err)
	}

	// The hashed stylesheet.
	resp, body = do("/static/"+hashed, nil)
	cssETag := resp.Header.Get("Etag")
	if resp.StatusCode != 200 || !bytes.Equal(body, css) {
		t.Fatalf("hashed CSS: %d, %d bytes; want the collected file", resp.StatusCode, len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("hashed CSS: Cache-Control %q, want immutable", cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("hashed CSS: Content-Type %q", ct)
	}
	etag := resp.Header.Get("Etag")
	resp, body = do("/static/"+hashed, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 || len(body) != 0 {
		t.Errorf("revalidation with %s: %d, %d bytes; want 304", etag, resp.StatusCode, len(body))
	}
	resp, body = do("/static/"+hashed, map[string]string{"Range": "bytes=5-24"})
	if resp.StatusCode != 206 || !bytes.Equal(body, css[5:25]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 5-24/%d", len(css)) {
		t.Errorf("range: %d %q (Content-Range %q); want 206 with bytes 5-24", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, body = do("/static/"+hashed, map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, gz.Bytes()) || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("Accept-Encoding: gzip: Content-Encoding %q, Vary %q, %d bytes; want the .gz sibling", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), len(body))
	}
	if haveBrotli {
		resp, _ = do("/static/"+hashed, map[string]string{"Accept-Encoding": "gzip, deflate, br"})
		if resp.Header.Get("Content-Encoding") != "br" {
			t.Errorf("Accept-Encoding: gzip, deflate, br: Content-Encoding %q, want br", resp.Header.Get("Content-Encoding"))
		}
	}
	// zstd: the sibling `gatehouse compress` wrote at deploy time (it
	// left the .gz and .br alone: not older than the file).
	resp, body = do("/static/"+hashed, map[string]string{"Accept-Encoding": "zstd"})
	if got, err := decodeContent(resp.Header.Get("Content-Encoding"), body); err != nil || resp.Header.Get("Content-Encoding") != "zstd" ||
		!bytes.Equal(got, css) || !strings.HasSuffix(resp.Header.Get("Etag"), `-zstd"`) || resp.Header.Get("Etag") == cssETag {
		t.Errorf("Accept-Encoding: zstd: Content-Encoding %q, ETag %s, %v; want the .zst sibling of gatehouse compress", resp.Header.Get("Content-Encoding"), resp.Header.Get("Etag"), err)
	}

	// A protected download: Django checks, Gatehouse sends the file.
	resp, body = do("/download/invoice-42.pdf", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, pdf) {
		t.Fatalf("download: %d, %d bytes; want the file's %d", resp.StatusCode, len(body), len(pdf))
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="invoice-42.pdf"` {
		t.Errorf("download: Content-Disposition %q (Django's)", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("download: Content-Type %q, want the file's (the view sent an empty one)", ct)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-accel") || strings.HasPrefix(strings.ToLower(k), "x-sendfile") {
			t.Errorf("download: %s reached the client", k)
		}
	}
	resp, body = do("/protected/invoice-42.pdf", nil)
	if resp.StatusCode != 404 || bytes.Contains(body, []byte("invoice")) {
		t.Errorf("internal path asked directly: %d; want 404 without the file", resp.StatusCode)
	}

	// The CSP is on a 404 file (with the site's page, quoting the ID)
	// and on a 502.
	resp, body = do("/static/app/missing.css", nil)
	if resp.StatusCode != 404 || resp.Header.Get("Content-Security-Policy") != csp ||
		string(body) != "<p>Not found. Request ID: "+resp.Header.Get("X-Request-Id")+"</p>\n" {
		t.Errorf("missing static file: %d, CSP %q, %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}
	resp, _ = do("/down/", nil)
	if resp.StatusCode != 502 || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("dead upstream: %d, CSP %q; want 502 with the CSP", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	// The page's request ID is in the access log (standard output), so a
	// support report finds both Gatehouse's line and Django's.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.stdout.String(), `"request_id":"`+id+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("access log has no line with request_id %s:\n%s", id, g.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
