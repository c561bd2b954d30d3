package staticfile

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirectTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		values  []string
		want    string
		ok      bool
		wantErr string
	}{
		{nil, "", false, ""},
		{[]string{"/protected/report.pdf"}, "/protected/report.pdf", true, ""},
		{[]string{" /protected/report.pdf "}, "/protected/report.pdf", true, ""},
		{[]string{"/protected/r%C3%A9sum%C3%A9%20final.pdf"}, "/protected/résumé final.pdf", true, ""},
		{[]string{"/protected/a.pdf?token=1"}, "/protected/a.pdf", true, ""},
		{[]string{"/protected/a%3Fb.pdf"}, "/protected/a?b.pdf", true, ""},
		{[]string{"/a", "/b"}, "", true, "2 values, want one"},
		{[]string{""}, "", true, "empty"},
		{[]string{"@files"}, "", true, "named locations are not supported"},
		{[]string{"protected/a.pdf"}, "", true, "not an absolute path"},
		{[]string{"http://evil/a"}, "", true, "not an absolute path"},
		{[]string{"/protected/%zz"}, "", true, "invalid URL escape"},
		{[]string{"/protected/../etc/passwd"}, "", true, `contains a ".." segment`},
		{[]string{"/protected/%2e%2e/etc/passwd"}, "", true, `contains a ".." segment`},
		{[]string{"/protected/./a"}, "", true, `contains a "." segment`},
		{[]string{"/protected//a"}, "", true, "empty segment"},
		{[]string{"/protected/a%00.pdf"}, "", true, "NUL"},
		{[]string{"/protected/a%0d%0aX: y"}, "", true, "control character"},
		{[]string{"/protected/a%5c..%5cb"}, "", true, "backslash"},
	} {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("X-Accel-Redirect", v)
		}
		got, ok, err := RedirectTarget(h)
		if got != tc.want || ok != tc.ok || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("RedirectTarget(%q) = %q, %v, %v; want %q, %v, error containing %q", tc.values, got, ok, err, tc.want, tc.ok, tc.wantErr)
		}
	}
}

func TestStripAccelHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	for _, k := range []string{"X-Accel-Redirect", "X-Accel-Buffering", "X-Accel-Expires", "X-Accel-Limit-Rate",
		"X-Accel-Charset", "X-Sendfile", "X-Sendfile-Type", "X-Lighttpd-Send-File"} {
		h.Set(k, "v")
	}
	h["x-accel-redirect"] = []string{"non-canonical"}
	h["X-SENDFILE"] = []string{"non-canonical"}
	keep := []string{"Content-Type", "X-Accelerated", "X-Accel", "X-Sendfiles", "Content-Disposition", "X-Request-Id"}
	for _, k := range keep {
		h.Set(k, "kept")
	}
	StripAccelHeaders(h)
	if len(h) != len(keep) {
		t.Errorf("after StripAccelHeaders: %v, want only %v", h, keep)
	}
	for _, k := range keep {
		if h.Get(k) != "kept" {
			t.Errorf("%s was removed", k)
		}
	}
}

