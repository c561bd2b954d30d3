package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// FuzzResponse feeds one backend byte stream to Client and to net/http's
// parser (http.ReadResponse in http.Transport's loop: 1xx responses other
// than 101 skipped, the body read to its end) and checks that they agree
// on the status, the 1xx responses, the header, the declared length, the
// body bytes, the trailer, and whether the connection may carry another
// exchange (nothing after the response's end, no Connection: close, not
// an HTTP/1.0 response without keep-alive, not a body delimited by the
// close).
//
// Client may refuse a response net/http accepts, but only for a reason
// listed in allowedRefusals: each is framing or syntax that a proxy could
// read two ways, or a limit. It must never accept what net/http refuses,
// nor read a body, a header or the connection's state differently.
//
// The seed corpus is testdata/fuzz/FuzzResponse: framing by length,
// chunks with extensions and trailers, 1xx, HEAD, 204, 304, Connection:
// close, HTTP/1.0, bytes after the body, invalid and duplicate lengths.
func FuzzResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, head bool, data []byte) {
		if len(data) > 4096 {
			return // Client's first read takes it all (bufSize)
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		ref := referenceParse(method, data)
		got := clientParse(method, data)

		if got.headErr != nil {
			if ref.headErr == nil {
				if !allowedRefusal(got.headErr) {
					t.Fatalf("client refused what net/http accepts, for no listed reason: %v\nnet/http: %d %v\n%q", got.headErr, ref.status, ref.header, data)
				}
				return
			}
			return // both refuse
		}
		if ref.headErr != nil {
			t.Fatalf("client accepted a response head net/http refuses (%v): %d %v\n%q", ref.headErr, got.status, got.header, data)
		}
		if got.status != ref.status || !slices.Equal(got.interim, ref.interim) {
			t.Fatalf("status %d after 1xx %v; net/http %d after %v\n%q", got.status, got.interim, ref.status, ref.interim, data)
		}
		if !headersEqual(got.header, ref.header) {
			t.Fatalf("header %v; net/http %v\n%q", got.header, ref.header, data)
		}
		if got.length != ref.length {
			t.Fatalf("content length %d; net/http %d\n%q", got.length, ref.length, data)
		}
		if got.bodyErr != nil {
			if ref.bodyErr == nil && !allowedRefusal(got.bodyErr) {
				t.Fatalf("client failed a body net/http reads (%v)\n%q", got.bodyErr, data)
			}
			if ref.bodyErr == nil {
				return
			}
		} else if ref.bodyErr != nil {
			t.Fatalf("client read a body net/http refuses (%v): %q\n%q", ref.bodyErr, got.body, data)
		}
		if !bytes.Equal(got.body, ref.body) {
			t.Fatalf("body %q; net/http %q\n%q", got.body, ref.body, data)
		}
		if got.bodyErr != nil {
			return // both failed mid-body after the same bytes
		}
		if !headersEqual(got.trailer, ref.trailer) {
			t.Fatalf("trailer %v; net/http %v\n%q", got.trailer, ref.trailer, data)
		}
		if got.reusable != ref.reusable {
			t.Fatalf("connection reusable %v; net/http %v\n%q", got.reusable, ref.reusable, data)
		}
	})
}

// allowedRefusals are the Client's ProtocolError messages for responses
// net/http accepts. Each is deliberate:
//
//   - "malformed status line": a version other than HTTP/1.0 or 1.1
//     (net/http takes "HTTP/1.5", "HTTP/2.0" and "HTTP/0.9"), several
//     spaces after the version, no space between code and reason.
//   - "malformed status code": a sign ("+99") or a code under 100, which
//     net/http's Atoi takes.
//   - "invalid header name", "malformed header line": obs-fold
//     continuation lines (net/http joins them: RFC 9112 §5.2 lets a proxy
//     reject them), a line with no name before the colon (net/http skips
//     it), whitespace before the colon or at the start of the head.
//   - "invalid header value": control characters in a value.
//   - "both Transfer-Encoding and Content-Length": RFC 9112 §6.1 says such
//     a message "ought to be handled as an error"; net/http drops the
//     length and reads chunks.
//   - "Transfer-Encoding in an HTTP/1.0 response": net/http ignores it and
//     reads to the close; a proxy that sees chunks another reader ignores
//     is desynchronised from it.
//   - "101 to a request that did not ask for an upgrade": no request this
//     client sends asks for one.
//   - "too many 1xx responses", "response head too large", "header line
//     too long", "status line too long": limits (net/http's is 10 MB of
//     head per response).
//   - "trailer line without CRLF": net/http looks for CRLF CRLF ahead
//     before it reads a trailer; Client insists on CRLF on every trailer
//     line.
var allowedRefusals = []string{
	"malformed status line",
	"malformed status code",
	"invalid header name",
	"malformed header line",
	"invalid header value",
	"both Transfer-Encoding and Content-Length",
	"Transfer-Encoding in an HTTP/1.0 response",
	"101 to a request that did not ask for an upgrade",
	"too many 1xx responses",
	"response head too large",
	"header line too long",
	"status line too long",
	"trailer line without CRLF",
}

