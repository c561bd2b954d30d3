package staticfile

import "strings"

// qUnset marks a coding the Accept-Encoding header did not mention.
const qUnset = -1

// negotiate picks the representation to send from the Accept-Encoding
// header values (RFC 9110 §12.5.3): it returns the index in encs of the
// coding to serve, or -1 for the file itself (identity). avail[i] says
// whether the sibling for encs[i] exists.
//
//   - A coding is acceptable when its q (its own, else that of "*") is
//     above 0; "x-gzip" is gzip. Tokens are case-insensitive; an entry
//     whose q cannot be parsed is ignored.
//   - The acceptable available coding with the highest q wins; ties go to
//     the server's order (encs).
//   - Identity wins only over a lower q: its own, else that of "*". When
//     the header names neither, identity ranks below any acceptable
//     coding, so "gzip;q=0.5" still gets gzip.
//   - With no acceptable coding, identity is sent, even when the header
//     excludes it ("identity;q=0"): RFC 9110 allows that instead of 406,
//     and a file is better than an error page.
//
// It allocates nothing.
func negotiate(values []string, encs []encoding, avail *[maxEncodings]bool) int {
	var q [maxEncodings]int
	for i := range q {
		q[i] = qUnset
	}
	star, ident := qUnset, qUnset
	for _, v := range values {
		for v != "" {
			var item string
			if i := strings.IndexByte(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				item, v = v, ""
			}
			token, params, _ := strings.Cut(item, ";")
			token = strings.TrimSpace(token)
			if token == "" {
				continue
			}
			qv, ok := parseQ(params)
			if !ok {
				continue
			}
			switch {
			case token == "*":
				star = qv
			case strings.EqualFold(token, "identity"):
				ident = qv
			default:
				if strings.EqualFold(token, "x-gzip") {
					token = "gzip"
				}
				for i := range encs {
					if strings.EqualFold(token, encs[i].token) {
						q[i] = qv
					}
				}
			}
		}
	}
	best, bestQ := -1, 0
	for i := range encs {
		if !avail[i] {
			continue
		}
		qi := q[i]
		if qi == qUnset {
			qi = star
		}
		if qi > bestQ {
			best, bestQ = i, qi
		}
	}
	if best < 0 {
		return -1
	}
	if ident == qUnset {
		ident = star
	}
	if ident > bestQ {
		return -1
	}
	return best
}

// parseQ reads the q parameter from an Accept-Encoding item's parameters
// ("; q=0.5"), in thousandths; no q means 1000. ok is false when q is
// present but malformed. Other parameters are ignored.
func parseQ(params string) (q int, ok bool) {
	q = 1000
	for params != "" {
		var p string
		if i := strings.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, ""
		}
		name, val, found := strings.Cut(p, "=")
		if !found || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		return parseQValue(strings.TrimSpace(val))
	}
	return q, true
}

// parseQValue parses a qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")].
func parseQValue(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	rest := s[1:]
	if rest == "" {
		return q, true
	}
	if rest[0] != '.' || len(rest) > 4 {
		return 0, false
	}
	scale := 100
	for i := 1; i < len(rest); i++ {
		c := rest[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
