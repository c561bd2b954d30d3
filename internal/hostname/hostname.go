// Package hostname puts the host names of requests and TLS server names
// in the one canonical form ([Canonical]) that sites are looked up by, so
// that every spelling of a name ("Secret.Test.", "secret.test:443")
// reaches the same site, and a malformed one is refused.
package hostname

import (
	"net/netip"
	"strings"
)

// Canonical is the name a request's Host value (HTTP/2 :authority; for an
// absolute-form HTTP/1 target, net/http has already put the target's
// authority there, RFC 9112 §3.2.2) is looked up by, or ok = false for a
// malformed value (the request gets 400):
//
//   - the port goes; it must be digits (or empty);
//   - letters are lower-cased (ASCII);
//   - one trailing dot goes: "secret.test." names the same host as
//     "secret.test" in DNS, in Django's ALLOWED_HOSTS check and on the
//     TLS side (SNI), so it must reach the same site;
//   - an empty label ("secret.test..", ".secret.test", ".") is malformed,
//     as in nginx; so is any byte outside RFC 3986's reg-name (no '%',
//     '@', '/', '\', space) or a bracketed literal that is not IPv6;
//   - an IPv6 literal is put in its canonical text form ("[0:0::1]" is
//     "::1"), without brackets.
//
// An empty value (HTTP/1.0 without Host) is "" and ok. A canonical name
// is returned without allocating.
func Canonical(hostport string) (host string, ok bool) {
	h := hostport
	if h == "" {
		return "", true
	}
	if h[0] == '[' {
		i := strings.IndexByte(h, ']')
		if i < 0 || !validPort(h[i+1:]) {
			return "", false
		}
		return canonicalIPv6(h[1:i])
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h[:i], ':') >= 0 {
			// Several colons: an IPv6 address without brackets (then it
			// has no port), as a configuration names one.
			return canonicalIPv6(h)
		}
		if !validPort(h[i:]) {
			return "", false
		}
		h = h[:i]
	}
	if h == "" || h[0] == '.' {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !regNameByte[c] || c == '.' && i > 0 && h[i-1] == '.' {
			return "", false
		}
	}
	h = strings.ToLower(h) // returns h itself when it has no upper case
	if h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	return h, h != ""
}

// validPort reports whether p is "" or ":" followed by decimal digits.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != ':' || len(p) > 6 {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalIPv6 is Canonical for an IPv6 literal (no brackets, no port).
func canonicalIPv6(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", false
	}
	return a.String(), true
}

// regNameByte: the bytes of an RFC 3986 reg-name without pct-encoding
// (unreserved and sub-delims).
var regNameByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=" {
		t[c] = true
	}
	return t
}()
