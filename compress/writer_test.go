package compress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestWriterRules runs each header rule over a real loopback server: the
// handler sets headers and writes a body, the client reads the response
// as sent on the wire.
func TestWriterRules(t *testing.T) {
	c := mustNew(t, Options{})
	big := text(8 << 10)
	small := text(500)
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 4000)...)

	type resp struct {
		code   int
		header []string // name, value pairs set before WriteHeader
		body   []byte
		setCL  bool // set Content-Length to len(body)
	}
	tests := []struct {
		name     string
		method   string
		reqHdr   []string
		resp     resp
		wantCE   string   // "" = not compressed
		wantVary bool     // Vary names Accept-Encoding
		wantHdr  []string // name, value pairs the response must have ("" value: absent)
	}{
		{"html compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html; charset=utf-8"}, big, true}, "gzip", true,
			[]string{"Content-Type", "text/html; charset=utf-8"}},
		{"json zstd", "GET", []string{"Accept-Encoding", "zstd"}, resp{200, []string{"Content-Type", "application/json"}, big, false}, "zstd", true, nil},
		{"problem+json br", "GET", []string{"Accept-Encoding", "br"}, resp{200, []string{"Content-Type", "application/problem+json"}, big, false}, "br", true, nil},
		{"svg compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "image/svg+xml"}, big, false}, "gzip", true, nil},
		{"event stream compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/event-stream"}, big, false}, "gzip", true, nil},
		{"png never", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "image/png"}, png, true}, "", false,
			[]string{"Content-Length", strconv.Itoa(len(png))}},
		{"woff2 never", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "font/woff2"}, big, false}, "", false, nil},
		{"zip never", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "application/zip"}, big, false}, "", false, nil},
		{"octet-stream never", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "application/octet-stream"}, big, false}, "", false, nil},
		{"no type, html sniffed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, nil, append([]byte("<!DOCTYPE html><html>"), big...), false}, "gzip", true,
			[]string{"Content-Type", "text/html; charset=utf-8"}},
		{"no type, binary sniffed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, nil, png, false}, "", false,
			[]string{"Content-Type", "image/png"}},
		{"known length below minimum", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html"}, small, true}, "", true,
			[]string{"Content-Length", "500"}},
		{"unknown length below minimum gets a length", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html"}, small, false}, "", true,
			[]string{"Content-Length", "500"}},
		{"unknown length at minimum", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/css"}, text(1024), false}, "gzip", true, nil},
		{"unknown length one below minimum", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/css"}, text(1023), false}, "", true,
			[]string{"Content-Length", "1023"}},
		{"empty body", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html"}, nil, false}, "", true,
			[]string{"Content-Length", "0"}},
		{"404 page compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{404, []string{"Content-Type", "text/html"}, big, false}, "gzip", true, nil},
		{"502 page compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{502, []string{"Content-Type", "text/html"}, big, false}, "gzip", true, nil},
		{"204 never", "GET", []string{"Accept-Encoding", "gzip"}, resp{204, []string{"Content-Type", "text/html"}, nil, false}, "", true, nil},
		{"304 never, ETag weakened", "GET", []string{"Accept-Encoding", "gzip"}, resp{304, []string{"Content-Type", "text/html", "ETag", `"v1"`}, nil, false}, "", true,
			[]string{"Etag", `W/"v1"`}},
		{"304 without type untouched", "GET", []string{"Accept-Encoding", "gzip"}, resp{304, []string{"ETag", `"v1"`}, nil, false}, "", false,
			[]string{"Etag", `"v1"`}},
		{"304 without type revalidating our weak tag", "GET", []string{"Accept-Encoding", "gzip", "If-None-Match", `"v0", W/"v1"`}, resp{304, []string{"ETag", `"v1"`}, nil, false}, "", true,
			[]string{"Etag", `W/"v1"`}},
		{"304 without type, other weak tag", "GET", []string{"Accept-Encoding", "gzip", "If-None-Match", `W/"v10"`}, resp{304, []string{"ETag", `"v1"`}, nil, false}, "", false,
			[]string{"Etag", `"v1"`}},
		{"HEAD never, ETag as GET would have it", "HEAD", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "ETag", `"h"`}, big, true}, "", true,
			[]string{"Content-Length", strconv.Itoa(len(big)), "Etag", `W/"h"`}},
		{"HEAD of a short body keeps a strong ETag", "HEAD", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "ETag", `"h"`}, small, true}, "", true,
			[]string{"Content-Length", "500", "Etag", `"h"`}},
		{"already encoded", "GET", []string{"Accept-Encoding", "gzip, br"}, resp{200, []string{"Content-Type", "text/css", "Content-Encoding", "br", "ETag", `"x"`}, big, true}, "br", false,
			[]string{"Etag", `"x"`, "Content-Length", strconv.Itoa(len(big))}},
		{"identity encoding is compressed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/css", "Content-Encoding", "identity"}, big, false}, "gzip", true, nil},
		{"206 never", "GET", []string{"Accept-Encoding", "gzip"}, resp{206, []string{"Content-Type", "text/html", "Content-Range", fmt.Sprintf("bytes 0-%d/99999", len(big)-1)}, big, true}, "", false,
			[]string{"Content-Length", strconv.Itoa(len(big))}},
		{"Content-Range on 200 never", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Content-Range", "bytes */99999"}, big, false}, "", false, nil},
		{"response no-transform", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Cache-Control", "public, No-Transform"}, big, false}, "", false, nil},
		{"request no-transform", "GET", []string{"Accept-Encoding", "gzip", "Cache-Control", "no-transform"}, resp{200, []string{"Content-Type", "text/html"}, big, false}, "", true, nil},
		{"client takes nothing offered", "GET", []string{"Accept-Encoding", "deflate"}, resp{200, []string{"Content-Type", "text/html"}, big, true}, "", true,
			[]string{"Content-Length", strconv.Itoa(len(big))}},
		{"no Accept-Encoding", "GET", nil, resp{200, []string{"Content-Type", "text/html"}, big, true}, "", true, nil},
		{"Vary merged", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Vary", "Cookie"}, big, false}, "gzip", true, nil},
		{"Vary not repeated", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Vary", "cookie, accept-encoding"}, big, false}, "gzip", true,
			[]string{"Vary", "cookie, accept-encoding"}},
		{"Vary star kept", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Vary", "*"}, big, false}, "gzip", false,
			[]string{"Vary", "*"}},
		{"strong ETag weakened", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "ETag", `"abc"`}, big, true}, "gzip", true,
			[]string{"Etag", `W/"abc"`}},
		{"weak ETag kept", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "ETag", `W/"abc"`}, big, true}, "gzip", true,
			[]string{"Etag", `W/"abc"`}},
		{"range and digests removed", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Accept-Ranges", "bytes", "Content-Digest", "sha-256=:x:", "Content-Md5", "x"}, big, true}, "gzip", true,
			[]string{"Accept-Ranges", "", "Content-Digest", "", "Content-Md5", ""}},
		{"other headers kept", "GET", []string{"Accept-Encoding", "gzip"}, resp{200, []string{"Content-Type", "text/html", "Set-Cookie", "a=b", "Cache-Control", "private"}, big, true}, "gzip", true,
			[]string{"Set-Cookie", "a=b", "Cache-Control", "private"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				for i := 0; i+1 < len(tt.resp.header); i += 2 {
					h.Set(tt.resp.header[i], tt.resp.header[i+1])
				}
				if tt.resp.setCL {
					h.Set("Content-Length", strconv.Itoa(len(tt.resp.body)))
				}
				w.WriteHeader(tt.resp.code)
				if r.Method != http.MethodHead {
					w.Write(tt.resp.body)
				}
			})
			res, body := get(t, rawClient(t), tt.method, srv.URL, tt.reqHdr...)
			if res.StatusCode != tt.resp.code {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.resp.code)
			}
			if ce := res.Header.Get("Content-Encoding"); ce != tt.wantCE {
				t.Errorf("Content-Encoding %q, want %q", ce, tt.wantCE)
			}
			vary := strings.ToLower(strings.Join(res.Header.Values("Vary"), ","))
			if got := strings.Count(vary, "accept-encoding"); (got == 1) != tt.wantVary || got > 1 {
				t.Errorf("Vary %q: names Accept-Encoding %d times, want %v", res.Header.Values("Vary"), got, tt.wantVary)
			}
			for i := 0; i+1 < len(tt.wantHdr); i += 2 {
				name, want := tt.wantHdr[i], tt.wantHdr[i+1]
				got := strings.Join(res.Header.Values(name), ", ")
				if got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if tt.method == http.MethodHead || !bodyAllowed(tt.resp.code) {
				if len(body) != 0 {
					t.Errorf("body of %d bytes, want none", len(body))
				}
				return
			}
			if cl := res.Header.Get("Content-Length"); tt.wantCE != "" && cl != "" && cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s with %d bytes on the wire: the uncoded length was not removed", cl, len(body))
			}
			if tt.name == "already encoded" {
				// already encoded by the handler: passed through untouched
				if !bytes.Equal(body, tt.resp.body) {
					t.Errorf("already-encoded body changed")
				}
				return
			}
			if got := decode(t, tt.wantCE, body); !bytes.Equal(got, tt.resp.body) {
				t.Errorf("decoded body: %d bytes, want the %d written", len(got), len(tt.resp.body))
			}
			if tt.wantCE != "" && len(body) >= len(tt.resp.body) {
				t.Errorf("compressed body %d bytes, not smaller than %d", len(body), len(tt.resp.body))
			}
		})
	}
}

