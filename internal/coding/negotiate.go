package coding

import "strings"

// Negotiate chooses the content coding of a response from the request's
// Accept-Coding field values (r.Header.Values("Accept-Coding"); nil
// when the field is absent) among offers, which are in the server's order
// of preference. It follows RFC 9110 §12.5.3:
//
//   - A coding with q=0 is excluded; among the offered codings with the
//     highest weight, the first in offers wins (browsers send
//     "gzip, deflate, br, zstd", all at q=1, so offers decides).
//   - "*" gives its weight to every coding not listed by name, identity
//     included.
//   - identity is acceptable unless "identity;q=0", or "*;q=0" with no
//     identity entry, excludes it. It wins over a coding only when it is
//     listed by name with a higher weight ("gzip;q=0.5, identity");
//     otherwise it is the fall-back.
//   - Tokens and the "q" are case-insensitive, "x-gzip" means gzip,
//     whitespace around elements and parameters is ignored, and empty list
//     elements are skipped.
//   - A coding listed twice gets the smaller of its weights, so an
//     exclusion is never overridden by a later entry.
//   - An element whose token is not a token, or whose q is not a qvalue
//     ("q=2", "q=0.5000", "q=abc"), is ignored as a whole: a weight
//     that cannot be read neither selects nor excludes. Other parameters
//     are ignored.
//
// A request without the field gets Identity: the RFC allows any coding
// then, but a client that did not ask (curl, health checks, old tools) is
// not sent one. An empty field value also gets Identity.
//
// ok is false when nothing is acceptable, not even identity (for
// example "gzip;q=0, *;q=0" with gzip not offered); enc is then Identity
// and the caller sends the response uncoded anyway, as RFC 9110 §12.5.3
// permits. Negotiate does not allocate.
func Negotiate(accept []string, offers []Coding) (enc Coding, ok bool) {
	const unlisted = -1
	var w [Count]int
	for i := range w {
		w[i] = unlisted
	}
	star := unlisted
	for _, v := range accept {
		for v != "" {
			var elem string
			if i := strings.IndexByte(v, ','); i >= 0 {
				elem, v = v[:i], v[i+1:]
			} else {
				elem, v = v, ""
			}
			token, q, valid := parseElement(elem)
			if !valid {
				continue
			}
			if token == "*" {
				star = minWeight(star, q)
				continue
			}
			if e, known := Parse(token); known {
				w[e] = minWeight(w[e], q)
			}
		}
	}

	best, bestW := Identity, 0
	for _, e := range offers {
		if e == Identity || e >= Count {
			continue
		}
		q := w[e]
		if q == unlisted {
			q = star
		}
		if q > bestW {
			best, bestW = e, q
		}
	}
	idW := w[Identity]
	if idW != unlisted && idW > bestW {
		return Identity, true
	}
	if bestW > 0 {
		return best, true
	}
	switch {
	case idW != unlisted:
		return Identity, idW > 0
	case star != unlisted:
		return Identity, star > 0
	}
	return Identity, true
}

// minWeight merges a repeated entry: the smaller weight wins.
func minWeight(old, q int) int {
	if old < 0 || q < old {
		return q
	}
	return old
}

// parseElement reads one list element: codings [ OWS ";" OWS "q=" qvalue ].
// q is the weight in thousandths (0..1000). valid is false for an empty
// element, a bad token or a bad qvalue.
func parseElement(elem string) (token string, q int, valid bool) {
	params := ""
	if i := strings.IndexByte(elem, ';'); i >= 0 {
		elem, params = elem[:i], elem[i+1:]
	}
	token = trimOWS(elem)
	if !isToken(token) {
		return "", 0, false
	}
	q = 1000
	for params != "" {
		var p string
		if i := strings.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, ""
		}
		p = trimOWS(p)
		name, val, hasEq := strings.Cut(p, "=")
		if !hasEq || !strings.EqualFold(trimOWS(name), "q") {
			continue // another parameter: not in the grammar, ignored
		}
		var ok bool
		if q, ok = parseQ(trimOWS(val)); !ok {
			return "", 0, false
		}
	}
	return token, q, true
}

// parseQ reads a qvalue (RFC 9110 §12.4.2) as thousandths:
// ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int(s[0] - '0')
	if len(s) == 1 {
		return whole * 1000, true
	}
	if s[1] != '.' {
		return 0, false
	}
	frac, scale := 0, 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || (whole == 1 && c != '0') {
			return 0, false
		}
		frac += int(c-'0') * scale
		scale /= 10
	}
	return whole*1000 + frac, true
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
