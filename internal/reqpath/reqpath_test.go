package reqpath

import (
	"bufio"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// pathCases: raw path → forwarded form and match form, or the reason it
// is refused. Every form of issue 12 item 2 is here.
var pathCases = []struct {
	raw, fwd, match, reason string
}{
	{raw: "", fwd: "/", match: "/"},
	{raw: "/", fwd: "/", match: "/"},
	{raw: "/static/admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/.well-known/acme-challenge/t0k", fwd: "/.well-known/acme-challenge/t0k", match: "/.well-known/acme-challenge/t0k"},
	{raw: "/a/.b/..c/d../e.", fwd: "/a/.b/..c/d../e.", match: "/a/.b/..c/d../e."},
	{raw: "/a;b=c/d:e@f!$&'()*+,=", fwd: "/a;b=c/d:e@f!$&'()*+,=", match: "/a;b=c/d:e@f!$&'()*+,="},

	// Issue 12: these reached a route that denies /static/admin/.
	{raw: "/static//admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/./admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/x/../admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/x/%2e%2e/admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/%2e/admin/x", fwd: "/admin/x", match: "/admin/x"},
	// ... and these escaped the api zone.
	{raw: "//api/x", fwd: "/api/x", match: "/api/x"},
	{raw: "/./api/x", fwd: "/api/x", match: "/api/x"},
	{raw: "/API/x", fwd: "/API/x", match: "/API/x"}, // case is kept: see case_insensitive

	// More spellings of the same thing.
	{raw: "/static/x/%2E%2E/admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/x/.%2e/admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/x/%2e./admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/%2e/admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/%61dmin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/%73tatic/%41dmin/%7e", fwd: "/static/Admin/~", match: "/static/Admin/~"},
	{raw: "///static///admin///x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/x/y/../../admin/x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/static/admin/./x", fwd: "/static/admin/x", match: "/static/admin/x"},
	{raw: "/a/b/..", fwd: "/a/", match: "/a/"},
	{raw: "/a/b/.", fwd: "/a/b/", match: "/a/b/"},
	{raw: "/a/b/%2e", fwd: "/a/b/", match: "/a/b/"},
	{raw: "/a//", fwd: "/a/", match: "/a/"},
	{raw: "/a/..", fwd: "/", match: "/"},
	{raw: "/.", fwd: "/", match: "/"},
	{raw: "//", fwd: "/", match: "/"},

	// Encoded slashes: kept in what is forwarded, a "/" for matching.
	{raw: "/static%2Fadmin/x", fwd: "/static%2Fadmin/x", match: "/static/admin/x"},
	{raw: "/static%2fadmin%2fx", fwd: "/static%2Fadmin%2Fx", match: "/static/admin/x"},
	{raw: "/files/a%2Fb.txt", fwd: "/files/a%2Fb.txt", match: "/files/a/b.txt"},
	{raw: "/a/b%2F", fwd: "/a/b%2F", match: "/a/b/"},
	{raw: "/static%2F..%2Fadmin/x", reason: pathSlashDots},
	{raw: "/static/x/..%2Fadmin/x", reason: pathSlashDots},
	{raw: "/static/x/%2e%2e%2fadmin/x", reason: pathSlashDots},
	{raw: "/static/x%2F..%2F../admin/x", reason: pathSlashDots},
	{raw: "/static%2F%2Fadmin/x", reason: pathSlashDots},
	{raw: "/%2Fadmin/x", reason: pathSlashDots},
	{raw: "/a%2F/b", reason: pathSlashDots},
	{raw: "/x%2F.", reason: pathSlashDots},
	{raw: "/public%2Fx/../admin/x", reason: pathPopsEncSlash},

	// Escapes: upper-case hex, unreserved decoded, the rest kept or added.
	{raw: "/a%20b", fwd: "/a%20b", match: "/a b"},
	{raw: "/a b", fwd: "/a%20b", match: "/a b"}, // HTTP/2 :path may hold a space
	{raw: "/a%3bb%3Fc", fwd: "/a%3Bb%3Fc", match: "/a;b?c"},
	{raw: "/é", fwd: "/%C3%A9", match: "/é"},
	{raw: "/a#b", fwd: "/a%23b", match: "/a#b"},
	{raw: `/a\b`, fwd: "/a%5Cb", match: `/a\b`},
	{raw: "/a|b{c}^`[d]\"<>", fwd: "/a%7Cb%7Bc%7D%5E%60%5Bd%5D%22%3C%3E", match: "/a|b{c}^`[d]\"<>"},
	{raw: "/%252e%252e/admin", fwd: "/%252e%252e/admin", match: "/%2e%2e/admin"}, // decoded once, as backends do
	{raw: "/%00", fwd: "/%00", match: "/\x00"},

	// Refused.
	{raw: "/..", reason: pathAboveRoot},
	{raw: "/../static/admin/x", reason: pathAboveRoot},
	{raw: "/a/../..", reason: pathAboveRoot},
	{raw: "/%2e%2e/x", reason: pathAboveRoot},
	{raw: "/static/x/../../../admin", reason: pathAboveRoot},
	{raw: "/a%zz", reason: pathBadEscape},
	{raw: "/a%2", reason: pathBadEscape},
	{raw: "/a%", reason: pathBadEscape},
	{raw: "/a%/b", reason: pathBadEscape},
	{raw: "*", reason: pathNotAbsolute},
	{raw: "a.test:443", reason: pathNotAbsolute},
}

func TestNormalizePath(t *testing.T) {
	for _, tc := range pathCases {
		fwd, match, reason := Normalize(tc.raw)
		if fwd != tc.fwd || match != tc.match || reason != tc.reason {
			t.Errorf("Normalize(%q) = %q, %q, %q; want %q, %q, %q", tc.raw, fwd, match, reason, tc.fwd, tc.match, tc.reason)
			continue
		}
		if reason == "" {
			checkNormalPath(t, tc.raw, fwd, match)
		}
	}
}

// FuzzNormalizePath checks the invariants of every accepted path (see
// checkNormalPath), that the allocation-free path for paths already in
// normal form agrees with the general one, and that a path without
// escapes is refused only when it climbs above the root.
func FuzzNormalizePath(f *testing.F) {
	for _, tc := range pathCases {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		fwd, match, reason := Normalize(raw)
		if strings.HasPrefix(raw, "/") {
			// The fast path must agree with the general one.
			if f2, m2, r2 := normalizeSlow(raw); f2 != fwd || m2 != match || r2 != reason {
				t.Fatalf("Normalize(%q) = %q, %q, %q but normalizeSlow = %q, %q, %q", raw, fwd, match, reason, f2, m2, r2)
			}
		}
		if reason != "" {
			if fwd != "" || match != "" {
				t.Fatalf("Normalize(%q) refused (%s) but returned %q, %q", raw, reason, fwd, match)
			}
			if strings.HasPrefix(raw, "/") && !strings.Contains(raw, "%") && reason != pathAboveRoot {
				t.Fatalf("Normalize(%q): refused (%s), want accepted", raw, reason)
			}
			return
		}
		checkNormalPath(t, raw, fwd, match)
	})
}

