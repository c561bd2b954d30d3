package h1guard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
)

// FuzzGuard feeds random streams through the guard with random read
// boundaries, and answers every upgrade request with fuzzed bytes written
// through the guard (status lines, informational responses, garbage; in
// writes of a fuzzed size, with or without a hijack). It checks that the
// guard never panics; that its output is a prefix of the stream, followed
// by the marker request after a rejected head; that the output does not
// depend on how the stream was split; that Go's own parser accepts every
// head the guard accepted and frames every body the same way, so that both
// agree on where each request starts; and that the guard passes bytes
// through unchecked after an upgrade request only when the response
// written was 101 and the conn was hijacked, holds them (and hands out
// nothing more) while no final status has been written, and validates
// them otherwise.
func FuzzGuard(f *testing.F) {
	for _, tc := range streamCases {
		r := tc.responder()
		f.Add([]byte(tc.in), uint8(0), uint16(4096), r.resp, uint8(r.hijack))
		f.Add([]byte(tc.in), uint8(3), uint16(7), r.resp, uint8(r.hijack|3<<2))
	}
	for _, resp := range []string{
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <x>\r\n\r\n" + resp101,
		"HTTP/1.1 103 Early Hints\n\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 1",
		"HTTP/1.1 103 Early Hints\r\nLink: <x>\r\n",
		"HTTP/2.0 101 x\r\n\r\n",
		"HTTP/1.1 099 x\r\n\r\n",
		"",
	} {
		for _, how := range []uint8{0, 1, 2, 1 | 1<<2, 2 | 5<<2} {
			f.Add([]byte(wsHead+binary+getA), uint8(5), uint16(4096), []byte(resp), how)
			f.Add([]byte(getA+upHead+clte), uint8(0), uint16(1), []byte(resp), how)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, rs uint16, resp []byte, how uint8) {
		checkStream(t, stream, chunk, rs, responder{resp: resp, split: int(how >> 2), hijack: int(how&3) % 3})
	})
}

// FuzzGuardFields builds one request from fuzzed parts (method, target,
// version, two header fields and a body) followed by a second request, so
// the fuzzer spends its time on the request line and field syntax rather
// than on finding a blank line. The checks are FuzzGuard's.
func FuzzGuardFields(f *testing.F) {
	f.Add("GET", "/", "HTTP/1.1", "Content-Length", "3", "X", "y", []byte("abc"), uint8(5))
	f.Add("POST", "/c", "HTTP/1.1", "Transfer-Encoding", "chunked", "Content-Length", "1", []byte("1\r\nx\r\n0\r\n\r\n"), uint8(0))
	f.Add("GET", "http://a:80/x?y", "HTTP/1.0", "Upgrade", "websocket", "Connection", "upgrade", []byte("\x00\xff"), uint8(1))
	f.Add("POST", "/%41", "HTTP/1.1", "transfer-encoding", " Chunked ", "Trailer", "X", []byte("a;x=y\r\n0123456789\r\n0\r\nX: 1\r\n\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, method, target, version, n1, v1, n2, v2 string, body []byte, chunk uint8) {
		stream := method + " " + target + " " + version + "\r\nHost: a\r\n" + n1 + ":" + v1 + "\r\n" + n2 + ":" + v2 + "\r\n\r\n" + string(body) + getA
		checkStream(t, []byte(stream), chunk, 4096, responder{resp: []byte(ok200)})
	})
}

// checkStream runs stream through the guard, whole and split into chunks
// of a size derived from chunk, answering upgrade requests as r says, and
// checks the guard's output against net/http.
func checkStream(t *testing.T, stream []byte, chunk uint8, rs uint16, r responder) {
	if len(stream) > 64<<10 || len(r.resp) > 4<<10 {
		return
	}
	r0 := r
	whole, wholeErr, wc := run(t, [][]byte{stream}, 4096, &r0)
	var chunks [][]byte
	size := int(chunk)%97 + 1
	for b := stream; len(b) > 0; {
		n := min(size, len(b))
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	r1 := r
	out, err, c := run(t, chunks, int(rs)%5000+1, &r1)
	if !bytes.Equal(out, whole) || !errors.Is(err, wholeErr) {
		t.Fatalf("split reads gave %s, %v; one read gave %s, %v", short(out), err, short(whole), wholeErr)
	}
	if c.Passthrough() != wc.Passthrough() {
		t.Fatalf("split reads: Passthrough() = %v; one read: %v", c.Passthrough(), wc.Passthrough())
	}
	reason, rejected := c.Rejected()
	prefix := out
	switch {
	case rejected && errors.Is(err, io.EOF):
		if !bytes.HasSuffix(out, []byte(markerRequest)) {
			t.Fatalf("rejected (%s) without the marker: %s", reason, short(out))
		}
		prefix = out[:len(out)-len(markerRequest)]
	case rejected && !errors.Is(err, ErrRejected):
		t.Fatalf("rejected (%s) but read error %v", reason, err)
	case !rejected && !errors.Is(err, io.EOF) && !errors.Is(err, errHoldFull):
		t.Fatalf("not rejected but read error %v", err)
	}
	if !bytes.HasPrefix(stream, prefix) {
		t.Fatalf("output is not a prefix of the stream: %s", short(prefix))
	}

	// The upgrade: pass-through only after a 101 on a hijacked conn;
	// holding only while no final status was written (or a 101 without
	// a hijack); otherwise the stream is guarded on.
	code, final := finalStatus(r.resp)
	switch {
	case c.arms == 0:
		if c.Passthrough() || errors.Is(err, errHoldFull) {
			t.Fatalf("no upgrade head handed out, yet Passthrough() = %v, err %v", c.Passthrough(), err)
		}
	case final && code == 101 && r.hijack != 0:
		if !c.Passthrough() || c.arms != 1 {
			t.Fatalf("101 on a hijacked conn: Passthrough() = %v after %d upgrade heads", c.Passthrough(), c.arms)
		}
	case !final || code == 101:
		// Nothing decided: the guard held whatever followed the upgrade
		// request until the client was done (EOF) or the hold was full,
		// or the request's body had a framing error.
		ended := errors.Is(err, errHoldFull) || errors.Is(err, io.EOF) || rejected && errors.Is(err, ErrRejected)
		if c.Passthrough() || c.arms != 1 || !ended {
			t.Fatalf("response %q (hijack %d) decides nothing: Passthrough() = %v, %d upgrade heads, err %v", r.resp, r.hijack, c.Passthrough(), c.arms, err)
		}
	default:
		if c.Passthrough() || errors.Is(err, errHoldFull) {
			t.Fatalf("final status %d: Passthrough() = %v, err %v", code, c.Passthrough(), err)
		}
	}
	bodyOpen := c.st != stHead && c.st != stPass && c.st != stHold
	crossCheck(t, prefix, c.heads, c.Passthrough(), bodyOpen)
}

// finalStatus finds the status code of the final response in resp, as the
// guard's watch should, by another route: whole-buffer searches rather
// than a byte-by-byte state machine. final is false while resp does not
// get that far; code is -1 if resp is not an HTTP/1.x response.
func finalStatus(resp []byte) (code int, final bool) {
	for {
		if len(resp) < 12 {
			return 0, false
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.0 ")) && !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) {
			return -1, true
		}
		code = 0
		for _, b := range resp[9:12] {
			if b < '0' || b > '9' {
				return -1, true
			}
			code = code*10 + int(b-'0')
		}
		if code < 100 {
			return -1, true
		}
		if code >= 200 || code == 101 {
			return code, true
		}
		rest := resp[12:]
		end := -1
		for _, sep := range []string{"\n\n", "\n\r\n"} {
			if i := bytes.Index(rest, []byte(sep)); i >= 0 && (end < 0 || i+len(sep) < end) {
				end = i + len(sep)
			}
		}
		if end < 0 {
			return 0, false
		}
		resp = rest[end:]
	}
}

func run(t *testing.T, chunks [][]byte, rs int, r *responder) ([]byte, error, *Conn) {
	c := Wrap(&scriptConn{chunks: chunks}, Options{})
	c.record = true
	out, err := drain(t, c, rs, r)
	return out, err, c
}

// crossCheck parses the bytes the guard handed out with net/http and
// checks that Go finds a valid request at each offset where the guard
// accepted a head, and nowhere else.
// bodyOpen says the guard's output ends inside the last request's body, so
// Go may fail reading it.
func crossCheck(t *testing.T, prefix []byte, heads []int64, pass, bodyOpen bool) {
	t.Helper()
	r := bytes.NewReader(prefix)
	br := bufio.NewReader(r)
	pos := func() int64 { return int64(len(prefix)) - int64(r.Len()) - int64(br.Buffered()) }
	for i := 0; ; i++ {
		for { // blank lines before a request line
			b, _ := br.Peek(2)
			if len(b) > 0 && b[0] == '\n' {
				br.Discard(1)
			} else if len(b) == 2 && b[0] == '\r' && b[1] == '\n' {
				br.Discard(2)
			} else {
				break
			}
		}
		start := pos()
		if start == int64(len(prefix)) {
			if i != len(heads) {
				t.Fatalf("guard accepted %d heads, go found %d", len(heads), i)
			}
			return
		}
		if i >= len(heads) {
			t.Fatalf("go found a request at %d the guard never validated", start)
		}
		if heads[i] != start {
			t.Fatalf("request %d: guard head at %d, go request at %d", i, heads[i], start)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("guard accepted a head go rejects: %v\n%s", err, short(prefix[start:]))
		}
		_, err = io.Copy(io.Discard, req.Body)
		if err != nil {
			if !bodyOpen {
				t.Fatalf("request %d: go failed on a body the guard accepted: %v", i, err)
			}
			if i != len(heads)-1 {
				t.Fatalf("guard accepted %d heads, go found %d", len(heads), i+1)
			}
			return
		}
		if pass && i == len(heads)-1 {
			return // the rest is passthrough
		}
	}
}
