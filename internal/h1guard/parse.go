package h1guard

import (
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// state is where the guard is in the inbound stream.
type state uint8

const (
	stHead         state = iota // expecting a request head
	stBody                      // Content-Length body, remain bytes left
	stChunkSize                 // chunk-size hex digits
	stChunkExt                  // chunk extension after ';'
	stChunkSizeLF               // LF ending the chunk-size line
	stChunkData                 // chunk data, remain bytes left
	stChunkDataCR               // CR after chunk data
	stChunkDataLF               // LF after chunk data
	stTrailerStart              // start of a trailer line, or the final CRLF
	stTrailerName               // trailer field name
	stTrailerValue              // trailer field value
	stTrailerLF                 // LF ending a trailer line
	stTrailerEndLF              // LF ending the trailer section
	stHold                      // after an upgrade request: hold what follows until its response is known
	stPass                      // after a switch of protocols: no more inspection
)

// result tells Read what to do with the bytes after those advance accepted.
type result uint8

const (
	resDone    result = iota // every byte was accepted
	resMore                  // the rest is an incomplete head
	resReject                // the rest starts with a rejected head
	resBodyErr               // the rest has a framing error inside a body
	resCut                   // the rest starts with an upgrade head: validate it in a Read of its own
	resHold                  // the rest follows an upgrade request whose response is not known yet
)

const (
	maxChunkLine = 1024     // chunk-size line without CRLF; Go allows 4095
	maxChunkHex  = 15       // hex digits in a chunk size; Go allows 16
	maxExcess    = 16 << 10 // net/http/internal.chunkedReader's overhead limit
	maxTrailer   = 2048     // trailer section; Go looks for its end within 4 KiB
	maxCLDigits  = 18       // Content-Length digits; Go parses up to 1<<63-1
)

// advance runs the state machine over b, the bytes after everything handed
// out or validated so far; b[0] is stream offset c.out. from is where to
// resume looking for the end of a head that starts at b[0]. It returns how
// many bytes of b are validated.
func (c *Conn) advance(b []byte, from int) (int, result) {
	n := 0
	for n < len(b) {
		switch c.st {
		case stHead:
			h := b[n:]
			end, resume := findHeadEnd(h, from)
			from = 0
			if end < 0 {
				if len(h) > c.max {
					c.reject(rHeadTooLarge)
					return n, resReject
				}
				c.resume = resume
				return n, resMore
			}
			if end > c.max {
				c.reject(rHeadTooLarge)
				return n, resReject
			}
			hd, r := checkHead(h[:end])
			if r != 0 {
				c.reject(r)
				return n, resReject
			}
			if hd.upgrade && n > 0 {
				// An upgrade head is handed out by a Read that hands out
				// nothing before it (see Conn.arm).
				return n, resCut
			}
			c.begin(hd, c.out+int64(n), end)
			n += end
		case stBody:
			k := int64(len(b) - n)
			if k > c.remain {
				k = c.remain
			}
			n += int(k)
			c.remain -= k
			if c.remain == 0 {
				c.st = c.next
			}
		case stHold:
			if !c.leaveHold() {
				return n, resHold
			}
		case stPass:
			return len(b), resDone
		default:
			k, r := c.chunked(b[n:])
			n += k
			if r != 0 {
				c.reject(r)
				return n, resBodyErr
			}
		}
	}
	return n, resDone
}

// begin sets the state for the request whose validated head (end bytes
// long) starts at stream offset start.
func (c *Conn) begin(hd head, start int64, end int) {
	if hd.empty {
		return // blank lines only: still expecting a request line
	}
	if c.record {
		c.heads = append(c.heads, start+int64(hd.skip))
	}
	next := stHead
	if hd.upgrade {
		next = stHold
		c.armAt = start + int64(end)
	}
	switch {
	case hd.chunked:
		c.next = next
		c.st = stChunkSize
		c.size, c.digits, c.line, c.excess = 0, 0, 0, 0
	case hd.length > 0:
		c.next = next
		c.st = stBody
		c.remain = hd.length
	default:
		c.st = next
	}
}

// findHeadEnd returns the length of the head at the start of h, up to and
// including the empty line that ends it (LF or CRLF line endings), or -1 and
// the offset to resume the search from once more bytes have arrived.
func findHeadEnd(h []byte, from int) (end, resume int) {
	i := from
	for {
		j := bytes.IndexByte(h[i:], '\n')
		if j < 0 {
			return -1, len(h)
		}
		i += j
		if i+1 >= len(h) {
			return -1, i
		}
		switch h[i+1] {
		case '\n':
			return i + 2, 0
		case '\r':
			if i+2 >= len(h) {
				return -1, i
			}
			if h[i+2] == '\n' {
				return i + 3, 0
			}
		}
		i++
	}
}

// nextLine splits the first line off h, which must contain a LF. A CR is
// removed only right before the LF.
func nextLine(h []byte) (line, rest []byte) {
	i := bytes.IndexByte(h, '\n')
	line, rest = h[:i], h[i+1:]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	return line, rest
}

// head is what checkHead learns from a valid head.
type head struct {
	empty   bool  // blank lines only, no request line
	skip    int   // bytes of blank lines before the request line
	chunked bool  // Transfer-Encoding: chunked
	length  int64 // Content-Length; 0 when absent
	upgrade bool  // a GET with Upgrade and Connection: upgrade
}

// checkHead validates a complete head. It has no side effects.
func checkHead(h []byte) (head, reasonCode) {
	var hd head
	full := len(h)
	for { // blank lines before the request line are handed through
		if len(h) > 0 && h[0] == '\n' {
			h = h[1:]
		} else if len(h) > 1 && h[0] == '\r' && h[1] == '\n' {
			h = h[2:]
		} else {
			break
		}
	}
	if len(h) == 0 {
		hd.empty = true
		return hd, 0
	}

	hd.skip = full - len(h)
	line, h := nextLine(h)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return hd, lineReason(line)
	}
	method, rest := line[:sp], line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return hd, lineReason(line)
	}
	target, version := rest[:sp], rest[sp+1:]
	for _, b := range method {
		if !httpguts.IsTokenRune(rune(b)) {
			return hd, orReason(ctlReason(b), rRequestLine)
		}
	}
	var http11 bool
	switch string(version) {
	case "HTTP/1.1":
		http11 = true
	case "HTTP/1.0":
	default:
		if r := lineReason(version); r != rRequestLine {
			return hd, r
		}
		if bytes.HasPrefix(version, []byte("HTTP/")) && bytes.IndexByte(version, ' ') < 0 {
			return hd, rVersion
		}
		return hd, rRequestLine
	}
	if string(method) == "CONNECT" {
		return hd, rConnect
	}
	if r := checkTarget(method, target); r != 0 {
		return hd, r
	}

	var (
		cl                 []byte
		nCL, nTE, nHost    int
		te                 []byte
		connUpgrade, upHdr bool
	)
	for {
		line, h = nextLine(h)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return hd, rObsFold
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
			if httpguts.IsTokenRune(rune(b)) {
				continue
			}
			if b == ' ' || b == '\t' {
				j := i
				for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
					j++
				}
				if j < len(line) && line[j] == ':' {
					return hd, rSpaceBeforeColon
				}
				return hd, rFieldLine
			}
			return hd, orReason(ctlReason(b), rFieldLine)
		}
		if colon <= 0 {
			return hd, rFieldLine
		}
		name, v := line[:colon], line[colon+1:]
		for _, b := range v {
			if b != '\t' && (b < 0x20 || b == 0x7f) {
				return hd, ctlReason(b)
			}
		}
		v = trimOWS(v)
		switch {
		case equalFold(name, "content-length"):
			if len(v) == 0 || len(v) > maxCLDigits {
				return hd, rBadCL
			}
			for _, b := range v {
				if b < '0' || b > '9' {
					return hd, rBadCL
				}
			}
			if nCL > 0 && !bytes.Equal(v, cl) {
				return hd, rConflictCL
			}
			nCL++
			cl = v
		case equalFold(name, "transfer-encoding"):
			nTE++
			te = v
		case equalFold(name, "host"):
			nHost++
		case equalFold(name, "connection"):
			if hasToken(v, "upgrade") {
				connUpgrade = true
			}
		case equalFold(name, "upgrade"):
			if len(v) > 0 {
				upHdr = true
			}
		}
	}

	if nTE > 1 {
		return hd, rMultipleTE
	}
	if nTE == 1 {
		if !http11 {
			return hd, rTEOnHTTP10
		}
		if !equalFold(te, "chunked") {
			return hd, rBadTE
		}
		if nCL > 0 {
			return hd, rTEWithCL
		}
	}
	if nHost > 1 {
		return hd, rMultipleHost
	}
	if http11 && nHost == 0 {
		return hd, rNoHost
	}

	hd.upgrade = connUpgrade && upHdr && string(method) == "GET"
	switch {
	case nTE == 1:
		hd.chunked = true
	case nCL > 0:
		for _, b := range cl {
			hd.length = hd.length*10 + int64(b-'0')
		}
	}
	return hd, 0
}

