package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Request is one request to a backend.
type Request struct {
	// Addr is the backend's host:port.
	Addr   string
	Method string
	// Target is the request target, sent as it is (origin form
	// "/path?query", or "*").
	Target string
	// Host is the Host header.
	Host string
	// Header writes the header fields other than Host and the framing
	// (Content-Length, Transfer-Encoding, Trailer, Connection), which the
	// client writes itself. Nil: none.
	Header Fields
	// Body is nil for none. ContentLength is its length, or -1 when
	// unknown (sent chunked, followed by Trailer).
	Body          io.Reader
	ContentLength int64
	Trailer       http.Header
	// Close asks for the connection to be closed after the exchange
	// (Connection: close).
	Close bool
	// HeaderTimeout bounds the wait for the final response head, counted
	// from the end of the request, across 1xx responses; it also bounds
	// each stall while the request body is written. Zero: no limit.
	HeaderTimeout time.Duration
	// BodyTimeout bounds each wait for response body bytes, the gap
	// between two reads (nginx's proxy_read_timeout). Zero: no limit.
	BodyTimeout time.Duration
	// Replayable says the request may be sent again after the backend may
	// have seen it (a stale keep-alive connection): the body is nil or
	// implements Rewinder.
	Replayable bool
	// Interim, when set, is handed each 1xx response other than 101 that
	// precedes the final one.
	Interim InterimHandler
	// Start is when the request began, the clock reading the idle check
	// of pooled connections uses; zero: read the clock.
	Start time.Time
}

// Fields is a request header written one field at a time, so that Client
// can write it straight into its connection buffer with no header map.
type Fields interface {
	WriteFields(w FieldWriter)
}

// FieldWriter receives header fields.
type FieldWriter interface {
	// Field adds one field line per value; values must not be modified
	// afterwards.
	Field(name string, values []string)
	// FieldBytes adds one field line; value is not kept after the call.
	FieldBytes(name string, value []byte)
}

// InterimHandler receives 1xx interim responses (103 Early Hints, 100
// Continue, 102 Processing). The header is only valid during the call.
// An error ends the exchange with that error.
type InterimHandler interface {
	Interim(code int, h http.Header) error
}

// Rewinder is a request body that can be sent again from its start.
type Rewinder interface{ Rewind() }

// HeaderFields are the fields of an http.Header as they are, but for
// those the client writes itself.
type HeaderFields http.Header

// WriteFields implements Fields.
func (h HeaderFields) WriteFields(w FieldWriter) {
	for k, vv := range h {
		if skipField(k) {
			continue
		}
		w.Field(k, vv)
	}
}

func skipField(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
		return true
	}
	return false
}

// lineWriter writes fields as header lines into a connection buffer.
type lineWriter struct{ w *bufio.Writer }

func (l lineWriter) Field(name string, values []string) {
	for _, v := range values {
		l.w.WriteString(name)
		l.w.WriteString(": ")
		l.w.WriteString(v)
		l.w.WriteString("\r\n")
	}
}

func (l lineWriter) FieldBytes(name string, v []byte) {
	l.w.WriteString(name)
	l.w.WriteString(": ")
	l.w.Write(v)
	l.w.WriteString("\r\n")
}

// WriteHead writes an HTTP/1.1 request head with no framing headers
// (Content-Length, Transfer-Encoding) and no final empty line: the
// request line, Host, then header's fields. Client writes every request
// with it; it is exported for the WebSocket handshake, which sends its
// head on a connection it owns.
func WriteHead(w *bufio.Writer, method, target, host string, header Fields) {
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if header != nil {
		header.WriteFields(lineWriter{w})
	}
}

// headerMap collects fields into an http.Header.
type headerMap http.Header

func (h headerMap) Field(name string, values []string) {
	if old, ok := h[name]; ok {
		h[name] = append(old, values...)
		return
	}
	h[name] = values[:len(values):len(values)] // shared, but never appended to in place
}

func (h headerMap) FieldBytes(name string, v []byte) {
	h[name] = append(h[name], string(v))
}

// DialError is a failure to connect to a backend: nothing was sent, so the
// request can always be tried again elsewhere.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// ProtocolError is a response whose framing or syntax cannot be trusted;
// the connection is closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "upstream response: " + e.Msg }

// timeoutError is a timeout a caller can tell apart from others by
// identity; it is a net.Error whose Timeout is true.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

var (
	// ErrHeaderTimeout: no final response head within
	// Request.HeaderTimeout (or a request body write stalled that long).
	ErrHeaderTimeout error = &timeoutError{"upstream: no response head within the header timeout"}
	// ErrBodyTimeout: the response body stalled longer than
	// Request.BodyTimeout between two reads.
	ErrBodyTimeout error = &timeoutError{"upstream: response body stalled longer than the body timeout"}
	// ErrCanceled: the request's context ended the exchange. It is
	// context.Canceled for errors.Is.
	ErrCanceled = canceledError{}
)

type canceledError struct{}

func (canceledError) Error() string        { return "upstream: request canceled" }
func (canceledError) Is(target error) bool { return target == context.Canceled }

// ErrNoResponse is reported (errors.Is) by Client.Do when a request that
// may be sent twice was: a connection closed before any byte of its
// response, and the new connection it was sent on once more closed the
// same way. The server is going away, or will not answer this request;
// a caller may try another server with a request that may be sent again.
var ErrNoResponse = errors.New("upstream: connection closed before any byte of the response, twice")

// noResponseError is the failure of the second connection; it is
// ErrNoResponse for errors.Is.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string        { return e.err.Error() }
func (e *noResponseError) Unwrap() error        { return e.err }
func (e *noResponseError) Is(target error) bool { return target == ErrNoResponse }

// errStaleConn marks a reused connection that failed before any byte of a
// response arrived (the backend closed it while idle).
var errStaleConn = errors.New("reused upstream connection closed before the response")

// staleError wraps the failure of a connection before any response byte;
// it is errStaleConn for errors.Is.
type staleError struct{ err error }

func (e *staleError) Error() string        { return e.err.Error() }
func (e *staleError) Unwrap() error        { return e.err }
func (e *staleError) Is(target error) bool { return target == errStaleConn }

func unwrapStale(err error) error {
	var se *staleError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// idempotent methods may be sent twice (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// canResend reports whether r may be sent again after a connection failed
// before any response byte: an idempotent method, with no body or one that
// can be rewound (net/http's isReplayable).
func canResend(r *Request) bool {
	return idempotent(r.Method) && (r.Body == nil || r.Replayable)
}
