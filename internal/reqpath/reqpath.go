// Package reqpath normalises request paths for the proxy: [Split] takes
// the path of a request's target as the client sent it, [Normalize] gives
// the form that is forwarded and the decoded form that routes are matched
// on (or the reason to refuse the path with 400), and [WireSafeQuery]
// escapes what an HTTP/1.1 request line cannot carry in a query.
//
// A route's rules (allow/deny, zones, body limit) hold only if the
// backend serves the path the route was chosen for. Clients
// can spell one path many ways (/static//admin/, /static/./admin/,
// /static/x/../admin/, /static/x/%2e%2e/admin/), and backends that clean
// or decode paths (Go's http.FileServer, Django's URL resolver and static
// view, which see the percent-decoded path) map those spellings back to
// the one they name. So Gatehouse matches routes on one canonical form and
// forwards that form, never the spelling it was sent (docs/config.md,
// Routing):
//
//   - escapes of unreserved characters (ALPHA DIGIT - . _ ~, RFC 3986
//     §2.3) are decoded, so %2e is a dot; every other escape is kept, with
//     upper-case hex; a byte that may not appear raw in a path segment
//     (RFC 3986 §3.3: space, '"', '<', '>', '\', '^', '`', '{', '|', '}',
//     '[', ']', '#', controls, bytes ≥ 0x80) is escaped;
//   - repeated slashes are merged (nginx merge_slashes on), then "." and
//     ".." segments are removed (RFC 3986 §5.2.4); a ".." that would climb
//     above "/" is an error (400), as in nginx;
//   - %2F is never decoded in what is forwarded, because an application
//     may tell "a%2Fb" from "a/b". Routes, though, are matched on the
//     fully decoded path, where %2F is a "/", because that is what Django
//     (and Go's FileServer) see. A path whose %2F would, once decoded,
//     form an empty or dot segment ("/a%2F..%2Fadmin", "/%2F%2Fx"), or
//     that asks ".." to remove a segment holding a %2F, is an error: there
//     the decoded and the undecoded readings name different paths, and no
//     route choice is right for both.
//
// For every path that is accepted, the forwarded form decoded in full is
// the match path, and the match path is already what path.Clean (Go) and
// posixpath.normpath (Django) make of it, up to a trailing slash. So a
// backend that decodes, or decodes and cleans, sees the path the route was
// chosen for, and one that does neither sees the canonical form.
package reqpath

import (
	"net/http"
	"strings"
)

// pathClass[c] describes byte c in a path segment.
var pathClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = pathUnreserved
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = pathUnreserved
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = pathUnreserved
	}
	for _, c := range "-._~" {
		t[c] = pathUnreserved
	}
	for _, c := range "!$&'()*+,;=:@" {
		t[c] = pathLiteral
	}
	return t
}()

const (
	pathEscaped    = 0 // must be percent-encoded
	pathUnreserved = 1 // kept raw, and decoded when escaped
	pathLiteral    = 2 // sub-delims, ':' and '@': kept raw, kept escaped when escaped
)

const upperHex = "0123456789ABCDEF"

// Reasons Normalize refuses a path (the proxy logs them and answers 400).
const (
	pathBadEscape    = "malformed percent escape"
	pathAboveRoot    = "path climbs above the root"
	pathSlashDots    = "encoded slash next to an empty or dot segment"
	pathNotAbsolute  = "path does not start with /"
	pathPopsEncSlash = "dot-segment removes a segment holding an encoded slash"
)

// Normalize returns the normalised form of an escaped request path
// (the target's path part, as sent): fwd is what is forwarded, match the
// fully decoded form that routes are matched on. A path already in normal
// form (the usual case) is returned as is, without allocating. reason is
// non-empty when the path must be refused with 400.
func Normalize(raw string) (fwd, match, reason string) {
	if raw == "" {
		return "/", "/", ""
	}
	if raw[0] != '/' {
		return "", "", pathNotAbsolute
	}
	if isNormalPath(raw) {
		return raw, raw, ""
	}
	return normalizeSlow(raw)
}

// isNormalPath reports whether p (starting with '/') needs no change: no
// escape, no byte that must be escaped, no empty segment but a trailing
// one, and no dot segment.
func isNormalPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			rest := p[i+1:]
			if rest == "" {
				return true
			}
			if rest[0] == '/' {
				return false
			}
			if rest[0] == '.' && (len(rest) == 1 || rest[1] == '/' ||
				rest[1] == '.' && (len(rest) == 2 || rest[2] == '/')) {
				return false
			}
			continue
		}
		if pathClass[c] == pathEscaped {
			return false
		}
	}
	return true
}

