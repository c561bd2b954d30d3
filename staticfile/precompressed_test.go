package staticfile

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	var encs []encoding
	for _, tok := range []string{"br", "zstd", "gzip"} {
		e, _ := knownEncoding(tok)
		encs = append(encs, e)
	}
	all := [maxEncodings]bool{true, true, true}
	gzOnly := [maxEncodings]bool{false, false, true}
	for _, tc := range []struct {
		ae    []string
		avail [maxEncodings]bool
		want  string
	}{
		{nil, all, ""},
		{[]string{""}, all, ""},
		{[]string{"br"}, all, "br"},
		{[]string{"gzip, deflate, br, zstd"}, all, "br"}, // Chrome: ties go to the server's order
		{[]string{"gzip, deflate"}, all, "gzip"},
		{[]string{"gzip;q=1.0, br;q=0.5"}, all, "gzip"},
		{[]string{"br;q=0.5, zstd;q=0.8, gzip;q=0.1"}, all, "zstd"},
		{[]string{"br;q=0, gzip"}, all, "gzip"},
		{[]string{"br;q=0.000, gzip;q=0"}, all, ""},
		{[]string{"*"}, all, "br"},
		{[]string{"*;q=0"}, all, ""},
		{[]string{"*;q=0, gzip"}, all, "gzip"},
		{[]string{"*, br;q=0"}, all, "zstd"},
		{[]string{"identity"}, all, ""},
		{[]string{"identity;q=1, *;q=0"}, all, ""}, // Chrome's media requests
		{[]string{"identity;q=0"}, all, ""},        // nothing acceptable: identity anyway
		{[]string{"gzip;q=0.5"}, all, "gzip"},      // implicit identity ranks below
		{[]string{"gzip;q=0.5, identity"}, all, ""},
		{[]string{"gzip;q=0.5, identity;q=0.5"}, all, "gzip"},
		{[]string{"gzip;q=0.5, *;q=0.7"}, all, "br"},
		{[]string{"x-gzip"}, all, "gzip"},
		{[]string{"BR"}, all, "br"},
		{[]string{"Gzip ; Q=0.9"}, all, "gzip"},
		{[]string{"br;q=2"}, all, ""},      // malformed q: ignored
		{[]string{"br;q=0.1234"}, all, ""}, // too many digits
		{[]string{"br;q=abc, gzip"}, all, "gzip"},
		{[]string{"br;level=5;q=0.5, gzip;q=0.4"}, all, "br"},
		{[]string{"gzip", "br"}, all, "br"}, // several header lines
		{[]string{" , ,br"}, all, "br"},
		{[]string{"br"}, gzOnly, ""},
		{[]string{"br, gzip"}, gzOnly, "gzip"},
		{[]string{"zstd"}, all, "zstd"},
		{[]string{"compress, deflate"}, all, ""},
	} {
		got := ""
		if i := negotiate(tc.ae, encs, &tc.avail); i >= 0 {
			got = encs[i].token
		}
		if got != tc.want {
			t.Errorf("negotiate(%q, avail %v) = %q, want %q", tc.ae, tc.avail, got, tc.want)
		}
	}
}