// checkTarget validates a request target: origin-form, absolute-form with an
// http or https scheme, or "*" for OPTIONS.
func checkTarget(method, t []byte) reasonCode {
	if len(t) == 0 {
		return rRequestLine
	}
	for _, b := range t {
		if b < 0x21 || b > 0x7e {
			return orReason(ctlReason(b), rTarget)
		}
	}
	switch {
	case t[0] == '/':
		return checkPath(t)
	case len(t) == 1 && t[0] == '*':
		if string(method) == "OPTIONS" {
			return 0
		}
		return rTarget
	}
	var rest []byte
	switch {
	case hasPrefixFold(t, "http://"):
		rest = t[len("http://"):]
	case hasPrefixFold(t, "https://"):
		rest = t[len("https://"):]
	default:
		return rTarget
	}
	i := 0
	for i < len(rest) && isHostChar(rest[i]) {
		i++
	}
	if i == 0 {
		return rTarget
	}
	if i < len(rest) && rest[i] == ':' {
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == i+1 || j-i-1 > 5 {
			return rTarget
		}
		i = j
	}
	rest = rest[i:]
	if len(rest) == 0 || rest[0] == '?' {
		return 0
	}
	if rest[0] != '/' {
		return rTarget
	}
	return checkPath(rest)
}

