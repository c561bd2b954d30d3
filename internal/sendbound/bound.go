package sendbound

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Bound is how the writes of one response are bounded.
type Bound struct {
	// Send is the send timeout: the longest a single write or flush may
	// block. Zero means unbounded.
	Send time.Duration
	// Now is the clock; it must be set when Send is not zero.
	Now func() time.Time
	// H2 is whether the response is an HTTP/2 stream.
	H2 bool
	// Conn is whether the connection (HTTP/1) bounds its writes by Send
	// itself (edgeserver.ConnInfo.SendBound): no deadline is set, and End
	// does nothing.
	Conn bool
}

// Arm bounds the next write or flush by the send timeout from now.
func (b Bound) Arm(rc *http.ResponseController) {
	if b.Send > 0 && !b.Conn {
		_ = rc.SetWriteDeadline(b.Now().Add(b.Send))
	}
}

// Idle follows a write after which the handler waits for more to send:
// an HTTP/2 stream's deadline is disarmed so the wait does not count. An
// HTTP/1 connection's deadline only fails writes, and the next write
// re-arms it.
func (b Bound) Idle(rc *http.ResponseController) {
	if b.H2 && b.Send > 0 {
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

// End bounds what is written when the handler returns. On HTTP/1 what is
// still buffered (the head of a response without a body, the tail of a
// body) is flushed under the deadline, which is then cleared: it is the
// connection's, and the connection's next request must not inherit it
// (net/http writes its 100 Continue before the handler could arm
// anything). On HTTP/2 the deadline stays armed on the stream: it bounds
// the frames net/http writes after the handler returns (the head of a
// response without a body, the buffered tail, END_STREAM), and the
// stream's end disarms it.
//
// armed reports that the response's last write was bounded by Arm and
// nothing was waited for since (the body ended with it): that bound,
// set a moment ago, is the one End would set, and is kept rather than
// set again (on HTTP/2 every setting is a message to the connection's
// serve loop).
//
// With Conn, End does nothing: what is buffered goes out when net/http
// finishes the response, under the connection's own bound, as nginx
// sends a response's tail. A flush here would only tell the caller
// earlier that the client is gone, and cost a small static file 3-4 %
// of its CPU time (docs/performance.md).
func (b Bound) End(rc *http.ResponseController, armed bool) error {
	if b.Send <= 0 || b.Conn {
		return nil
	}
	if !armed {
		b.Arm(rc)
	}
	if b.H2 {
		return nil
	}
	err := rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
	return err
}

// ErrClientWrite is Copy's error when a write or flush to the client
// failed (the source's errors are returned as they are).
var ErrClientWrite = errors.New("client write failed")

// Copy copies src to w through buf with an idle-based send timeout: each
// write may block at most the send timeout, so a slow client is cut but a
// long download or event stream that keeps moving is not. The first write
// is bounded like every other; the caller ends the bound (End). flush
// sends every piece on at once (streams).
//
// length is the body's length when known (-1 when not). The write that
// completes the body — the source said io.EOF with it, or length bytes
// have been read — is not followed by a wait for the source, so its
// bound is left armed (armed reports it) for End: a small response sets
// the deadline once. On HTTP/2 each setting is a hand-off to the
// connection's serve loop (and disarming, then re-arming, a new timer),
// which a response that ends here does not need.
func (b Bound) Copy(w http.ResponseWriter, src io.Reader, buf []byte, flush bool, length int64) (written int64, armed bool, err error) {
	rc := http.NewResponseController(w)
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			b.Arm(rc)
			nw, werr := w.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, false, ErrClientWrite
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return written, false, ErrClientWrite
				}
			}
			if armed = rerr == io.EOF || length >= 0 && written >= length; !armed {
				b.Idle(rc)
			}
		}
		if rerr == io.EOF {
			return written, armed, nil
		}
		if rerr != nil {
			return written, false, rerr
		}
	}
}

// FileChunk is the most a single ReadFrom of SendFile passes to net/http
// at once: a client must take this much within the send timeout (6.4 KiB/s
// at the default 10 s), while sendfile(2) still moves the bytes.
const FileChunk = 64 << 10

// SendFile hands the file behind lr (an *io.LimitedReader over an
// *os.File, as http.ServeContent passes it) to rf, the client's writer's
// ReadFrom (sendfile on plaintext HTTP/1), FileChunk bytes at a time,
// re-arming the send timeout on rc before each. chunk is the caller's
// scratch LimitedReader (a field, so that passing it allocates nothing).
// It returns the bytes sent, as ReadFrom does; armed reports whether any
// piece was bounded.
func (b Bound) SendFile(rc *http.ResponseController, rf io.ReaderFrom, lr, chunk *io.LimitedReader) (total int64, armed bool, err error) {
	for lr.N > 0 {
		want := min(lr.N, FileChunk)
		*chunk = io.LimitedReader{R: lr.R, N: want}
		b.Arm(rc)
		armed = true
		n, err := rf.ReadFrom(chunk)
		lr.N -= n
		total += n
		if err != nil {
			return total, armed, err
		}
		if n < want {
			break // the file ended early
		}
	}
	return total, armed, nil
}

// Counter is a writer that passes everything to W and counts in N the
// body bytes that reach it (nginx's $body_bytes_sent under a compressor).
type Counter struct {
	W http.ResponseWriter
	N int64
}

// Header is W's.
func (c *Counter) Header() http.Header { return c.W.Header() }

// WriteHeader passes the status to W.
func (c *Counter) WriteHeader(code int) { c.W.WriteHeader(code) }

// Write writes to W and counts what it took.
func (c *Counter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the writer underneath.
func (c *Counter) Unwrap() http.ResponseWriter { return c.W }

var _ http.ResponseWriter = (*Counter)(nil)