// TestWriterVaryMergedValues: the merged Vary keeps the handler's fields.
func TestWriterVaryMergedValues(t *testing.T) {
	c := mustNew(t, Options{})
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Vary", "Cookie, Accept-Language")
		w.Write(text(4000))
	})
	res, _ := get(t, rawClient(t), "GET", srv.URL, "Accept-Encoding", "gzip")
	if got, want := res.Header.Values("Vary"), []string{"Cookie, Accept-Language", "Accept-Encoding"}; !slices.Equal(got, want) {
		t.Errorf("Vary %q, want %q", got, want)
	}
}

// writePattern writes body to w in some way a handler or proxy would.
type writePattern struct {
	name  string
	write func(w http.ResponseWriter, body []byte)
}

func chunked(n int, flush bool) func(w http.ResponseWriter, body []byte) {
	return func(w http.ResponseWriter, body []byte) {
		for p := body; len(p) > 0; {
			k := min(n, len(p))
			w.Write(p[:k])
			p = p[k:]
			if flush {
				w.(http.Flusher).Flush()
			}
		}
	}
}

var writePatterns = []writePattern{
	{"one write", func(w http.ResponseWriter, b []byte) { w.Write(b) }},
	{"7-byte writes", chunked(7, false)},
	{"1000-byte writes", chunked(1000, false)},
	{"32k writes", chunked(32<<10, false)},
	{"flush every 3000", chunked(3000, true)},
	{"flush first", func(w http.ResponseWriter, b []byte) { w.(http.Flusher).Flush(); w.Write(b) }},
	{"io.Copy (ReadFrom)", func(w http.ResponseWriter, b []byte) { io.Copy(w, bytes.NewReader(b)) }},
	{"io.Copy of a reader without WriteTo", func(w http.ResponseWriter, b []byte) { io.Copy(w, io.LimitReader(bytes.NewReader(b), int64(len(b)))) }},
}