// checkPath checks the percent escapes of the path part of a target, which
// Go's URL parser would otherwise refuse after the guard let the head pass.
func checkPath(t []byte) reasonCode {
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '?':
			return 0
		case '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return rTarget
			}
			i += 2
		}
	}
	return 0
}

// chunked runs the chunked-body states over b and returns how many bytes it
// accepted; it stops early when the body ends.
func (c *Conn) chunked(b []byte) (int, reasonCode) {
	i := 0
	for i < len(b) {
		x := b[i]
		switch c.st {
		case stChunkData:
			k := int64(len(b) - i)
			if k > c.remain {
				k = c.remain
			}
			i += int(k)
			c.remain -= k
			if c.remain == 0 {
				c.st = stChunkDataCR
			}
			continue
		case stChunkDataCR:
			if x != '\r' {
				return i, rChunkCRLF
			}
			c.st = stChunkDataLF
		case stChunkDataLF:
			if x != '\n' {
				return i, rChunkCRLF
			}
			c.st = stChunkSize
			c.size, c.digits, c.line = 0, 0, 0
		case stChunkSize:
			switch {
			case isHex(x):
				if c.digits == maxChunkHex {
					return i, rChunkTooLarge
				}
				c.size = c.size<<4 | uint64(unhex(x))
				c.digits++
				c.line++
			case x == ';' && c.digits > 0:
				c.st = stChunkExt
				c.line++
			case x == '\r' && c.digits > 0:
				c.st = stChunkSizeLF
			default:
				return i, rChunkSize
			}
		case stChunkExt:
			switch {
			case x == '\r':
				c.st = stChunkSizeLF
			case x == '\t' || (x >= 0x20 && x < 0x7f):
				c.line++
				if c.line > maxChunkLine {
					return i, rChunkLineTooLong
				}
			default:
				return i, rChunkExt
			}
		case stChunkSizeLF:
			if x != '\n' {
				return i, rChunkSize
			}
			// Same accounting as net/http/internal.chunkedReader.beginChunk.
			c.excess += int64(c.line) + 2
			c.excess -= 16 + 2*int64(c.size)
			if c.excess < 0 {
				c.excess = 0
			}
			if c.excess > maxExcess {
				return i, rChunkOverhead
			}
			if c.size == 0 {
				c.st = stTrailerStart
				c.trailer = 0
			} else {
				c.st = stChunkData
				c.remain = int64(c.size)
			}
		case stTrailerStart:
			switch {
			case x == '\r':
				c.st = stTrailerEndLF
			case httpguts.IsTokenRune(rune(x)):
				c.st = stTrailerName
			default:
				return i, rTrailer
			}
		case stTrailerName:
			if x == ':' {
				c.st = stTrailerValue
			} else if !httpguts.IsTokenRune(rune(x)) {
				return i, rTrailer
			}
		case stTrailerValue:
			if x == '\r' {
				c.st = stTrailerLF
			} else if x != '\t' && (x < 0x20 || x == 0x7f) {
				return i, rTrailer
			}
		case stTrailerLF:
			if x != '\n' {
				return i, rTrailer
			}
			c.st = stTrailerStart
		case stTrailerEndLF:
			if x != '\n' {
				return i, rTrailer
			}
			c.st = c.next
			return i + 1, 0
		default:
			return i, 0
		}
		if c.st >= stTrailerStart {
			c.trailer++
			if c.trailer > maxTrailer {
				return i, rTrailerTooLarge
			}
		}
		i++
	}
	return i, 0
}

// lineReason picks the reason for a malformed request line.
func lineReason(line []byte) reasonCode {
	for _, b := range line {
		if r := ctlReason(b); r != 0 {
			return r
		}
	}
	return rRequestLine
}

func orReason(r, def reasonCode) reasonCode {
	if r != 0 {
		return r
	}
	return def
}

// ctlReason classifies a control character, or returns 0.
func ctlReason(b byte) reasonCode {
	switch {
	case b == 0:
		return rNUL
	case b == '\r':
		return rBareCR
	case b < 0x20 || b == 0x7f:
		return rCTL
	}
	return 0
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b <= '9':
		return b - '0'
	case b <= 'F':
		return b - 'A' + 10
	}
	return b - 'a' + 10
}

func isHostChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '-'
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[:len(s)], s)
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasToken reports whether the comma-separated list v holds token s
// (lower case), ignoring case.
func hasToken(v []byte, s string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if equalFold(trimOWS(item), s) {
			return true
		}
	}
	return false
}