// TestPrecompressed serves a file with .br, .zst and .gz siblings over HTTP.
func TestPrecompressed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "app.css", "IDENTITY")
	writeFileAt(t, root, "app.css.br", "BROTLI", baseTime.Add(time.Second))
	writeFileAt(t, root, "app.css.zst", "ZSTD!", baseTime.Add(time.Second))
	writeFileAt(t, root, "app.css.gz", "GZIP", baseTime) // as old as the file: used
	writeFile(t, root, "plain.css", "PLAIN")
	writeFileAt(t, root, "old.css", "NEW CONTENT", baseTime.Add(time.Hour))
	writeFileAt(t, root, "old.css.gz", "OLD GZIP", baseTime) // older than its file: ignored
	writeFile(t, root, "gzonly.js", "JS")
	writeFile(t, root, "gzonly.js.gz", "JSGZ")
	big := strings.Repeat("0123456789abcdef", 8192) // 128 KiB: beyond net/http's buffer
	writeFile(t, root, "big.js", big+big)
	writeFile(t, root, "big.js.br", big)

	_, hs := newServer(t, Options{Root: root})
	etags := map[string]string{}
	for _, tc := range []struct {
		path, ae       string
		hdr            []string
		wantBody, want string // want: Content-Encoding
		wantVary       bool
		wantStatus     int
	}{
		{"/app.css", "", nil, "IDENTITY", "", true, 200},
		{"/app.css", "gzip, deflate, br, zstd", nil, "BROTLI", "br", true, 200},
		{"/app.css", "gzip, zstd", nil, "ZSTD!", "zstd", true, 200},
		{"/app.css", "gzip", nil, "GZIP", "gzip", true, 200},
		{"/app.css", "br;q=0.1, gzip;q=0.9", nil, "GZIP", "gzip", true, 200},
		{"/app.css", "identity;q=1, *;q=0", nil, "IDENTITY", "", true, 200},
		{"/app.css", "br", []string{"Range: bytes=0-3"}, "IDEN", "", true, 206}, // ranges: identity
		{"/plain.css", "br, gzip", nil, "PLAIN", "", false, 200},
		{"/old.css", "gzip", nil, "NEW CONTENT", "", false, 200},
		{"/gzonly.js", "br", nil, "JS", "", true, 200},
		{"/gzonly.js", "br, gzip", nil, "JSGZ", "gzip", true, 200},
		{"/app.css.br", "br", nil, "BROTLI", "", false, 200}, // the sibling by its own name: a plain file
		{"/big.js", "br", nil, big, "br", true, 200},         // Content-Length set, not chunked
	} {
		hdr := append([]string{"Accept-Encoding: " + tc.ae}, tc.hdr...)
		if tc.ae == "" {
			hdr = tc.hdr
		}
		r := get(t, hs, tc.path, hdr...)
		ce := r.header.Get("Content-Encoding")
		if r.status != tc.wantStatus || r.body != tc.wantBody || ce != tc.want {
			t.Errorf("GET %s (Accept-Encoding %q) = %d %q Content-Encoding %q; want %d %q %q",
				tc.path, tc.ae, r.status, r.body, ce, tc.wantStatus, tc.wantBody, tc.want)
			continue
		}
		if vary := r.header.Get("Vary"); (vary == "Accept-Encoding") != tc.wantVary {
			t.Errorf("GET %s (Accept-Encoding %q): Vary %q, want Accept-Encoding: %v", tc.path, tc.ae, vary, tc.wantVary)
		}
		if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(tc.wantBody)) {
			t.Errorf("GET %s (%q): Content-Length %s, want %d", tc.path, tc.ae, got, len(tc.wantBody))
		}
		if tc.path == "/app.css" {
			if got := r.header.Get("Content-Type"); got != "text/css; charset=utf-8" {
				t.Errorf("GET /app.css (%q): Content-Type %q, want the original's text/css", tc.ae, got)
			}
			if tc.wantStatus == 200 {
				if prev, ok := etags[tc.want]; ok && prev != r.header.Get("Etag") {
					t.Errorf("coding %q: ETag %s then %s", tc.want, prev, r.header.Get("Etag"))
				}
				etags[tc.want] = r.header.Get("Etag")
			}
		}
	}
	// Each representation has its own ETag.
	seen := map[string]string{}
	for coding, tag := range etags {
		if other, dup := seen[tag]; dup {
			t.Errorf("codings %q and %q share the ETag %s", coding, other, tag)
		}
		seen[tag] = coding
	}
	if len(etags) != 4 {
		t.Errorf("saw ETags for %d codings, want 4 (identity, br, zstd, gzip): %v", len(etags), etags)
	}

	// Revalidation of a precompressed variant: 304 only for its own tag.
	br := etags["br"]
	if r := get(t, hs, "/app.css", "Accept-Encoding: br", "If-None-Match: "+br); r.status != 304 || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("If-None-Match br tag with br accepted: %d Vary %q, want 304 with Vary", r.status, r.header.Get("Vary"))
	}
	if r := get(t, hs, "/app.css", "Accept-Encoding: gzip", "If-None-Match: "+br); r.status != 200 || r.body != "GZIP" {
		t.Errorf("If-None-Match br tag with gzip accepted: %d %q, want 200 GZIP", r.status, r.body)
	}
	// If-Range with the br tag on a range request (served from the
	// identity file): the tag does not match, so the whole file comes.
	if r := get(t, hs, "/app.css", "Accept-Encoding: br", "Range: bytes=0-1", "If-Range: "+br); r.status != 200 || r.body != "IDENTITY" {
		t.Errorf("If-Range br tag: %d %q, want 200 IDENTITY", r.status, r.body)
	}
	// HEAD of a variant.
	if r := do(t, hs, "HEAD", "/app.css", "Accept-Encoding: br"); r.status != 200 || r.header.Get("Content-Length") != "6" || r.header.Get("Content-Encoding") != "br" {
		t.Errorf("HEAD br: %d Content-Length %q Content-Encoding %q, want 200 6 br", r.status, r.header.Get("Content-Length"), r.header.Get("Content-Encoding"))
	}

	// A failed precondition on a variant: 412 with no stale Content-Length.
	for _, hdr := range [][]string{{`If-Match: "nope"`}, {"If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT"}} {
		r := get(t, hs, "/app.css", append(hdr, "Accept-Encoding: br")...)
		if r.status != 412 || r.header.Get("Content-Length") == "6" {
			t.Errorf("%s with br: %d Content-Length %q, want 412 without the variant's length", hdr[0], r.status, r.header.Get("Content-Length"))
		}
	}
	if r := get(t, hs, "/app.css", "If-Match: "+br, "Accept-Encoding: br"); r.status != 200 || r.body != "BROTLI" {
		t.Errorf("If-Match with the br tag: %d %q, want 200 BROTLI", r.status, r.body)
	}

	t.Run("disabled", func(t *testing.T) {
		_, hs := newServer(t, Options{Root: root, Precompressed: []string{}})
		if r := get(t, hs, "/app.css", "Accept-Encoding: br, gzip"); r.body != "IDENTITY" || r.header.Get("Vary") != "" {
			t.Errorf("Precompressed empty: %q Vary %q, want IDENTITY without Vary", r.body, r.header.Get("Vary"))
		}
	})
	t.Run("gzip only", func(t *testing.T) {
		_, hs := newServer(t, Options{Root: root, Precompressed: []string{"gzip"}})
		if r := get(t, hs, "/app.css", "Accept-Encoding: br, gzip"); r.body != "GZIP" {
			t.Errorf("Precompressed [gzip]: %q, want GZIP", r.body)
		}
	})
}
