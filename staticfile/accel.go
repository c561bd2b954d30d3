package staticfile

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// RedirectHeader is the backend response header that names a file for
// Gatehouse to send instead of the response body (nginx X-Accel-Redirect).
const RedirectHeader = "X-Accel-Redirect"

// mergeBackend copies into h the headers of a backend's X-Accel-Redirect
// response that ServeRedirect keeps, replacing the file's own: those
// nginx keeps (Accept-Ranges aside), plus Content-Language. A
// Content-Type that is empty is ignored, so the file's own type stays.
func mergeBackend(h, backend http.Header) {
	kept := [...]string{
		"Content-Type",
		"Content-Disposition",
		"Content-Language",
		"Cache-Control",
		"Expires",
		"Set-Cookie",
	}
	for _, k := range kept {
		vs := backend.Values(k)
		if len(vs) == 0 || (k == "Content-Type" && vs[0] == "") {
			continue
		}
		if k == "Content-Type" {
			vs = vs[:1]
		}
		h[k] = append([]string(nil), vs...)
	}
}

// RedirectTarget reads the X-Accel-Redirect header of a backend response.
// ok is false when there is none. Otherwise target is the path it names,
// percent-decoded (as nginx does) and without its query, which a file
// does not use; the proxy matches target against its internal routes,
// cuts the route's prefix off and calls [Server.ServeRedirect]. err is
// set, with ok true, when the header is present but unusable: several
// values, empty, a named location ("@name"), not an absolute path, bad
// percent-encoding, a NUL byte, a control character, a backslash, or an
// empty, "." or ".." segment. The proxy answers those with 502 and logs
// err; it never sends the header on to the client.
func RedirectTarget(h http.Header) (target string, ok bool, err error) {
	vs := h.Values(RedirectHeader)
	if len(vs) == 0 {
		return "", false, nil
	}
	if len(vs) > 1 {
		return "", true, fmt.Errorf("staticfile: %s: %d values, want one", RedirectHeader, len(vs))
	}
	v := strings.TrimSpace(vs[0])
	switch {
	case v == "":
		return "", true, fmt.Errorf("staticfile: %s: empty", RedirectHeader)
	case v[0] == '@':
		return "", true, fmt.Errorf("staticfile: %s: %q: named locations are not supported; give a path under an internal route", RedirectHeader, v)
	case v[0] != '/':
		return "", true, fmt.Errorf("staticfile: %s: %q: not an absolute path", RedirectHeader, v)
	}
	raw, _, _ := strings.Cut(v, "?")
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", true, fmt.Errorf("staticfile: %s: %q: %w", RedirectHeader, v, err)
	}
	if err := checkTarget(p); err != nil {
		return "", true, fmt.Errorf("staticfile: %s: %q: %w", RedirectHeader, v, err)
	}
	return p, true, nil
}

// checkTarget checks a decoded redirect path (starting with "/").
func checkTarget(p string) error {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == 0:
			return errors.New("contains a NUL byte")
		case c < 0x20 || c == 0x7f:
			return errors.New("contains a control character")
		case c == '\\':
			return errors.New("contains a backslash")
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch seg {
		case "":
			return errors.New("contains an empty segment")
		case ".", "..":
			return fmt.Errorf("contains a %q segment", seg)
		}
	}
	return nil
}

// IsAccelHeader reports whether a response header is one of the
// instructions a backend gives the server in front of it, which must
// never reach a client: every X-Accel-* header (X-Accel-Redirect,
// X-Accel-Buffering, X-Accel-Expires, X-Accel-Limit-Rate,
// X-Accel-Charset, ...), and X-Sendfile, X-Sendfile-Type and
// X-Lighttpd-Send-File (Apache's and lighttpd's equivalents, which leak
// file system paths). The name is matched case-insensitively.
func IsAccelHeader(name string) bool {
	const accel = "x-accel-"
	if len(name) >= len(accel) && strings.EqualFold(name[:len(accel)], accel) {
		return true
	}
	return strings.EqualFold(name, "X-Sendfile") ||
		strings.EqualFold(name, "X-Sendfile-Type") ||
		strings.EqualFold(name, "X-Lighttpd-Send-File")
}

// StripAccelHeaders deletes from h every header for which [IsAccelHeader]
// is true. The proxy calls it on every backend response, after reading
// X-Accel-Redirect and X-Accel-Buffering, whether it serves a file or not.
func StripAccelHeaders(h http.Header) {
	for k := range h {
		if IsAccelHeader(k) {
			delete(h, k)
		}
	}
}
