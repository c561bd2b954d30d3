package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// readStatusLine parses "HTTP/1.x NNN reason". A connection that ends
// before the first byte of the first status line is stale.
func (uc *upConn) readStatusLine(first bool) (code, minor int, err error) {
	line, err := uc.br.ReadSlice('\n')
	if err != nil {
		if first && len(line) == 0 && uc.br.Buffered() == 0 && (err == io.EOF || isConnReset(err)) {
			return 0, 0, &staleError{err: err}
		}
		if err == bufio.ErrBufferFull {
			return 0, 0, &ProtocolError{"status line too long"}
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	line = trimEOL(line)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
		line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, &ProtocolError{"malformed status line"}
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, 0, &ProtocolError{"malformed status code"}
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return 0, 0, &ProtocolError{"malformed status code"}
	}
	return code, int(line[7] - '0'), nil
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// readHeader parses header lines up to the empty line, strictly: no
// folded lines, no space before the colon, no control characters. All
// values of one head share one string allocation. The map is the
// connection's, reused per exchange: only the value slices are handed
// on, and nothing may read resp.Header after Body.Close.
func (uc *upConn) readHeader(trailer bool) (http.Header, error) {
	type field struct {
		key        string
		start, end int
	}
	var fieldsArr [24]field
	fields := fieldsArr[:0]
	vals := uc.scratch[:0]
	total := 0
	for {
		line, err := uc.br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return nil, &ProtocolError{"header line too long"}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		total += len(line)
		if total > maxHead || len(fields) >= maxLines {
			return nil, &ProtocolError{"response head too large"}
		}
		if trailer && (len(line) < 2 || line[len(line)-2] != '\r') {
			return nil, &ProtocolError{"trailer line without CRLF"}
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
			if !httpguts.IsTokenRune(rune(b)) {
				return nil, &ProtocolError{"invalid header name"}
			}
		}
		if colon <= 0 {
			return nil, &ProtocolError{"malformed header line"}
		}
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		for _, b := range v {
			if b < ' ' && b != '\t' || b == 0x7f {
				return nil, &ProtocolError{"invalid header value"}
			}
		}
		key := canonicalKey(line[:colon])
		start := len(vals)
		vals = append(vals, v...)
		fields = append(fields, field{key, start, len(vals)})
	}
	uc.scratch = vals[:0]
	all := string(vals)
	h := uc.hdr
	switch {
	case trailer:
		h = make(http.Header, len(fields))
	case h == nil:
		h = make(http.Header, 16)
		uc.hdr = h
	default:
		clear(h)
	}
	if len(fields) == 0 {
		return h, nil
	}
	slab := make([]string, len(fields))
	for i, f := range fields {
		v := all[f.start:f.end]
		if old, ok := h[f.key]; ok {
			h[f.key] = append(old, v)
			continue
		}
		slab[i] = v
		h[f.key] = slab[i : i+1 : i+1]
	}
	return h, nil
}

// readTrailerHeader reads the trailer section after the last chunk.
func (uc *upConn) readTrailerHeader() (http.Header, error) {
	return uc.readHeader(true)
}

// commonKeys interns canonical names of frequent response headers, by
// their canonical and lower-case spellings.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Age", "Allow", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Security-Policy",
		"Content-Type", "Cross-Origin-Opener-Policy", "Date", "Etag", "Expires", "Keep-Alive",
		"Last-Modified", "Link", "Location", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade", "Vary",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "Proxy-Authenticate",
	} {
		m[k] = k
		lower := []byte(k)
		for i, b := range lower {
			if 'A' <= b && b <= 'Z' {
				lower[i] = b + 'a' - 'A'
			}
		}
		m[string(lower)] = k
	}
	return m
}()

func canonicalKey(b []byte) string {
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// frame is the framing a response head declares.
type frame struct {
	chunked bool
	length  int64 // -1: none declared
	close   bool  // the connection ends after this response
}

// framing checks the framing headers of a response head, 1xx included
// (net/http refuses a bad Content-Length or Transfer-Encoding on any
// status, and so does this client). Conflicting or unknown framing is
// refused (502): a proxy that guessed could be desynchronised from the
// backend. Duplicate identical Content-Length lines are merged into one.
func framing(h http.Header, minor int) (frame, error) {
	f := frame{length: -1}
	conn := h["Connection"]
	f.close = minor == 0 && !hasToken(conn, "keep-alive") || hasToken(conn, "close")
	te := h["Transfer-Encoding"]
	cl := h["Content-Length"]
	if len(cl) > 0 {
		n, err := parseContentLength(cl)
		if err != nil {
			return f, err
		}
		f.length = n
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1]
		}
	}
	if len(te) > 0 {
		switch {
		case minor == 0:
			// net/http ignores it and reads to the close; a reader that
			// honours it is desynchronised from one that does not.
			return f, &ProtocolError{"Transfer-Encoding in an HTTP/1.0 response"}
		case len(cl) > 0:
			return f, &ProtocolError{"both Transfer-Encoding and Content-Length"}
		case len(te) != 1 || !asciiEqualFold(te[0], "chunked"):
			return f, &ProtocolError{"unsupported Transfer-Encoding"}
		}
		f.chunked = true
	}
	return f, nil
}

// parseContentLength accepts what net/http accepts: one decimal number,
// repeated identically on several lines at most (RFC 9110 §8.6).
func parseContentLength(cl []string) (int64, error) {
	for _, v := range cl[1:] {
		if v != cl[0] {
			return 0, &ProtocolError{"conflicting Content-Length"}
		}
	}
	n, err := strconv.ParseUint(cl[0], 10, 63)
	if err != nil {
		return 0, &ProtocolError{"invalid Content-Length"}
	}
	return int64(n), nil
}

// declaredTrailer is the Trailer map of the names a response announces.
func declaredTrailer(lines []string) http.Header {
	t := http.Header{}
	for _, line := range lines {
		for _, k := range splitTokens(line) {
			k = textproto.CanonicalMIMEHeaderKey(k)
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				continue
			}
			t[k] = nil
		}
	}
	return t
}

// splitTokens splits a comma-separated list, trimming spaces, dropping
// empty elements.
func splitTokens(s string) []string {
	var out []string
	for s != "" {
		var part string
		part, s, _ = cutByte(s, ',')
		part = trimOWS(part)
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = cutByte(v, ',')
			if asciiEqualFold(trimOWS(t), token) {
				return true
			}
		}
	}
	return false
}

func cutByte(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}