func allowedRefusal(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && slices.Contains(allowedRefusals, pe.Msg)
}

// parsed is what a parser made of a byte stream.
type parsed struct {
	headErr  error
	status   int
	interim  []int
	header   http.Header
	length   int64
	body     []byte
	bodyErr  error
	trailer  http.Header
	reusable bool
}

// referenceParse reads data as http.Transport would: ReadResponse in a
// loop over 1xx responses other than 101, then the body to its end.
func referenceParse(method string, data []byte) parsed {
	var p parsed
	src := bytes.NewReader(data)
	br := bufio.NewReader(src)
	req := &http.Request{Method: method}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			p.headErr = err
			return p
		}
		if c := resp.StatusCode; c >= 100 && c < 200 && c != http.StatusSwitchingProtocols {
			p.interim = append(p.interim, c)
			continue
		}
		break
	}
	p.status, p.header, p.length = resp.StatusCode, resp.Header.Clone(), resp.ContentLength
	p.body, p.bodyErr = io.ReadAll(resp.Body)
	resp.Body.Close()
	p.trailer = resp.Trailer
	p.reusable = p.bodyErr == nil && !resp.Close && br.Buffered() == 0 && src.Len() == 0
	return p
}

// clientParse reads data with Client over a connection that delivers it.
func clientParse(method string, data []byte) parsed {
	var p parsed
	conn := &scriptConn{data: data}
	dialed := false
	c := New(Options{MaxIdle: 1, Dial: func(context.Context, string) (net.Conn, error) {
		if dialed {
			return nil, errors.New("no second connection")
		}
		dialed = true
		return conn, nil
	}})
	defer c.Close()
	rec := &interimRecorder{}
	resp, err := c.Do(context.Background(), &Request{Addr: "backend:80", Method: method, Target: "/", Host: "a", Interim: rec})
	p.interim = rec.codes
	if err != nil {
		p.headErr = err
		return p
	}
	p.status, p.header, p.length = resp.StatusCode, resp.Header.Clone(), resp.ContentLength
	p.body, p.bodyErr = io.ReadAll(resp.Body)
	p.trailer = resp.Trailer.Clone()
	resp.Body.Close()
	// Pooled, and nothing left on the wire: a byte arriving later would
	// be seen by the check before reuse (peekIdle), which a connection
	// in memory does not have.
	p.reusable = c.idleCount("backend:80") == 1 && conn.off == len(conn.data)
	return p
}

type interimRecorder struct{ codes []int }

func (r *interimRecorder) Interim(code int, _ http.Header) error {
	r.codes = append(r.codes, code)
	return nil
}

// headersEqual compares two headers but for the fields each parser
// consumes: Connection (net/http removes "close"), Transfer-Encoding,
// and the trailer fields a response may not carry.
func headersEqual(a, b http.Header) bool {
	norm := func(h http.Header) http.Header {
		out := http.Header{}
		for k, v := range h {
			switch k {
			case "Connection", "Transfer-Encoding", "Trailer", "Host":
				continue
			}
			if len(v) > 0 {
				out[k] = v
			}
		}
		return out
	}
	x, y := norm(a), norm(b)
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if !slices.Equal(v, y[k]) {
			return false
		}
	}
	return true
}

// scriptConn is a connection whose backend sends data and then closes;
// what is written to it is dropped.
type scriptConn struct {
	data []byte
	off  int
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.off == len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *scriptConn) Close() error                       { return nil }
func (c *scriptConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }
