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
// boundaries. It checks that the guard never panics; that its output is a
// prefix of the stream, followed by the marker request after a rejected
// head; that the output does not depend on how the stream was split; and
// that Go's own parser accepts every head the guard accepted and frames
// every body the same way, so that both agree on where each request starts.
func FuzzGuard(f *testing.F) {
	for _, tc := range streamCases {
		f.Add([]byte(tc.in), uint8(0), uint16(4096))
		f.Add([]byte(tc.in), uint8(3), uint16(7))
	}
	f.Fuzz(checkStream)
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
		checkStream(t, []byte(stream), chunk, 4096)
	})
}

// checkStream runs stream through the guard, whole and split into chunks
// of a size derived from chunk, and checks the guard's output against
// net/http.
func checkStream(t *testing.T, stream []byte, chunk uint8, rs uint16) {
	{
		if len(stream) > 64<<10 {
			return
		}
		whole, wholeErr, _ := run(t, [][]byte{stream}, 4096)
		var chunks [][]byte
		size := int(chunk)%97 + 1
		for b := stream; len(b) > 0; {
			n := min(size, len(b))
			chunks = append(chunks, b[:n])
			b = b[n:]
		}
		out, err, c := run(t, chunks, int(rs)%5000+1)
		if !bytes.Equal(out, whole) || !errors.Is(err, wholeErr) {
			t.Fatalf("split reads gave %s, %v; one read gave %s, %v", short(out), err, short(whole), wholeErr)
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
		case !rejected && !errors.Is(err, io.EOF):
			t.Fatalf("not rejected but read error %v", err)
		}
		if !bytes.HasPrefix(stream, prefix) {
			t.Fatalf("output is not a prefix of the stream: %s", short(prefix))
		}
		bodyOpen := c.st != stHead && c.st != stPass
		crossCheck(t, prefix, c.heads, c.Passthrough(), bodyOpen)
	}
}

func run(t *testing.T, chunks [][]byte, rs int) ([]byte, error, *Conn) {
	c := Wrap(&scriptConn{chunks: chunks}, Options{})
	c.record = true
	out, err := drain(t, c, rs)
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