// TestWriterRoundTrip: whatever the coding, size and write pattern, the
// client decodes exactly the bytes written.
func TestWriterRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 511, 1023, 1024, 1025, 4096, 65 << 10, 300 << 10}
	if !testing.Short() && !raceEnabled {
		sizes = append(sizes, 2<<20)
	}
	cl := rawClient(t)
	for _, e := range []Encoding{Gzip, Zstd, Brotli} {
		c := mustNew(t, Options{Encodings: []Encoding{e}})
		var body []byte
		var pattern writePattern
		srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			pattern.write(w, body)
		})
		for _, size := range sizes {
			for _, p := range writePatterns {
				if p.name == "7-byte writes" && size > 65<<10 {
					continue
				}
				t.Run(fmt.Sprintf("%v/%d/%s", e, size, p.name), func(t *testing.T) {
					body, pattern = text(size), p // the server runs one request at a time
					res, got := get(t, cl, "GET", srv.URL, "Accept-Encoding", e.String())
					ce := res.Header.Get("Content-Encoding")
					// A Flush decides for compression (a stream), even before
					// anything was written.
					compressed := size >= DefaultMinLength || p.name == "flush first" || (p.name == "flush every 3000" && size > 0)
					if compressed != (ce == e.String()) {
						t.Errorf("Content-Encoding %q for %d bytes written as %s", ce, size, p.name)
					}
					if dec := decode(t, ce, got); !bytes.Equal(dec, body) {
						t.Errorf("decoded %d bytes, want the %d written", len(dec), len(body))
					}
				})
			}
		}
	}
}

