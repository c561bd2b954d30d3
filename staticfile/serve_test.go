package staticfile

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestContentType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, want string }{
		{"app.css", "text/css; charset=utf-8"},
		{"APP.CSS", "text/css; charset=utf-8"},
		{"app.js", "text/javascript; charset=utf-8"},
		{"mod.mjs", "text/javascript; charset=utf-8"},
		{"data.json", "application/json"},
		{"app.js.map", "application/json"},
		{"site.webmanifest", "application/manifest+json"},
		{"logo.svg", "image/svg+xml"},
		{"font.woff", "font/woff"},
		{"font.woff2", "font/woff2"},
		{"app.wasm", "application/wasm"},
		{"a.avif", "image/avif"},
		{"a.webp", "image/webp"},
		{"a.png", "image/png"},
		{"a.jpg", "image/jpeg"},
		{"a.jpeg", "image/jpeg"},
		{"a.gif", "image/gif"},
		{"favicon.ico", "image/vnd.microsoft.icon"},
		{"robots.txt", "text/plain; charset=utf-8"},
		{"index.html", "text/html; charset=utf-8"},
		{"feed.xml", "text/xml; charset=utf-8"},
		{"doc.pdf", "application/pdf"},
		{"clip.mp4", "video/mp4"},
		{"clip.webm", "video/webm"},
		{"app.3f2a1b9c4d5e.css", "text/css; charset=utf-8"},
		{"LICENSE", "application/octet-stream"},
		{"blob.unknownext-zz", "application/octet-stream"},
		{"dir.d/noext", "application/octet-stream"},
	} {
		if got := contentType(tc.name); got != tc.want {
			t.Errorf("contentType(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestIsHashed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"app.3f2a1b9c4d5e.css", true},              // Django ManifestStaticFilesStorage
		{"css/app.3f2a1b9c.css", true},              // 8 digits
		{"main.a1b2c3d4.chunk.js", true},            // webpack
		{"CACHE/css/output.3f2a1b9c4d5e.css", true}, // django-compressor
		{"admin/js/vendor/jquery/jquery.min.2d3e4f5a6b7c.js", true},
		{"app.deadbeef.css", true},
		{"app.css", false},
		{"jquery.min.js", false},
		{"report.20240101.pdf", false},  // digits only: a date
		{"app.3f2a1b9.css", false},      // 7 digits
		{"app.3F2A1B9C4D5E.css", false}, // uppercase: not what the tools write
		{"3f2a1b9c4d5e.css", false},     // the stem is not the hash
		{"app.3f2a1b9c4d5e", false},     // nor the extension
		{"dir.3f2a1b9c4d5e/app.css", false},
		{"app.3f2a1b9c4d5g.css", false},
		{"app..css", false},
		{"", false},
	} {
		if got := IsHashed(tc.name); got != tc.want {
			t.Errorf("IsHashed(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "css/app.css", "body{}")
	writeFile(t, root, "css/app.3f2a1b9c4d5e.css", "body{}")
	writeFile(t, root, "img/logo.png", "\x89PNG")
	for _, tc := range []struct {
		name   string
		opts   Options
		path   string
		wantCC string
	}{
		{"plain default", Options{}, "/css/app.css", DefaultCacheControl},
		{"hashed default", Options{}, "/css/app.3f2a1b9c4d5e.css", DefaultImmutableCacheControl},
		{"plain custom", Options{CacheControl: "public, max-age=600"}, "/css/app.css", "public, max-age=600"},
		{"hashed custom", Options{ImmutableCacheControl: "public, max-age=99"}, "/css/app.3f2a1b9c4d5e.css", "public, max-age=99"},
		{"hashes ignored", Options{IgnoreHashes: true}, "/css/app.3f2a1b9c4d5e.css", DefaultCacheControl},
		{"no cache", Options{CacheEntries: -1}, "/css/app.3f2a1b9c4d5e.css", DefaultImmutableCacheControl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Root = root
			_, hs := newServer(t, o)
			r := get(t, hs, tc.path)
			if r.status != 200 || r.body != "body{}" {
				t.Fatalf("GET %s = %d %q, want 200 body{}", tc.path, r.status, r.body)
			}
			for k, want := range map[string]string{
				"Cache-Control":          tc.wantCC,
				"Content-Type":           "text/css; charset=utf-8",
				"X-Content-Type-Options": "nosniff",
				"Content-Length":         "6",
				"Last-Modified":          baseTime.UTC().Format(http.TimeFormat),
				"Etag":                   `"` + strconv.FormatInt(baseTime.UnixNano(), 16) + `-6"`,
				"Accept-Ranges":          "bytes",
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if v := r.header.Values("Vary"); len(v) != 0 {
				t.Errorf("Vary = %q on a file without precompressed siblings, want none", v)
			}
		})
	}
}

func TestConditionalAndRange(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	body := "0123456789abcdefghijklmnopqrstuvwxyz"
	writeFile(t, root, "f.txt", body)
	_, hs := newServer(t, Options{Root: root})
	first := get(t, hs, "/f.txt")
	etag := first.header.Get("Etag")
	lm := first.header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no validators: Etag %q, Last-Modified %q", etag, lm)
	}
	later := baseTime.Add(time.Hour).UTC().Format(http.TimeFormat)
	earlier := baseTime.Add(-time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		method     string
		hdr        []string
		wantStatus int
		wantBody   string
		wantHdr    map[string]string
	}{
		{"If-None-Match matches", "GET", []string{"If-None-Match: " + etag}, 304, "",
			map[string]string{"Etag": etag, "Cache-Control": DefaultCacheControl, "Content-Type": "", "Content-Length": ""}},
		{"If-None-Match list", "GET", []string{`If-None-Match: "x", ` + etag}, 304, "", nil},
		{"If-None-Match star", "GET", []string{"If-None-Match: *"}, 304, "", nil},
		{"If-None-Match weak form matches", "GET", []string{"If-None-Match: W/" + etag}, 304, "", nil},
		{"If-None-Match other", "GET", []string{`If-None-Match: "other"`}, 200, body, nil},
		{"If-Modified-Since same", "GET", []string{"If-Modified-Since: " + lm}, 304, "", nil},
		{"If-Modified-Since later", "GET", []string{"If-Modified-Since: " + later}, 304, "", nil},
		{"If-Modified-Since earlier", "GET", []string{"If-Modified-Since: " + earlier}, 200, body, nil},
		{"If-None-Match wins over If-Modified-Since", "GET", []string{`If-None-Match: "other"`, "If-Modified-Since: " + later}, 200, body, nil},
		{"If-Match fails", "GET", []string{`If-Match: "other"`}, 412, "", nil},
		{"HEAD", "HEAD", nil, 200, "",
			map[string]string{"Content-Length": strconv.Itoa(len(body)), "Etag": etag}},
		{"HEAD conditional", "HEAD", []string{"If-None-Match: " + etag}, 304, "", nil},
		{"Range", "GET", []string{"Range: bytes=0-9"}, 206, "0123456789",
			map[string]string{"Content-Range": "bytes 0-9/36", "Content-Length": "10", "Etag": etag}},
		{"Range suffix", "GET", []string{"Range: bytes=-3"}, 206, "xyz",
			map[string]string{"Content-Range": "bytes 33-35/36"}},
		{"Range open", "GET", []string{"Range: bytes=30-"}, 206, "uvwxyz", nil},
		{"If-Range current", "GET", []string{"Range: bytes=0-1", "If-Range: " + etag}, 206, "01", nil},
		{"If-Range stale", "GET", []string{"Range: bytes=0-1", `If-Range: "old"`}, 200, body, nil},
		{"If-Range date", "GET", []string{"Range: bytes=0-1", "If-Range: " + lm}, 206, "01", nil},
		{"Range unsatisfiable", "GET", []string{"Range: bytes=100-200"}, 416, "",
			map[string]string{"Content-Range": "bytes */36", "Etag": "", "Cache-Control": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, hs, tc.method, "/f.txt", tc.hdr...)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tc.wantStatus, r.body)
			}
			if tc.wantStatus != 416 && tc.wantStatus != 412 && r.body != tc.wantBody {
				t.Errorf("body = %q, want %q", r.body, tc.wantBody)
			}
			for k, want := range tc.wantHdr {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		r := get(t, hs, "/f.txt", "Range: bytes=0-1,10-11")
		if r.status != 206 || !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges; boundary=") {
			t.Fatalf("got %d %q, want 206 multipart/byteranges", r.status, r.header.Get("Content-Type"))
		}
		if !strings.Contains(r.body, "\r\n\r\n01\r\n") || !strings.Contains(r.body, "\r\n\r\nab\r\n") {
			t.Errorf("multipart body lacks the parts 01 and ab:\n%s", r.body)
		}
	})
}

func TestMethods(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "f.txt", "x")
	_, hs := newServer(t, Options{Root: root})
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		r := do(t, hs, m, "/f.txt")
		if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q, want 405 Allow \"GET, HEAD\"", m, r.status, r.header.Get("Allow"))
		}
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "index.html", "root index")
	writeFile(t, root, "docs/index.htm", "docs index")
	writeFile(t, root, "docs/page.html", "page")
	writeFile(t, root, "empty/other.txt", "x")
	writeFile(t, root, "sp ace/index.html", "spaced")

	t.Run("none configured", func(t *testing.T) {
		_, hs := newServer(t, Options{Root: root})
		for _, p := range []string{"/", "/docs", "/docs/", "/empty/"} {
			if r := get(t, hs, p); r.status != 404 {
				t.Errorf("GET %s = %d %q, want 404 (no directory listing, no index)", p, r.status, r.body)
			}
		}
	})
	t.Run("configured", func(t *testing.T) {
		_, hs := newServer(t, Options{Root: root, Index: []string{"index.html", "index.htm"}})
		for _, tc := range []struct {
			path, wantBody string
			wantStatus     int
			wantLoc        string
		}{
			{"/", "root index", 200, ""},
			{"/docs/", "docs index", 200, ""},
			{"/docs", "", 301, "./docs/"},
			{"/docs?x=1", "", 301, "./docs/?x=1"},
			{"/sp%20ace", "", 301, "./sp%20ace/"},
			{"/sp%20ace/", "spaced", 200, ""},
			{"/empty/", "", 404, ""},
			{"/empty", "", 404, ""}, // no index there: no redirect either
			{"/docs/page.html/", "", 404, ""},
		} {
			r := get(t, hs, tc.path)
			if r.status != tc.wantStatus || (tc.wantStatus == 200 && r.body != tc.wantBody) || r.header.Get("Location") != tc.wantLoc {
				t.Errorf("GET %s = %d %q Location %q, want %d %q Location %q",
					tc.path, r.status, r.body, r.header.Get("Location"), tc.wantStatus, tc.wantBody, tc.wantLoc)
			}
		}
	})
}

