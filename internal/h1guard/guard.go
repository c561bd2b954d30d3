package h1guard

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MarkerPath is the path of the synthetic request handed out in place of a
// rejected request head.
const MarkerPath = "/.gatehouse/rejected"

// markerRequest replaces a rejected head on the stream.
const markerRequest = "GET " + MarkerPath + " HTTP/1.1\r\nHost: gatehouse.invalid\r\nConnection: close\r\n\r\n"

// DefaultMaxHeadBytes is the head limit used when Options.MaxHeadBytes is
// zero or negative: 16 KiB of header fields plus 4 KiB of request line.
const DefaultMaxHeadBytes = 20 << 10

// ErrRejected is returned by Read after a framing error inside a chunked
// body. Rejected reports the reason.
var ErrRejected = errors.New("h1guard: request rejected")

// Options configures a Conn.
type Options struct {
	// MaxHeadBytes bounds one request head in bytes: the request line, the
	// header fields, the blank line that ends them and any blank lines before
	// the request line. A longer head is rejected with "head too large".
	// Zero or negative means DefaultMaxHeadBytes.
	MaxHeadBytes int
}

const (
	// minDirect is the smallest caller buffer the guard reads into directly
	// while it expects a request head; smaller reads (such as net/http's
	// one-byte background read) go through the pooled buffer.
	minDirect = 512
	// bufSize is the initial size of a pooled head buffer.
	bufSize = 4 << 10
	// maxPooled is the largest buffer put back into the pool.
	maxPooled = 64 << 10
)

// headBufs holds buffers for request heads split across reads. A sync.Pool
// holds no observable state, like net/http's own bufio pools.
var headBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, bufSize)
	return &b
}}

// Conn is a net.Conn that validates HTTP/1.x request framing on its inbound
// stream. Read must not be called concurrently with itself (net/http never
// does); Rejected, Passthrough, Write, Close and the deadline methods may be
// called from any goroutine.
type Conn struct {
	nc  net.Conn
	max int

	// Parser state; only touched by Read.
	st      state
	next    state  // state after the current body: stHead or stPass
	remain  int64  // bytes left in a Content-Length body or a chunk
	size    uint64 // chunk size being parsed
	digits  int    // hex digits seen in the chunk-size line
	line    int    // length of the chunk-size line without CRLF
	excess  int64  // chunk overhead, mirrors net/http/internal.chunkedReader
	trailer int    // bytes of trailer section seen
	resume  int    // where to resume looking for the end of the pending head

	// Buffered bytes. buf[r:ok] are validated and not yet handed out;
	// buf[ok:] is the start of a head that is not complete yet.
	bp    *[]byte
	buf   []byte
	r, ok int

	marker    bool    // hand out markerRequest[mpos:] once buf[r:ok] is drained
	mpos      int     // bytes of markerRequest handed out
	err       error   // returned by every Read once buffered bytes are drained
	record    bool    // tests only: record head offsets in heads
	heads     []int64 // tests only: stream offsets of accepted heads
	headOff   int64
	delivered int64 // bytes handed out, only maintained when record is set

	reason atomic.Uint32
	pass   atomic.Bool
}

// Wrap returns c wrapped in a guard. The guard owns reading from c: callers
// must read only through the returned Conn.
func Wrap(c net.Conn, o Options) *Conn {
	m := o.MaxHeadBytes
	if m <= 0 {
		m = DefaultMaxHeadBytes
	}
	return &Conn{nc: c, max: m}
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Rejected returns the reason for the first rejection on this connection.
// ok is false while nothing was rejected. A handler must answer 400 with
// Connection: close when ok is true and the request path is MarkerPath; a
// request that reached the handler before the rejection carries its own path
// and is genuine even if Rejected already reports true.
func (c *Conn) Rejected() (reason string, ok bool) {
	r := reasonCode(c.reason.Load())
	if r == 0 {
		return "", false
	}
	return r.String(), true
}

// Passthrough reports whether the guard has seen an upgrade request (a GET
// with Upgrade and Connection: upgrade) and stopped inspecting the stream
// after it. Once it is true, every later byte reaches the caller unchecked,
// so a handler that does not switch protocols must close the connection.
// The guard may still hold bytes read after the upgrade head: see Buffered.
func (c *Conn) Passthrough() bool { return c.pass.Load() }

// Buffered returns how many bytes the guard has read from the wrapped
// connection and not yet returned from Read (validated bytes waiting for the
// caller, plus the start of an incomplete head). Reading from NetConn
// directly, for example to hand a hijacked WebSocket the raw socket, loses
// these bytes: do it only when Buffered is 0. Call it only while no Read is
// running, for example after http.Hijacker.Hijack.
func (c *Conn) Buffered() int { return len(c.buf) - c.r }

// Unwrap returns the wrapped connection once the guard passes the stream
// through (see Passthrough), else nil: while the guard still inspects
// requests, nothing may bypass it. Bytes it still holds are reported by
// Buffered.
func (c *Conn) Unwrap() net.Conn {
	if !c.pass.Load() {
		return nil
	}
	return c.nc
}

// Write writes to the wrapped connection.
func (c *Conn) Write(p []byte) (int, error) { return c.nc.Write(p) }

// Close closes the wrapped connection. A pooled buffer still holding part of
// a head is left to the garbage collector, since Read may be running.
func (c *Conn) Close() error { return c.nc.Close() }

// LocalAddr returns the wrapped connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the wrapped connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the wrapped connection's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the wrapped connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the wrapped connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Read reads validated bytes from the connection. Bytes of a request head
// are returned only once the whole head has arrived and passed validation.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r < c.ok {
			n := copy(p, c.buf[c.r:c.ok])
			c.r += n
			if c.r == len(c.buf) {
				c.release()
			}
			c.count(n)
			return n, nil
		}
		if c.marker {
			n := copy(p, markerRequest[c.mpos:])
			c.mpos += n
			if c.mpos == len(markerRequest) {
				c.marker = false
				c.err = io.EOF
			}
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.ok < len(c.buf) || (c.st == stHead && len(p) < minDirect) {
			// Slow path: a head is pending or the caller's buffer is small.
			n, err := c.fill()
			if n == 0 && err == nil {
				return 0, nil
			}
			if err != nil && c.r == c.ok && !c.marker {
				return 0, err
			}
			continue
		}
		// Fast path: read straight into p and validate in place.
		n, err := c.nc.Read(p)
		if n > 0 {
			k, res := c.advance(p[:n], 0)
			switch res {
			case resMore:
				c.stash(p[k:n])
			case resReject:
				c.marker = true
			case resBodyErr:
				c.err = ErrRejected
			}
			if k > 0 {
				c.count(k)
				return k, nil
			}
			if res != resMore || err == nil {
				continue
			}
		}
		if err != nil {
			return 0, c.readErr(err)
		}
		return 0, nil
	}
}

// fill reads into the pooled buffer and validates what arrived. It returns
// the number of bytes read.
func (c *Conn) fill() (int, error) {
	if c.bp == nil {
		c.acquire()
	}
	if c.ok > 0 { // c.r == c.ok here: move the pending head to the front
		n := copy(c.buf[:cap(c.buf)], c.buf[c.ok:])
		c.buf = c.buf[:n]
		c.r, c.ok = 0, 0
	}
	if len(c.buf) == cap(c.buf) {
		c.grow()
	}
	n, err := c.nc.Read(c.buf[len(c.buf):cap(c.buf)])
	if n > 0 {
		c.buf = c.buf[:len(c.buf)+n]
		k, res := c.advance(c.buf[c.ok:], c.resume)
		c.ok += k
		switch res {
		case resDone:
			c.resume = 0
		case resReject:
			c.buf = c.buf[:c.ok]
			c.marker = true
		case resBodyErr:
			c.buf = c.buf[:c.ok]
			c.err = ErrRejected
		}
		return n, nil
	}
	if err != nil {
		return 0, c.readErr(err)
	}
	return 0, nil
}

// readErr handles an error from the wrapped connection. A timeout is
// transient (net/http aborts its background read with a past deadline);
// anything else ends the stream, and a pending partial head is dropped.
func (c *Conn) readErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if c.bp != nil && c.r == c.ok && c.ok == len(c.buf) {
			// Nothing pending (net/http aborting its background read, or
			// an idle keep-alive connection timing out): give the buffer
			// back instead of holding it for the connection's life.
			c.release()
		}
		return err
	}
	if c.r == c.ok && c.bp != nil {
		c.buf = c.buf[:c.ok]
		c.release()
	}
	c.err = err
	return err
}

// stash keeps the start of an incomplete head that arrived in the caller's
// buffer.
func (c *Conn) stash(b []byte) {
	if c.bp == nil {
		c.acquire()
	}
	c.buf = append(c.buf[:0], b...)
	*c.bp = c.buf[:0]
	c.r, c.ok = 0, 0
}

func (c *Conn) acquire() {
	c.bp = headBufs.Get().(*[]byte)
	c.buf = (*c.bp)[:0]
	c.r, c.ok = 0, 0
}

// grow doubles the buffer, up to what the longest acceptable head needs.
func (c *Conn) grow() {
	n := 2 * cap(c.buf)
	if n > c.max+1 {
		n = c.max + 1
	}
	if n <= cap(c.buf) {
		n = cap(c.buf) + bufSize // unreachable: advance rejects first
	}
	b := make([]byte, len(c.buf), n)
	copy(b, c.buf)
	c.buf = b
	*c.bp = b[:0]
}

func (c *Conn) release() {
	if cap(c.buf) <= maxPooled {
		*c.bp = c.buf[:0]
		headBufs.Put(c.bp)
	}
	c.bp, c.buf = nil, nil
	c.r, c.ok, c.resume = 0, 0, 0
}

func (c *Conn) count(n int) {
	if c.record {
		c.delivered += int64(n)
	}
}

func (c *Conn) reject(r reasonCode) {
	c.reason.CompareAndSwap(0, uint32(r))
}

// Interface guard.
var _ net.Conn = (*Conn)(nil)