// normalizeSlow is Normalize for a path that needs work.
func normalizeSlow(raw string) (fwd, match, reason string) {
	out := make([]byte, 0, len(raw)+8)
	// kept holds, for each segment kept so far, where its '/' starts in
	// out and whether it holds an encoded slash.
	type seg struct {
		start    int
		encSlash bool
	}
	var kept []seg
	anyEncSlash, anyEscape := false, false
	trailing := false
	for i := 0; i < len(raw); {
		// raw[i] == '/'
		j := i + 1
		for j < len(raw) && raw[j] != '/' {
			j++
		}
		last := j == len(raw)
		start := len(out)
		out = append(out, '/')
		encSlash := false
		for k := i + 1; k < j; k++ {
			c := raw[k]
			if c == '%' {
				if k+2 >= j || !isHexDigit(raw[k+1]) || !isHexDigit(raw[k+2]) {
					return "", "", pathBadEscape
				}
				d := unhexByte(raw[k+1])<<4 | unhexByte(raw[k+2])
				k += 2
				if pathClass[d] == pathUnreserved {
					out = append(out, d)
					continue
				}
				if d == '/' {
					encSlash = true
				}
				anyEscape = true
				out = append(out, '%', upperHex[d>>4], upperHex[d&15])
				continue
			}
			if pathClass[c] == pathEscaped {
				anyEscape = true
				out = append(out, '%', upperHex[c>>4], upperHex[c&15])
				continue
			}
			out = append(out, c)
		}
		name := string(out[start+1:])
		switch name {
		case "", ".":
			out = out[:start]
			trailing = last
		case "..":
			out = out[:start]
			if len(kept) == 0 {
				return "", "", pathAboveRoot
			}
			top := kept[len(kept)-1]
			if top.encSlash {
				return "", "", pathPopsEncSlash
			}
			out = out[:top.start]
			kept = kept[:len(kept)-1]
			trailing = last
		default:
			kept = append(kept, seg{start: start, encSlash: encSlash})
			anyEncSlash = anyEncSlash || encSlash
			trailing = false
		}
		i = j
	}
	if trailing || len(out) == 0 {
		out = append(out, '/')
	}
	fwd = string(out)
	if !anyEscape {
		return fwd, fwd, ""
	}
	match = decodeAll(fwd)
	if anyEncSlash && !isCleanDecoded(match) {
		return "", "", pathSlashDots
	}
	return fwd, match, ""
}

// decodeAll decodes every escape of p, which holds only valid ones.
func decodeAll(p string) string {
	n := strings.Count(p, "%")
	if n == 0 {
		return p
	}
	b := make([]byte, 0, len(p)-2*n)
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '%' && i+2 < len(p) {
			b = append(b, unhexByte(p[i+1])<<4|unhexByte(p[i+2]))
			i += 2
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// isCleanDecoded reports whether a decoded path (starting with '/') has no
// empty segment but a trailing one, and no "." or ".." segment.
func isCleanDecoded(p string) bool {
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i+1:], '/')
		var name string
		if j < 0 {
			name = p[i+1:]
			return name != "." && name != ".."
		}
		name = p[i+1 : i+1+j]
		if name == "" || name == "." || name == ".." {
			return false
		}
		i += 1 + j
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhexByte(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// Split splits the target of r into its path as sent (escaped; ""
// for an absolute-form target without one) and the rest ("?query", or "").
// An origin-form target (HTTP/1, and HTTP/2's :path) is taken as the
// client wrote it, so that %2F and its neighbours are seen exactly; any
// other form from what net/http parsed. Authority-form (CONNECT) and "*"
// give a path that does not start with '/', which Normalize refuses.
func Split(r *http.Request) (path, rest string) {
	if u := r.RequestURI; len(u) > 0 && u[0] == '/' {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i], u[i:]
		}
		return u, ""
	}
	if r.URL == nil {
		return r.RequestURI, ""
	}
	if r.URL.Opaque != "" || r.URL.Host == "" && r.URL.Path != "" && r.URL.Path[0] != '/' {
		// "*" (OPTIONS *, or GET * over HTTP/2) and other odd forms.
		return r.RequestURI, ""
	}
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		rest = "?" + r.URL.RawQuery
	}
	if r.Method == "CONNECT" && r.URL.Path == "" {
		return r.URL.Host, rest
	}
	return r.URL.EscapedPath(), rest
}

// WireSafeQuery escapes the bytes of a query that may not appear raw in an
// HTTP/1.1 request line (space, controls, bytes ≥ 0x80). HTTP/1 clients
// cannot send them (the request line would not parse), but HTTP/2's :path
// may carry them, and they must not reach a backend's request line raw.
// Everything else of the query is forwarded as sent.
func WireSafeQuery(q string) string {
	i := 0
	for i < len(q) && q[i] > ' ' && q[i] < 0x7f {
		i++
	}
	if i == len(q) {
		return q
	}
	b := make([]byte, 0, len(q)+16)
	b = append(b, q[:i]...)
	for ; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// HasPrefixFold reports whether s begins with prefix, ASCII letters
// compared without case, as routes with case_insensitive match (bytes
// ≥ 0x80 must be equal: no Unicode folding, so "/ſ" never matches "/s").
func HasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if a == b {
			continue
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
