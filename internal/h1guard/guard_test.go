package h1guard

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose Read returns the given chunks one by one
// (each possibly over several calls if the caller's buffer is smaller),
// then io.EOF.
type scriptConn struct {
	chunks [][]byte
	cur    []byte
}

func (s *scriptConn) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if len(s.chunks) == 0 {
			return 0, io.EOF
		}
		s.cur, s.chunks = s.chunks[0], s.chunks[1:]
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

func (s *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// streamCase is a raw inbound stream and what the guard must make of it.
type streamCase struct {
	name   string
	in     string
	max    int    // Options.MaxHeadBytes
	reason string // "" if accepted
	// prefix is what the guard hands out before the marker request (head
	// rejection) or before ErrRejected (chunk framing error). Unused when
	// the stream is accepted: then the output must equal in.
	prefix  string
	bodyErr bool // a chunked-body error: Read fails with ErrRejected
	// pass: the server answers each upgrade request with 101 and hijacks
	// the conn; Passthrough must report true at the end. Otherwise the
	// server answers resp (ok200 if empty) without hijacking.
	pass bool
	resp string
}

// responder plays the server's side of an upgrade in unit tests: once the
// guard has handed out an upgrade head and watches for its response, it
// writes resp through the guard in writes of split bytes (0: one write),
// and calls Hijacked before (hijack 1) or after (hijack 2) the writes, or
// never (0).
type responder struct {
	resp   []byte
	split  int
	hijack int
	arms   int // upgrade heads answered
}

func (r *responder) answer(c *Conn) {
	if c.arms == r.arms {
		return
	}
	r.arms = c.arms
	if r.hijack == 1 {
		c.Hijacked()
	}
	for b := r.resp; len(b) > 0; {
		n := len(b)
		if r.split > 0 {
			n = min(n, r.split)
		}
		c.Write(b[:n])
		b = b[n:]
	}
	if r.hijack == 2 {
		c.Hijacked()
	}
}

const (
	ok200   = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	resp101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
)

// responder answers the upgrade requests of tc.
func (tc streamCase) responder() *responder {
	r := &responder{resp: []byte(ok200)}
	if tc.pass {
		r.resp, r.hijack = []byte(resp101), 2
	}
	if tc.resp != "" {
		r.resp = []byte(tc.resp)
	}
	return r
}

const (
	getA     = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	postCL   = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
	chunkHd  = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunkReq = chunkHd + "5;name=val;x=\"q r\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\nX-Other:\tv\r\n\r\n"
	wsHead   = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n"
	binary   = "\x81\x05\x00\xff\r\nGET / HTTP/1.1\r\nTransfer-Encoding: x\r\nContent-Length: 3\r\n\r\n\x00"
	// upHead is an upgrade request on a path the e2e server does not
	// upgrade: it answers 200 and keeps the connection.
	upHead = "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	// Attacks the guard must still see after an upgrade that did not
	// happen.
	clte = "POST /clte HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	fold = "GET /fold HTTP/1.1\r\nHost: a\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n"
	te10 = "POST /te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
)

func hdr(fields string) string { return "GET / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n" }

func post(fields, body string) string {
	return "POST /p HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n" + body
}

var streamCases = []streamCase{
	{name: "get", in: getA},
	{name: "post content-length", in: postCL},
	{name: "chunked with extensions and trailers", in: chunkReq},
	{name: "chunked empty", in: chunkHd + "0\r\n\r\n"},
	{name: "chunked upper hex", in: chunkHd + "A\r\n0123456789\r\n0\r\n\r\n"},
	{name: "pipelined", in: getA + postCL + chunkReq + "GET /last HTTP/1.1\r\nHost: a\r\n\r\n"},
	{name: "bare LF line endings", in: "GET /lf HTTP/1.1\nHost: a\nX: y\n\n"},
	{name: "http/1.0 without host", in: "GET / HTTP/1.0\r\n\r\n"},
	{name: "absolute form", in: "GET http://example.com:8080/x?y=%zz HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"},
	{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
	{name: "same content-length twice", in: post("Content-Length: 3\r\nContent-length:3 \r\n", "abc")},
	{name: "content-length zero", in: post("Content-Length: 00\r\n", "") + getA},
	{name: "transfer-encoding case and OWS", in: post("Transfer-Encoding: \t Chunked \r\n", "1\r\nx\r\n0\r\n\r\n")},
	{name: "blank line after post", in: postCL + "\r\n" + getA},
	{name: "obs-text in value", in: hdr("X-Name: caf\xc3\xa9\r\n")},
	{name: "body bytes look like a bad head", in: post("Content-Length: 36\r\n", "GET / HTTP/1.1\r\nTransfer-Encoding: x")},
	{name: "websocket upgrade then binary", in: wsHead + binary, pass: true},
	{name: "upgrade with a body", in: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabc" + binary, pass: true},
	{name: "upgrade without connection token", in: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n" + binary,
		reason: "control character in head", prefix: "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n"},
	{name: "upgrade not switched then get", in: upHead + getA},
	{name: "upgrade not switched twice", in: upHead + upHead + "GET /last HTTP/1.1\r\nHost: a\r\n\r\n"},
	{name: "get then upgrade not switched then get", in: getA + upHead + getA},
	{name: "upgrade with a body not switched", in: "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabc" + postCL},
	{name: "upgrade chunked body not switched", in: "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" + getA},
	{name: "upgrade 100 continue then 200", in: upHead + getA, resp: "HTTP/1.1 100 Continue\r\n\r\n" + ok200},
	{name: "upgrade 103 then 404", in: upHead + getA, resp: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n"},
	{name: "upgrade http/1.0 response", in: "GET /up HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade, keep-alive\r\n\r\n" + getA, resp: "HTTP/1.0 200 OK\r\n\r\n"},
	{name: "upgrade answered with garbage", in: upHead + getA, resp: "garbage that is no status line"},
	{name: "upgrade not switched then CL+TE", in: upHead + clte, reason: "Transfer-Encoding with Content-Length", prefix: upHead},
	{name: "upgrade not switched then obs-fold", in: upHead + fold, reason: "obs-fold in header", prefix: upHead},
	{name: "upgrade not switched then TE on http/1.0", in: upHead + te10, reason: "Transfer-Encoding on HTTP/1.0", prefix: upHead},
	{name: "upgrade 103 then 200 then CL+TE", in: upHead + getA + clte, reason: "Transfer-Encoding with Content-Length", prefix: upHead + getA,
		resp: "HTTP/1.1 103 Early Hints\r\n\r\n" + ok200},
	{name: "upgrade not switched then binary", in: upHead + binary, reason: "control character in head", prefix: upHead},
	{name: "get then websocket upgrade then binary", in: getA + wsHead + binary, pass: true},
	{name: "websocket upgrade after 103", in: wsHead + binary, pass: true, resp: "HTTP/1.1 103 Early Hints\r\n\r\n" + resp101},
	{name: "post upgrade is not passthrough", in: "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n" + binary,
		reason: "control character in head", prefix: "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"},

	{name: "content-length and chunked", in: post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), reason: "Transfer-Encoding with Content-Length"},
	{name: "chunked and content-length", in: post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "0\r\n\r\n"), reason: "Transfer-Encoding with Content-Length"},
	{name: "gzip transfer-encoding", in: post("Transfer-Encoding: gzip\r\n", ""), reason: "unsupported Transfer-Encoding"},
	{name: "transfer-encoding list", in: post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), reason: "unsupported Transfer-Encoding"},
	{name: "transfer-encoding chunked twice in one field", in: post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), reason: "unsupported Transfer-Encoding"},
	{name: "transfer-encoding empty", in: post("Transfer-Encoding:\r\n", ""), reason: "unsupported Transfer-Encoding"},
	{name: "two transfer-encoding fields", in: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), reason: "multiple Transfer-Encoding"},
	{name: "transfer-encoding on http/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", reason: "Transfer-Encoding on HTTP/1.0"},
	{name: "differing content-length", in: post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"), reason: "conflicting Content-Length"},
	{name: "content-length leading zero differs", in: post("Content-Length: 3\r\nContent-Length: 03\r\n", "abc"), reason: "conflicting Content-Length"},
	{name: "content-length comma list", in: post("Content-Length: 3, 3\r\n", "abc"), reason: "invalid Content-Length"},
	{name: "content-length sign", in: post("Content-Length: +3\r\n", "abc"), reason: "invalid Content-Length"},
	{name: "content-length negative", in: post("Content-Length: -1\r\n", ""), reason: "invalid Content-Length"},
	{name: "content-length inner space", in: post("Content-Length: 1 2\r\n", ""), reason: "invalid Content-Length"},
	{name: "content-length empty", in: post("Content-Length: \r\n", ""), reason: "invalid Content-Length"},
	{name: "content-length hex", in: post("Content-Length: 0x3\r\n", "abc"), reason: "invalid Content-Length"},
	{name: "content-length too long", in: post("Content-Length: 1234567890123456789\r\n", ""), reason: "invalid Content-Length"},
	{name: "space before colon", in: hdr("Transfer-Encoding : chunked\r\n"), reason: "whitespace before colon"},
	{name: "tab before colon", in: hdr("Content-Length\t: 0\r\n"), reason: "whitespace before colon"},
	{name: "space inside name", in: hdr("X Y: 1\r\n"), reason: "malformed header line"},
	{name: "no colon", in: hdr("NoColon\r\n"), reason: "malformed header line"},
	{name: "empty name", in: hdr(": v\r\n"), reason: "malformed header line"},
	{name: "obs-fold", in: hdr("X: a\r\n b\r\n"), reason: "obs-fold in header"},
	{name: "obs-fold tab", in: hdr("X: a\r\n\tTransfer-Encoding: chunked\r\n"), reason: "obs-fold in header"},
	{name: "NUL in value", in: hdr("X: a\x00b\r\n"), reason: "NUL in head"},
	{name: "NUL in target", in: "GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", reason: "NUL in head"},
	{name: "bare CR in value", in: hdr("X: a\rb\r\n"), reason: "bare CR in head"},
	{name: "bare CR line ending", in: "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", reason: "bare CR in head"},
	{name: "CR CR LF", in: hdr("X: a\r\r\n"), reason: "bare CR in head"},
	{name: "control char in value", in: hdr("X: a\x01\r\n"), reason: "control character in head"},
	{name: "DEL in value", in: hdr("X: a\x7f\r\n"), reason: "control character in head"},
	{name: "control char in name", in: hdr("X\x0b: a\r\n"), reason: "control character in head"},
	{name: "missing version", in: "GET /\r\nHost: a\r\n\r\n", reason: "invalid request line"},
	{name: "double space", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request line"},
	{name: "trailing garbage after version", in: "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", reason: "invalid request line"},
	{name: "bad method", in: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request line"},
	{name: "http/2 version", in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", reason: "unsupported HTTP version"},
	{name: "h2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", reason: "unsupported HTTP version"},
	{name: "http/1.2", in: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", reason: "unsupported HTTP version"},
	{name: "lower-case version", in: "GET / http/1.1\r\nHost: a\r\n\r\n", reason: "invalid request line"},
	{name: "connect", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", reason: "CONNECT not allowed"},
	{name: "asterisk on get", in: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request target"},
	{name: "bad percent escape", in: "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request target"},
	{name: "non-http scheme", in: "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request target"},
	{name: "userinfo in absolute form", in: "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request target"},
	{name: "non-ascii target", in: "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", reason: "invalid request target"},
	{name: "missing host", in: "GET / HTTP/1.1\r\n\r\n", reason: "missing Host"},
	{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", reason: "multiple Host"},
	{name: "head too large", max: 64, in: hdr("X: " + strings.Repeat("a", 64) + "\r\n"), reason: "head too large"},
	{name: "head too large unterminated", max: 64, in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 200), reason: "head too large"},
	{name: "head at the limit", max: 64, in: hdr("X: "+strings.Repeat("a", 32)+"\r\n") + hdr("Y: "+strings.Repeat("b", 32)+"\r\n")},
	{name: "head one over the limit", max: 63, in: hdr("X: " + strings.Repeat("a", 32) + "\r\n"), reason: "head too large"},
	{name: "valid then smuggled", in: getA + postCL + post("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
		reason: "Transfer-Encoding with Content-Length", prefix: getA + postCL},
	{name: "rejected then more", in: hdr("X: a\x00\r\n") + getA, reason: "NUL in head"},

	{name: "chunk size not hex", in: chunkHd + "zz\r\n", reason: "invalid chunk size line", prefix: chunkHd, bodyErr: true},
	{name: "chunk size empty", in: chunkHd + "\r\n", reason: "invalid chunk size line", prefix: chunkHd, bodyErr: true},
	{name: "chunk size bare LF", in: chunkHd + "5\nhello\r\n0\r\n\r\n", reason: "invalid chunk size line", prefix: chunkHd + "5", bodyErr: true},
	{name: "chunk size space before ext", in: chunkHd + "5 ;x\r\nhello\r\n0\r\n\r\n", reason: "invalid chunk size line", prefix: chunkHd + "5", bodyErr: true},
	{name: "chunk size trailing space", in: chunkHd + "5 \r\nhello\r\n0\r\n\r\n", reason: "invalid chunk size line", prefix: chunkHd + "5", bodyErr: true},
	{name: "chunk size overflow", in: chunkHd + "1000000000000000\r\n", reason: "chunk size too large", prefix: chunkHd + "100000000000000", bodyErr: true},
	{name: "chunk ext control char", in: chunkHd + "5;a\x00\r\n", reason: "invalid chunk extension", prefix: chunkHd + "5;a", bodyErr: true},
	{name: "chunk line too long", in: chunkHd + "5;" + strings.Repeat("x", 1100) + "\r\n", reason: "chunk line too long",
		prefix: chunkHd + "5;" + strings.Repeat("x", 1022), bodyErr: true},
	{name: "chunk data without CRLF", in: chunkHd + "5\r\nhelloX\r\n0\r\n\r\n", reason: "missing CRLF after chunk data", prefix: chunkHd + "5\r\nhello", bodyErr: true},
	{name: "chunk data with LF only", in: chunkHd + "5\r\nhello\n0\r\n\r\n", reason: "missing CRLF after chunk data", prefix: chunkHd + "5\r\nhello", bodyErr: true},
	{name: "trailer obs-fold", in: chunkHd + "0\r\nX: a\r\n b\r\n\r\n", reason: "invalid trailer", prefix: chunkHd + "0\r\nX: a\r\n", bodyErr: true},
	{name: "trailer bare LF end", in: chunkHd + "0\r\n\n", reason: "invalid trailer", prefix: chunkHd + "0\r\n", bodyErr: true},
	{name: "trailer space before colon", in: chunkHd + "0\r\nX : a\r\n\r\n", reason: "invalid trailer", prefix: chunkHd + "0\r\nX", bodyErr: true},
	{name: "too much chunk overhead", in: chunkHd + strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\nx\r\n", 100),
		reason: "too much chunk overhead", prefix: chunkHd + strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\nx\r\n", 88) + "1;" + strings.Repeat("e", 200) + "\r", bodyErr: true},
}

// drain reads c to its end with reads of size rs, answering upgrade
// requests with r.
func drain(t *testing.T, c *Conn, rs int, r *responder) ([]byte, error) {
	t.Helper()
	var out []byte
	p := make([]byte, rs)
	for i := 0; i < 1<<20; i++ {
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		if err != nil {
			return out, err
		}
		r.answer(c)
	}
	t.Fatalf("read did not end")
	return nil, nil
}

func (tc streamCase) want() (out string, err error) {
	switch {
	case tc.reason == "":
		return tc.in, io.EOF
	case tc.bodyErr:
		return tc.prefix, ErrRejected
	}
	return tc.prefix + markerRequest, io.EOF
}

func splits(in string) map[string][][]byte {
	m := map[string][][]byte{"whole": {[]byte(in)}}
	var bytewise [][]byte
	for i := range len(in) {
		bytewise = append(bytewise, []byte{in[i]})
	}
	m["bytewise"] = bytewise
	if len(in) <= 600 {
		for i := 1; i < len(in); i++ {
			m[fmt.Sprintf("split%d", i)] = [][]byte{[]byte(in[:i]), []byte(in[i:])}
		}
	}
	return m
}

// TestGuardStreams runs every stream through the guard with many read
// boundaries and caller buffer sizes, and checks the exact output: the
// stream itself when accepted, the valid prefix plus the marker request
// when a head is rejected, the valid prefix then ErrRejected for a bad
// chunked body.
func TestGuardStreams(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			wantOut, wantErr := tc.want()
			for sname, chunks := range splits(tc.in) {
				for _, rs := range []int{1, 7, 600, 4096} {
					c := Wrap(&scriptConn{chunks: chunks}, Options{MaxHeadBytes: tc.max})
					out, err := drain(t, c, rs, tc.responder())
					if string(out) != wantOut || !errors.Is(err, wantErr) {
						t.Fatalf("%s, reads of %d: got %s, %v; want %s, %v", sname, rs, short(out), err, short([]byte(wantOut)), wantErr)
					}
					reason, ok := c.Rejected()
					if reason != tc.reason || ok != (tc.reason != "") {
						t.Fatalf("%s, reads of %d: Rejected() = %q, %v; want %q", sname, rs, reason, ok, tc.reason)
					}
					if c.Passthrough() != tc.pass {
						t.Fatalf("%s, reads of %d: Passthrough() = %v, want %v", sname, rs, c.Passthrough(), tc.pass)
					}
					// Every later read keeps failing the same way.
					if n, err2 := c.Read(make([]byte, 10)); n != 0 || !errors.Is(err2, wantErr) {
						t.Fatalf("%s: read after end = %d, %v; want 0, %v", sname, n, err2, wantErr)
					}
				}
			}
		})
	}
}

// timeoutConn returns a timeout error once, then the rest of the stream.
type timeoutConn struct {
	scriptConn
	fired bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (c *timeoutConn) Read(p []byte) (int, error) {
	if !c.fired && len(c.chunks) == 1 {
		c.fired = true
		return 0, timeoutErr{}
	}
	return c.scriptConn.Read(p)
}

// TestTimeoutIsTransient checks that a read timeout (net/http aborts its
// background read that way) neither ends the stream nor loses a partial
// head.
func TestTimeoutIsTransient(t *testing.T) {
	in := getA + postCL
	c := Wrap(&timeoutConn{scriptConn: scriptConn{chunks: [][]byte{[]byte(in[:40]), []byte(in[40:])}}}, Options{})
	var out []byte
	var timeouts int
	p := make([]byte, 4096)
	for i := 0; i < 100; i++ {
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			timeouts++
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if timeouts != 1 || string(out) != in {
		t.Fatalf("got %q with %d timeouts; want %q with 1", out, timeouts, in)
	}
}

// TestBufferReleased checks that the pooled buffer is given back once a
// split head has been handed out.
func TestBufferReleased(t *testing.T) {
	c := Wrap(&scriptConn{chunks: [][]byte{[]byte(getA[:10]), []byte(getA[10:])}}, Options{})
	out, _ := drain(t, c, 4096, &responder{})
	if !bytes.Equal(out, []byte(getA)) {
		t.Fatalf("got %q", out)
	}
	if c.bp != nil || c.buf != nil {
		t.Fatalf("buffer still held after the head was handed out")
	}
}

// short quotes b, eliding the middle of long values.
func short(b []byte) string {
	if len(b) <= 200 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q...(%d bytes)...%q", b[:100], len(b)-200, b[len(b)-100:])
}

// TestNoNetHTTP checks that the package itself does not import net/http.
func TestNoNetHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "net/http") {
			t.Errorf("h1guard imports %s", imp)
		}
	}
}

// TestBufferedAfterUpgrade checks Buffered and Unwrap around a switch of
// protocols: bytes that arrived with an upgrade head are held until the
// response is known and counted by Buffered all along; Unwrap hands out
// the raw conn only after the switch.
func TestBufferedAfterUpgrade(t *testing.T) {
	c := Wrap(&scriptConn{chunks: [][]byte{[]byte(wsHead + binary)}}, Options{})
	p := make([]byte, 1) // net/http's background read size
	if n, err := c.Read(p); n != 1 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	if got, want := c.Buffered(), len(wsHead+binary)-1; got != want {
		t.Fatalf("Buffered() = %d, want %d", got, want)
	}
	rest := make([]byte, 4096)
	n, err := c.Read(rest)
	if err != nil || string(p)+string(rest[:n]) != wsHead {
		t.Fatalf("read = %q, %v; want the rest of the upgrade head", rest[:n], err)
	}
	if n, err := c.Read(rest); n != 0 || err != nil {
		t.Fatalf("read while the response is unknown = %q, %v; want 0, nil", rest[:n], err)
	}
	if c.Passthrough() || c.Unwrap() != nil {
		t.Fatal("switched before any response")
	}
	if c.Buffered() != len(binary) {
		t.Fatalf("Buffered() = %d while holding, want %d", c.Buffered(), len(binary))
	}
	c.Hijacked()
	c.Write([]byte(resp101))
	if !c.Passthrough() || c.Unwrap() == nil {
		t.Fatal("not switched after a 101 on a hijacked conn")
	}
	if c.Buffered() != len(binary) {
		t.Fatalf("Buffered() = %d after the switch, want %d", c.Buffered(), len(binary))
	}
	n, err = c.Read(rest)
	if err != nil || string(rest[:n]) != binary {
		t.Fatalf("read after the switch = %q, %v; want the held bytes", rest[:n], err)
	}
	if c.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after draining, want 0", c.Buffered())
	}
}

// TestUpgradeHeadReadAlone checks the rule the response watch rests on:
// an upgrade head is handed out by a Read that hands out nothing before
// it, and only a status line written after its last byte is out counts.
// Here the response to the GET before it is written while one byte of the
// upgrade head is out (net/http's background read), and must not count.
func TestUpgradeHeadReadAlone(t *testing.T) {
	c := Wrap(&scriptConn{chunks: [][]byte{[]byte(getA + wsHead + binary)}}, Options{})
	p := make([]byte, 4096)
	n, err := c.Read(p)
	if err != nil || string(p[:n]) != getA {
		t.Fatalf("first read = %q, %v; want only the GET before the upgrade head", p[:n], err)
	}
	if n, err := c.Read(p[:1]); n != 1 || err != nil || p[0] != wsHead[0] {
		t.Fatalf("one-byte read = %q, %v", p[:n], err)
	}
	c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n")) // answers the GET
	if c.up.Load() != upIdle {
		t.Fatalf("watching the response before the upgrade head is out: up = %d", c.up.Load())
	}
	n, err = c.Read(p)
	if err != nil || string(p[:n]) != wsHead[1:] {
		t.Fatalf("read = %q, %v; want the rest of the upgrade head", p[:n], err)
	}
	if c.up.Load() != upWait {
		t.Fatalf("not watching for the response once the upgrade head is out: up = %d", c.up.Load())
	}
	c.Hijacked()
	c.Write([]byte(resp101))
	n, err = c.Read(p)
	if err != nil || string(p[:n]) != binary || !c.Passthrough() {
		t.Fatalf("after 101: read = %q, %v, Passthrough() = %v", p[:n], err, c.Passthrough())
	}
}

// TestUpgradeSwitchNeedsHijack checks that a 101 switches the guard only
// on a hijacked conn, whichever comes first, and that without a hijack the
// bytes after the upgrade request stay held.
func TestUpgradeSwitchNeedsHijack(t *testing.T) {
	for _, hijackFirst := range []bool{false, true} {
		c := Wrap(&scriptConn{chunks: [][]byte{[]byte(wsHead + clte)}}, Options{})
		p := make([]byte, 4096)
		if n, err := c.Read(p); err != nil || string(p[:n]) != wsHead {
			t.Fatalf("read = %q, %v", p[:n], err)
		}
		if hijackFirst {
			c.Hijacked()
		}
		c.Write([]byte(resp101))
		if !hijackFirst {
			// The client has sent everything: the first read finds
			// nothing more, later ones fail, and nothing is handed out.
			if n, err := c.Read(p); n != 0 || err != nil {
				t.Fatalf("101 without a hijack: read = %q, %v; want 0, nil", p[:n], err)
			}
			for range 3 {
				if n, err := c.Read(p); n != 0 || err != io.EOF {
					t.Fatalf("101 without a hijack: read = %q, %v; want 0, EOF", p[:n], err)
				}
			}
			if c.Passthrough() || c.Unwrap() != nil {
				t.Fatal("101 without a hijack switched the guard")
			}
			c.Hijacked()
		}
		if !c.Passthrough() {
			t.Fatalf("hijackFirst=%v: not switched", hijackFirst)
		}
		if n, err := c.Read(p); err != nil || string(p[:n]) != clte {
			t.Fatalf("hijackFirst=%v: read = %q, %v; want the held bytes unchanged", hijackFirst, p[:n], err)
		}
	}
}

// TestUpgradeResponseWrites checks that the response watch follows a
// response written one byte per Write, informational responses first: it
// decides exactly when the final status code is complete.
func TestUpgradeResponseWrites(t *testing.T) {
	for _, tc := range []struct {
		resp string
		want uint32
	}{
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n", upDecline},
		{"HTTP/1.1 103 Early Hints\nLink: </s.css>\n\nHTTP/1.1 101 Switching Protocols\r\n\r\n", upPass},
		{"HTTP/1.0 200 OK\r\n\r\n", upDecline},
		{"HTTP/1.1 1x1 Nope\r\n\r\n", upDecline},
	} {
		c := Wrap(&scriptConn{chunks: [][]byte{[]byte(wsHead)}}, Options{})
		if _, err := c.Read(make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		c.Hijacked()
		final := strings.LastIndex(tc.resp, "HTTP/1.") + len("HTTP/1.1 101")
		for i := range len(tc.resp) {
			c.Write([]byte{tc.resp[i]})
			got, want := c.up.Load(), uint32(upWait)
			if i+1 >= final {
				want = tc.want
			}
			if got != want {
				t.Fatalf("%q: after byte %d up = %d, want %d", tc.resp, i, got, want)
			}
		}
	}
}

// TestHoldOnSocket plays net/http's side on a real conn pair: while the
// response to an upgrade request is unknown, a read waits for the client
// and is aborted by a deadline like net/http's background read; bytes that
// arrive are kept (the read returns 0, nil) and, once the response turns
// out not to switch, validated as the next request.
func TestHoldOnSocket(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	g := Wrap(srv, Options{})
	go io.WriteString(cli, upHead)
	p := make([]byte, 4096)
	var got []byte
	for len(got) < len(upHead) {
		n, err := g.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	// A background read waits on the socket until aborted.
	g.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := g.Read(p[:1]); n != 0 || !isTimeout(err) {
		t.Fatalf("aborted read = %d, %v; want a timeout", n, err)
	}
	g.SetReadDeadline(time.Time{})
	// The client pipelines a request: the read returns 0, nil, holding it.
	go io.WriteString(cli, getA)
	if n, err := g.Read(p[:1]); n != 0 || err != nil {
		t.Fatalf("read of pipelined bytes = %q, %v; want 0, nil", p[:n], err)
	}
	if g.Buffered() == 0 {
		t.Fatal("pipelined bytes not held")
	}
	// The server answers 200 (the client reads it), then reads on.
	resp := make(chan string)
	go func() {
		b := make([]byte, len(ok200))
		_, err := io.ReadFull(cli, b)
		resp <- fmt.Sprint(string(b), err)
	}()
	g.Write([]byte(ok200))
	if r := <-resp; r != ok200+"<nil>" {
		t.Fatalf("client got %q", r)
	}
	got = got[:0]
	for len(got) < len(getA) {
		n, err := g.Read(p)
		if err != nil {
			t.Fatalf("after the 200: %v", err)
		}
		got = append(got, p[:n]...)
	}
	if string(got) != getA {
		t.Fatalf("after the 200: read %q, want %q", got, getA)
	}
}

// countConn is a scriptConn that counts Reads.
type countConn struct {
	scriptConn
	reads int
}

func (c *countConn) Read(p []byte) (int, error) {
	c.reads++
	return c.scriptConn.Read(p)
}

// TestHoldLimit checks that the guard stops reading from the client once
// it holds more than MaxHeadBytes after an upgrade request, that Read then
// fails rather than return 0, nil for ever, and that the guard validates
// what it held, and reads on, once the response is known.
func TestHoldLimit(t *testing.T) {
	const max = 128
	var chunks [][]byte
	chunks = append(chunks, []byte(upHead))
	for range 40 {
		chunks = append(chunks, []byte(getA))
	}
	sc := &countConn{scriptConn: scriptConn{chunks: chunks}}
	c := Wrap(sc, Options{MaxHeadBytes: max})
	p := make([]byte, 4096)
	if n, err := c.Read(p); err != nil || string(p[:n]) != upHead {
		t.Fatalf("read = %q, %v", p[:n], err)
	}
	// Reads while holding return 0, nil until the hold is full; then, so
	// that a caller reading in a loop does not spin, an error.
	for i := 0; ; i++ {
		n, err := c.Read(p)
		if n != 0 || err != nil && err != errHoldFull || i > 100 {
			t.Fatalf("read %d while holding = %q, %v", i, p[:n], err)
		}
		if err == errHoldFull {
			break
		}
	}
	if c.Buffered() > max+1 {
		t.Fatalf("holds %d bytes, more than MaxHeadBytes+1", c.Buffered())
	}
	reads := sc.reads
	if _, err := c.Read(p); err != errHoldFull || sc.reads != reads {
		t.Fatalf("read with the hold full: %v, %d reads from the client; want errHoldFull and none", err, sc.reads-reads)
	}
	c.Write([]byte(ok200))
	out, err := drain(t, c, 4096, &responder{})
	if err != io.EOF || string(out) != strings.Repeat(getA, 40) {
		t.Fatalf("after the 200: %s, %v", short(out), err)
	}
}

// TestTimeoutReleasesBuffer: net/http's background read (one byte, aborted
// with a past deadline once the handler is done) must not leave the
// connection holding a pooled head buffer for the rest of its life.
func TestTimeoutReleasesBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	g := Wrap(a, Options{})
	g.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var one [1]byte
	_, err := g.Read(one[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read = %v, want a timeout", err)
	}
	if g.bp != nil {
		t.Error("the connection still holds its head buffer after an idle timeout")
	}
	// The conn still works: a request that arrives later is read whole.
	readWholeHead(t, g, b, "after the timeout")
}

// readWholeHead clears g's read deadline, writes a request head on b (the
// client's end) and reads it back through g one byte at a time.
func readWholeHead(t *testing.T, g *Conn, b net.Conn, when string) {
	t.Helper()
	g.SetReadDeadline(time.Time{})
	go b.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	var one [1]byte
	buf := make([]byte, 0, 64)
	for !strings.HasSuffix(string(buf), "\r\n\r\n") {
		n, err := g.Read(one[:])
		if err != nil {
			t.Fatalf("%s: %v (got %q)", when, err, buf)
		}
		buf = append(buf, one[:n]...)
	}
}

// readSizes records the size of every Read of the wrapped connection.
type readSizes struct {
	net.Conn
	sizes []int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	return r.Conn.Read(p)
}

// TestAbortedReadTakesNoBuffer: a one-byte Read under a read deadline in
// the past (net/http's background read, aborted after every request) goes
// to the wrapped connection with the caller's byte, which fails it, rather
// than through a pooled head buffer; under any other deadline a small
// Read still fills the head buffer, and a later request is read whole.
func TestAbortedReadTakesNoBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	rs := &readSizes{Conn: a}
	g := Wrap(rs, Options{})
	var one [1]byte
	g.SetReadDeadline(time.Unix(1, 0))
	_, err := g.Read(one[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read under an aborting deadline = %v, want a timeout", err)
	}
	if len(rs.sizes) != 1 || rs.sizes[0] != 1 || g.bp != nil {
		t.Fatalf("aborted Read: reads of %v bytes, buffer held %v; want one read of the caller's 1 byte and no buffer", rs.sizes, g.bp != nil)
	}
	rs.sizes = nil
	g.SetReadDeadline(time.Now().Add(time.Millisecond))
	g.Read(one[:])
	if len(rs.sizes) != 1 || rs.sizes[0] <= 1 {
		t.Errorf("Read under a future deadline: reads of %v bytes, want one into the head buffer", rs.sizes)
	}
	readWholeHead(t, g, b, "after the abort")
}

// TestStatusWatch checks the response watch on its own: the final status
// code, or -1 for what is not an HTTP/1.x response, or 0 while incomplete,
// whatever the write boundaries.
func TestStatusWatch(t *testing.T) {
	for resp, want := range map[string]int{
		"HTTP/1.1 200 OK\r\n\r\n":                                   200,
		"HTTP/1.0 404 Not Found\r\n\r\n":                            404,
		"HTTP/1.1 101 Switching Protocols\r\n\r\n":                  101,
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 x\r\n\r\n":       101,
		"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\nHTTP/1.1 502": 502,
		"HTTP/1.1 102 Processing\n\nHTTP/1.1 204 No Content\n\n":    204,
		"HTTP/1.1 100 Continue\r\n\r":                               0,
		"HTTP/1.1 10":                                               0,
		"HTTP/1.1 099 x\r\n\r\n":                                    -1,
		"HTTP/2.0 101 x\r\n\r\n":                                    -1,
		"HTTP/1.1 1x1 x\r\n\r\n":                                    -1,
		"http/1.1 101 x\r\n\r\n":                                    -1,
		"\r\nHTTP/1.1 200 OK\r\n\r\n":                               -1,
	} {
		for cut := 0; cut <= len(resp); cut++ {
			var w statusWatch
			got := w.feed([]byte(resp[:cut]))
			if got == 0 {
				got = w.feed([]byte(resp[cut:]))
			}
			if got != want {
				t.Errorf("%q cut at %d: %d, want %d", resp, cut, got, want)
			}
		}
	}
}
