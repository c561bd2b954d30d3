package h1guard

// statusWatch finds the status code of the final response in the bytes a
// server writes, across as many writes as it takes. It skips informational
// responses (1xx other than 101, such as 100 Continue and 103 Early Hints)
// up to the blank line that ends their head. It reads no further than the
// final status code, so response bodies cost nothing.
type statusWatch struct {
	line [12]byte // "HTTP/1.1 101"
	n    int      // bytes of line collected
	skip bool     // inside the head of an informational response
	nl   uint8    // while skipping: 1 after LF, 2 after LF CR
}

// feed consumes p. It returns the final status code once it is complete,
// -1 if the bytes do not start an HTTP/1.x status line, or 0 while more
// bytes are needed. Once it has returned a non-zero value it must not be
// fed again.
func (w *statusWatch) feed(p []byte) int {
	for _, b := range p {
		if w.skip {
			switch {
			case b == '\n' && w.nl != 0: // a blank line ends the head
				w.skip, w.n = false, 0
			case b == '\n':
				w.nl = 1
			case b == '\r' && w.nl == 1:
				w.nl = 2
			default:
				w.nl = 0
			}
			continue
		}
		w.line[w.n] = b
		w.n++
		if w.n < len(w.line) {
			continue
		}
		code := statusCode(w.line[:])
		if code < 100 || code > 199 || code == 101 {
			return code
		}
		w.skip, w.nl = true, 0
	}
	return 0
}

// statusCode parses "HTTP/1.x DDD" (x is 0 or 1); -1 if l is not that.
func statusCode(l []byte) int {
	if string(l[:7]) != "HTTP/1." || (l[7] != '0' && l[7] != '1') || l[8] != ' ' {
		return -1
	}
	code := 0
	for _, b := range l[9:12] {
		if b < '0' || b > '9' {
			return -1
		}
		code = code*10 + int(b-'0')
	}
	if code < 100 {
		return -1
	}
	return code
}