// TestServeRedirect plays the proxy's part with a real Django-like backend:
// the backend answers with X-Accel-Redirect and the headers a Django view
// sets; the front serves the file from an internal Server.
func TestServeRedirect(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "invoices/2025/inv-1.pdf", "%PDF-1.7 invoice")
	writeFile(t, root, "reports/summary.3f2a1b9c4d5e.txt", "summary text")
	files, err := New(Options{Root: root, Internal: true})
	must(t, err)
	t.Cleanup(func() { files.Close() })

	// The backend: a view that authorises and delegates the download.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8") // Django's default
		switch r.URL.Path {
		case "/download/inv-1":
			h.Set("Content-Type", "")
			h.Set("Content-Disposition", `attachment; filename="inv-1.pdf"`)
			h.Add("Set-Cookie", "sessionid=abc; HttpOnly")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Etag", `"backend-etag"`)
			h.Set("Content-Length", "0")
		case "/download/typed":
			h.Set("Content-Type", "application/x-custom")
			h.Set("Cache-Control", "private, max-age=30")
			h.Set("Expires", "Thu, 01 Jan 2026 00:00:00 GMT")
			h.Set("Content-Language", "fr")
		case "/download/hashed":
			h.Set("Content-Type", "")
		case "/download/missing":
			h.Set("Content-Type", "")
			h.Set("X-Accel-Redirect", "/protected/invoices/nope.pdf")
			return
		}
		h.Set("X-Accel-Redirect", map[string]string{
			"/download/inv-1":  "/protected/invoices/2025/inv-1.pdf",
			"/download/typed":  "/protected/invoices/2025/inv%2D1.pdf",
			"/download/hashed": "/protected/reports/summary.3f2a1b9c4d5e.txt",
		}[r.URL.Path])
		h.Set("X-Accel-Buffering", "no")
	}))
	t.Cleanup(backend.Close)

	// The front: a minimal stand-in for the proxy's response path.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := http.Get(backend.URL + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		target, ok, err := RedirectTarget(res.Header)
		StripAccelHeaders(res.Header)
		if !ok || err != nil || !strings.HasPrefix(target, "/protected/") {
			http.Error(w, "bad gateway", 502)
			return
		}
		w.Header().Set("X-Request-Id", "req-1") // the proxy's own header
		files.ServeRedirect(w, r, strings.TrimPrefix(target, "/protected/"), res.Header)
	}))
	t.Cleanup(front.Close)

	r := get(t, front, "/download/inv-1")
	want := map[string]string{
		"Content-Type":        "application/pdf", // the backend's was empty: the file's type
		"Content-Disposition": `attachment; filename="inv-1.pdf"`,
		"Set-Cookie":          "sessionid=abc; HttpOnly",
		"Cache-Control":       DefaultInternalCacheControl,
		"X-Request-Id":        "req-1",
		"X-Frame-Options":     "", // not kept: the proxy's header rules set such headers
		"X-Accel-Redirect":    "",
		"X-Accel-Buffering":   "",
		"Content-Length":      "16",
	}
	if r.status != 200 || r.body != "%PDF-1.7 invoice" {
		t.Fatalf("download: %d %q, want 200 with the file", r.status, r.body)
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("download: %s = %q, want %q", k, got, v)
		}
	}
	etag := r.header.Get("Etag")
	if etag == `"backend-etag"` || etag == "" {
		t.Errorf("download: Etag %q, want the file's", etag)
	}

	// Conditional and Range requests from the client apply to the file.
	if r := get(t, front, "/download/inv-1", "If-None-Match: "+etag); r.status != 304 {
		t.Errorf("download revalidation: %d, want 304", r.status)
	}
	if r := get(t, front, "/download/inv-1", "Range: bytes=0-7"); r.status != 206 || r.body != "%PDF-1.7" {
		t.Errorf("download range: %d %q, want 206 %%PDF-1.7", r.status, r.body)
	}
	// A POST that ends in a download is answered as a GET (nginx does
	// the same); HEAD stays HEAD.
	if r := do(t, front, "POST", "/download/inv-1"); r.status != 200 || r.body != "%PDF-1.7 invoice" {
		t.Errorf("POST download: %d %q, want 200 with the file", r.status, r.body)
	}
	if r := do(t, front, "HEAD", "/download/inv-1"); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "16" {
		t.Errorf("HEAD download: %d %q Content-Length %q, want 200, no body, 16", r.status, r.body, r.header.Get("Content-Length"))
	}

	r = get(t, front, "/download/typed")
	for k, v := range map[string]string{
		"Content-Type":     "application/x-custom",
		"Cache-Control":    "private, max-age=30",
		"Expires":          "Thu, 01 Jan 2026 00:00:00 GMT",
		"Content-Language": "fr",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("typed download: %s = %q, want %q", k, got, v)
		}
	}
	// An internal route ignores hashed names: no public, immutable cache.
	if r := get(t, front, "/download/hashed"); r.header.Get("Cache-Control") != DefaultInternalCacheControl || r.body != "summary text" {
		t.Errorf("hashed download: %q Cache-Control %q, want %q", r.body, r.header.Get("Cache-Control"), DefaultInternalCacheControl)
	}
	if r := get(t, front, "/download/missing"); r.status != 404 {
		t.Errorf("missing target: %d, want 404", r.status)
	}

	// The internal Server refuses clients' own requests.
	direct := httptest.NewServer(files)
	t.Cleanup(direct.Close)
	if r := get(t, direct, "/invoices/2025/inv-1.pdf"); r.status != 404 || strings.Contains(r.body, "invoice") {
		t.Errorf("direct request to an internal route: %d %q, want 404", r.status, r.body)
	}
	// The caller's request is left alone when the method is rewritten.
	req := httptest.NewRequest("POST", "/x", nil)
	files.ServeRedirect(httptest.NewRecorder(), req, "invoices/2025/inv-1.pdf", nil)
	if req.Method != "POST" {
		t.Errorf("ServeRedirect changed the caller's request method to %s", req.Method)
	}
}