// readFromSpy is the connection side of a handler: it records whether
// the Writer handed the body to the wrapped writer's ReadFrom (net/http's
// sendfile path) and then does just that.
type readFromSpy struct {
	http.ResponseWriter
	called bool
}

func (s *readFromSpy) ReadFrom(r io.Reader) (int64, error) {
	s.called = true
	return s.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

// TestReadFromKeepsSendfile: a body that is not compressed is passed to
// the wrapped writer's ReadFrom (so a file route keeps sendfile); one
// that is compressed is not.
func TestReadFromKeepsSendfile(t *testing.T) {
	c := mustNew(t, Options{})
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100<<10)...)
	css := text(100 << 10)
	for _, tt := range []struct {
		ctype    string
		body     []byte
		wantCE   string
		wantSpy  bool
		wantBody []byte
	}{
		{"image/png", png, "", true, png},
		{"text/css", css, "gzip", false, css},
	} {
		t.Run(tt.ctype, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(file, tt.body, 0o644); err != nil {
				t.Fatal(err)
			}
			spied := make(chan bool, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				spy := &readFromSpy{ResponseWriter: w}
				cw := c.Wrap(spy, r)
				defer cw.Abort()
				cw.Header().Set("Content-Type", tt.ctype)
				f, err := os.Open(file)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				// as http.ServeContent sends a file
				if _, err := io.CopyN(cw, f, int64(len(tt.body))); err != nil {
					t.Errorf("copy: %v", err)
				}
				cw.Close()
				spied <- spy.called
			}))
			defer srv.Close()
			res, body := get(t, rawClient(t), "GET", srv.URL, "Accept-Encoding", "gzip")
			if ce := res.Header.Get("Content-Encoding"); ce != tt.wantCE {
				t.Errorf("Content-Encoding %q, want %q", ce, tt.wantCE)
			}
			if got := <-spied; got != tt.wantSpy {
				t.Errorf("wrapped ReadFrom called: %v, want %v", got, tt.wantSpy)
			}
			if got := decode(t, tt.wantCE, body); !bytes.Equal(got, tt.wantBody) {
				t.Errorf("decoded %d bytes, want %d", len(got), len(tt.wantBody))
			}
		})
	}
}

// TestEarlyHintsPassThrough: a 103 is sent at once and does not decide
// anything; the final response is still compressed.
func TestEarlyHintsPassThrough(t *testing.T) {
	c := mustNew(t, Options{})
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</static/app.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/html")
		w.Write(text(4000))
	})
	var hints []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := rawClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(hints) != 1 || hints[0] != http.StatusEarlyHints {
		t.Errorf("1xx responses %v, want [103]", hints)
	}
	if ce := res.Header.Get("Content-Encoding"); ce != "gzip" || !bytes.Equal(decode(t, ce, body), text(4000)) {
		t.Errorf("final response: Content-Encoding %q, body not the one written", ce)
	}
}

// TestAddVaryCopies: a Vary value copied by reference from another header
// (as the proxy copies a backend's) is extended in a copy, never in the
// shared backing array; Accept-Encoding or "*" already listed adds
// nothing; an absent Vary gets the shared one-element value.
func TestAddVaryCopies(t *testing.T) {
	backing := make([]string, 1, 4)
	backing[0] = "Cookie"
	h := http.Header{"Vary": backing}
	AddVary(h)
	if got := h["Vary"]; len(got) != 2 || got[0] != "Cookie" || got[1] != "Accept-Encoding" {
		t.Fatalf("Vary = %q, want [Cookie Accept-Encoding]", got)
	}
	if spare := backing[:2]; spare[1] != "" {
		t.Errorf("AddVary wrote %q into the shared backing array", spare[1])
	}
	for _, v := range []string{"accept-encoding", "Cookie, Accept-Encoding", "*"} {
		h := http.Header{"Vary": {v}}
		AddVary(h)
		if got := h["Vary"]; len(got) != 1 || got[0] != v {
			t.Errorf("Vary %q became %q, want unchanged", v, got)
		}
	}
	h = http.Header{}
	AddVary(h)
	if got := h["Vary"]; len(got) != 1 || got[0] != "Accept-Encoding" {
		t.Errorf("absent Vary became %q", got)
	}
}