// checkNormalPath checks the output of normalizePath for an accepted raw
// path:
//   - fwd starts with "/", has no "//", no "." or ".." segment, no %2e,
//     only bytes allowed raw in a path and escapes in upper case that are
//     not of unreserved characters;
//   - normalising is idempotent;
//   - match is fwd decoded (Go's url.PathUnescape, which is what Django
//     and Go's http.Request.URL.Path make of it);
//   - match is clean as Go's path.Clean (and Python's posixpath.normpath,
//     which agrees for absolute paths) sees it, up to a trailing slash;
//   - a backend that decodes and cleans the raw path as sent arrives at
//     the same path: routing on match agrees with that backend whether
//     or not Gatehouse had rewritten the path.
func checkNormalPath(t *testing.T, raw, fwd, match string) {
	t.Helper()
	if !strings.HasPrefix(fwd, "/") || strings.Contains(fwd, "//") {
		t.Fatalf("Normalize(%q): fwd %q does not start with / or has //", raw, fwd)
	}
	for _, s := range strings.Split(fwd, "/") {
		if s == "." || s == ".." {
			t.Fatalf("Normalize(%q): fwd %q has a dot segment", raw, fwd)
		}
	}
	if strings.Contains(strings.ToLower(fwd), "%2e") {
		t.Fatalf("Normalize(%q): fwd %q holds an escaped dot", raw, fwd)
	}
	for i := 0; i < len(fwd); i++ {
		c := fwd[i]
		switch {
		case c == '/':
		case c == '%':
			if i+2 >= len(fwd) || !strings.ContainsRune(upperHex, rune(fwd[i+1])) || !strings.ContainsRune(upperHex, rune(fwd[i+2])) {
				t.Fatalf("Normalize(%q): fwd %q has a bad or lower-case escape at %d", raw, fwd, i)
			}
			if d := unhexByte(fwd[i+1])<<4 | unhexByte(fwd[i+2]); pathClass[d] == pathUnreserved {
				t.Fatalf("Normalize(%q): fwd %q keeps an escaped unreserved %q", raw, fwd, d)
			}
			i += 2
		case pathClass[c] == pathEscaped:
			t.Fatalf("Normalize(%q): fwd %q holds raw byte %q", raw, fwd, c)
		}
	}
	if f2, m2, r2 := Normalize(fwd); f2 != fwd || m2 != match || r2 != "" {
		t.Fatalf("not idempotent: Normalize(%q) = %q, %q; normalizePath of that = %q, %q, %q", raw, fwd, match, f2, m2, r2)
	}
	dec, err := url.PathUnescape(fwd)
	if err != nil || dec != match {
		t.Fatalf("Normalize(%q): match %q, but fwd %q decodes to %q (%v)", raw, match, fwd, dec, err)
	}
	if c := path.Clean(match); c != match && c+"/" != match {
		t.Fatalf("Normalize(%q): match %q is not clean (path.Clean: %q)", raw, match, c)
	}
	if rawDec, err := url.PathUnescape(raw); err == nil && raw != "" {
		if a, b := path.Clean(rawDec), path.Clean(match); a != b {
			t.Fatalf("Normalize(%q): match %q, but a decode-and-clean backend sees the raw path as %q", raw, match, a)
		}
	}
}

func TestNormalPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET /static/app.css?v=3 HTTP/1.1\r\nHost: a\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		raw, rest := Split(r)
		Normalize(raw)
		WireSafeQuery(rest)
	}); n != 0 {
		t.Errorf("a path in normal form: %.1f allocs, want 0", n)
	}
}

func TestHasPrefixFold(t *testing.T) {
	for _, tc := range []struct {
		s, prefix string
		want      bool
	}{
		{"/API/x", "/api/", true},
		{"/api/x", "/API/", true},
		{"/ap", "/api", false},
		{"/apj/", "/api/", false},
		{"/ſ", "/s", false}, // no Unicode folding
		{"/[", "/{", false}, // only letters fold
	} {
		if got := HasPrefixFold(tc.s, tc.prefix); got != tc.want {
			t.Errorf("HasPrefixFold(%q, %q) = %v, want %v", tc.s, tc.prefix, got, tc.want)
		}
	}
}