func TestErrorPage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "f.txt", "x")
	var mu sync.Mutex
	var got []int
	_, hs := newServer(t, Options{Root: root, ErrorPage: func(w http.ResponseWriter, r *http.Request, status int) {
		mu.Lock()
		got = append(got, status)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		w.Write([]byte("<h1>site page " + strconv.Itoa(status) + "</h1>"))
	}})
	r := get(t, hs, "/missing.css")
	if r.status != 404 || r.body != "<h1>site page 404</h1>" || r.header.Get("Etag") != "" || r.header.Get("Cache-Control") != "" {
		t.Errorf("missing file: %d %q (Etag %q, Cache-Control %q), want the site's 404 page without file headers",
			r.status, r.body, r.header.Get("Etag"), r.header.Get("Cache-Control"))
	}
	if r := do(t, hs, "POST", "/f.txt"); r.status != 405 || r.body != "<h1>site page 405</h1>" {
		t.Errorf("POST: %d %q, want the site's 405 page", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != 404 || got[1] != 405 {
		t.Errorf("ErrorPage got statuses %v, want [404 405]", got)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "file", "x")
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no root", Options{}, "root: required"},
		{"root missing", Options{Root: root + "/nope"}, "staticfile: root: "},
		{"root a file", Options{Root: root + "/file"}, "not a directory"},
		{"index slash", Options{Root: root, Index: []string{"a/index.html"}}, `index[0]: "a/index.html" is not a plain file name`},
		{"index dot", Options{Root: root, Index: []string{".index"}}, `index[0]: ".index" is not a plain file name`},
		{"index empty", Options{Root: root, Index: []string{"index.html", ""}}, `index[1]: "" is not a plain file name`},
		{"coding", Options{Root: root, Precompressed: []string{"br", "deflate"}}, `precompressed[1]: unknown coding "deflate"`},
		{"coding twice", Options{Root: root, Precompressed: []string{"gzip", "gzip"}}, `precompressed[1]: "gzip" listed twice`},
	} {
		s, err := New(tc.o)
		if err == nil {
			s.Close()
			t.Errorf("%s: New succeeded, want error containing %q", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %q, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
