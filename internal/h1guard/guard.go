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

// errHoldFull is returned by a Read that finds the guard holding as much
// as it may after an upgrade request whose response is still unknown,
// after one such Read returned nothing.
var errHoldFull = errors.New("h1guard: too many bytes after an upgrade request whose response is not known")

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
// does); Rejected, Passthrough, Hijacked, Write, Close and the deadline
// methods may be called from any goroutine.
type Conn struct {
	nc  net.Conn
	max int

	// Parser state; only touched by Read.
	st      state
	next    state  // state after the current body: stHead or stHold
	remain  int64  // bytes left in a Content-Length body or a chunk
	size    uint64 // chunk size being parsed
	digits  int    // hex digits seen in the chunk-size line
	line    int    // length of the chunk-size line without CRLF
	excess  int64  // chunk overhead, mirrors net/http/internal.chunkedReader
	trailer int    // bytes of trailer section seen
	resume  int    // where to resume looking for the end of the pending head
	out     int64  // bytes handed out by Read so far
	armAt   int64  // stream offset where an upgrade head ends; 0: none pending
	again   bool   // buf[ok:] must be validated before reading more
	stalled bool   // a Read in stHold found nothing more to read

	// Buffered bytes. buf[r:ok] are validated and not yet handed out;
	// buf[ok:] is the start of a head that is not complete yet, or the
	// bytes held after an upgrade request (stHold).
	bp    *[]byte
	buf   []byte
	r, ok int

	marker bool    // hand out markerRequest[mpos:] once buf[r:ok] is drained
	mpos   int     // bytes of markerRequest handed out
	err    error   // returned by every Read once buffered bytes are drained
	record bool    // tests only: record head offsets in heads
	heads  []int64 // tests only: stream offsets of accepted heads
	arms   int     // tests only: upgrade heads handed out (calls of arm)

	// Upgrade state, shared by Read and Write (see arm).
	up       atomic.Uint32 // upIdle, upWait, up101, upPass or upDecline
	hijacked atomic.Bool
	wmu      sync.Mutex // guards watch
	watch    statusWatch

	reason   atomic.Uint32
	pass     atomic.Bool
	aborting atomic.Bool // the read deadline is the idiom for "now" (SetReadDeadline)
}

// Values of Conn.up: where an upgrade request stands.
const (
	upIdle    = iota // no upgrade request awaits its response
	upWait           // an upgrade head was handed out; its final status is not known
	up101            // the final status was 101, the conn is not hijacked yet
	upPass           // 101 and hijacked: the protocol switched
	upDecline        // the final status was not 101: guard the held bytes
)

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

// Passthrough reports whether the connection has switched protocols: the
// response to an upgrade request (a GET with Upgrade and Connection:
// upgrade) was 101, written through Write, and Hijacked was called. Every
// later byte then reaches the caller unchecked. The guard may still hold
// bytes read after the upgrade request: see Buffered.
func (c *Conn) Passthrough() bool { return c.pass.Load() }

// Hijacked tells the guard that the server has handed the connection to a
// handler (net/http's http.StateHijacked, reported to
// http.Server.ConnState). Only a hijacked connection can switch protocols:
// a 101 that the server writes without giving up the connection leaves
// the guard holding the bytes that follow, and they never reach the
// server unchecked.
func (c *Conn) Hijacked() {
	c.hijacked.Store(true)
	c.switchOver()
}

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

// Write writes to the wrapped connection. While an upgrade request awaits
// its response, Write reads the status lines of what is written to learn
// whether the protocol switches (see arm).
func (c *Conn) Write(p []byte) (int, error) {
	if c.up.Load() == upWait {
		c.observe(p)
	}
	return c.nc.Write(p)
}

// ReadFrom copies r to the wrapped connection. net/http's response.ReadFrom
// calls it for a response body whose length is known, after it has
// written the response head through Write, so the status watch has seen
// the status line; when the wrapped connection has a ReadFrom of its own
// (a plaintext socket: sendfile(2) for a file), r goes there. While an
// upgrade request awaits its response (a hijacking handler copying its
// own 101 from a reader), and when the wrapped connection has no ReadFrom
// (a *tls.Conn), r is copied through Write with a pooled buffer, as
// net/http would have copied it.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.nc.(io.ReaderFrom); ok && c.up.Load() != upWait {
		return rf.ReadFrom(r)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{c}, r, *bp)
}

// writerOnly hides a ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// copyBufs holds the buffers of ReadFrom's copies (net/http pools its own
// the same way).
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// Close closes the wrapped connection. A pooled buffer still holding part of
// a head is left to the garbage collector, since Read may be running.
func (c *Conn) Close() error { return c.nc.Close() }

// LocalAddr returns the wrapped connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the wrapped connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the wrapped connection's deadlines; see SetReadDeadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.aborting.Store(isAbort(t))
	return c.nc.SetDeadline(t)
}

// SetReadDeadline sets the wrapped connection's read deadline. While it
// is one before 2001, the standard library's idiom for "now" (net/http
// aborting its one-byte background read after every request), a Read
// with nothing pending reads into the caller's buffer: the wrapped
// connection fails it at once, and the guard takes no head buffer from
// its pool only to give it back.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.aborting.Store(isAbort(t))
	return c.nc.SetReadDeadline(t)
}

// isAbort reports whether a deadline is the idiom for "now" (see
// SetReadDeadline).
func isAbort(t time.Time) bool { return !t.IsZero() && t.Unix() < 1e9 }

// SetWriteDeadline sets the wrapped connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Read reads validated bytes from the connection. Bytes of a request head
// are returned only once the whole head has arrived and passed validation.
// Bytes that follow an upgrade request are returned only once the response
// to it is known: after a 101 unchanged, otherwise validated as requests.
// Until then Read waits for the client on the wrapped connection, keeps
// what arrives and returns 0, nil (net/http's background read ends that
// way, as it does on a pipelined byte); once it can read no more, it
// returns 0, nil once and then an error (see holdRead).
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
			c.handedOut(n)
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
		if c.st == stHold {
			if c.leaveHold() {
				c.again = c.ok < len(c.buf)
				continue
			}
			got, err := c.holdRead()
			if err != nil {
				return 0, err
			}
			if got && c.decided() {
				continue
			}
			return 0, nil
		}
		if c.again {
			c.again = false
			c.scan()
			continue
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.ok < len(c.buf) || (c.st == stHead && len(p) < minDirect && !c.aborting.Load()) {
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
			case resHold:
				if k < n {
					c.stash(p[k:n])
				}
				c.resume = 0
			case resCut:
				c.stash(p[k:n])
				c.resume = 0
				c.again = true
			case resReject:
				c.marker = true
			case resBodyErr:
				c.err = ErrRejected
			}
			if k > 0 {
				c.handedOut(k)
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
	c.room()
	n, err := c.nc.Read(c.buf[len(c.buf):cap(c.buf)])
	if n > 0 {
		c.buf = c.buf[:len(c.buf)+n]
		c.scan()
		return n, nil
	}
	if err != nil {
		return 0, c.readErr(err)
	}
	return 0, nil
}

// scan validates buf[ok:].
func (c *Conn) scan() {
	k, res := c.advance(c.buf[c.ok:], c.resume)
	c.ok += k
	switch res {
	case resDone, resHold:
		c.resume = 0
	case resCut:
		c.resume = 0
		c.again = true
	case resReject:
		c.buf = c.buf[:c.ok]
		c.marker = true
	case resBodyErr:
		c.buf = c.buf[:c.ok]
		c.err = ErrRejected
	}
}

// room makes free space at the end of the buffer for a read; c.r == c.ok.
func (c *Conn) room() {
	if c.bp == nil {
		c.acquire()
	}
	if c.ok > 0 { // move the pending bytes to the front
		n := copy(c.buf[:cap(c.buf)], c.buf[c.ok:])
		c.buf = c.buf[:n]
		c.r, c.ok = 0, 0
	}
	if len(c.buf) == cap(c.buf) {
		c.grow()
	}
}

// holdRead reads from the wrapped connection while an upgrade request
// awaits its response, and keeps what arrives in buf[ok:] (c.r == c.ok).
// It reports whether bytes arrived. At most c.max+1 bytes are held; beyond
// that the client waits, as it would for a server that reads nothing.
// Once it can read no more (the hold is full, or the connection failed
// after bytes were held) it returns nothing the first time, as net/http's
// background read expects, and an error after that, so that a caller
// reading in a loop before the response is known does not spin.
func (c *Conn) holdRead() (bool, error) {
	held := len(c.buf) - c.ok
	if c.err != nil || held > c.max {
		if !c.stalled && held > 0 {
			c.stalled = true
			return false, nil // the held bytes may still be handed out
		}
		if c.err != nil {
			return false, c.err
		}
		return false, errHoldFull
	}
	c.room()
	n, err := c.nc.Read(c.buf[len(c.buf):min(cap(c.buf), c.max+1)])
	c.buf = c.buf[:len(c.buf)+n]
	if err == nil || n > 0 && isTimeout(err) {
		return n > 0, nil
	}
	if len(c.buf) == 0 {
		c.release() // nothing held: give the buffer back
	}
	if isTimeout(err) {
		return false, err
	}
	c.err = err
	if len(c.buf) == 0 {
		return false, err
	}
	c.stalled = true
	return n > 0, nil
}

// handedOut accounts for n bytes returned by Read, and arms the response
// watch once the last byte of an upgrade head is out.
func (c *Conn) handedOut(n int) {
	c.out += int64(n)
	if c.armAt != 0 && c.out >= c.armAt {
		c.armAt = 0
		c.arm()
	}
}

// arm starts watching what the server writes for the response to the
// upgrade request whose head was just handed out: the first final status
// line written from now on answers it. This rests on how net/http serves a
// connection: it reads the head of request N+1 only after it has written
// and flushed the whole response to request N (conn.serve runs the handler
// and response.finishRequest before the next readRequest); while a
// handler runs it reads at most one byte beyond the request
// (connReader.backgroundRead). The guard hands out an upgrade head in a
// Read that hands out nothing before it, so the Read that hands out its
// last byte comes from readRequest, after every earlier response.
func (c *Conn) arm() {
	c.arms++
	c.wmu.Lock()
	c.watch = statusWatch{}
	c.up.Store(upWait)
	c.wmu.Unlock()
}

// observe feeds written bytes to the status watch.
func (c *Conn) observe(p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.up.Load() != upWait {
		return
	}
	switch code := c.watch.feed(p); code {
	case 0:
	case 101:
		c.up.Store(up101)
		if c.hijacked.Load() {
			c.switchOver()
		}
	default:
		c.up.Store(upDecline)
	}
}

// switchOver enters pass-through once both the 101 is written and the
// connection is hijacked, in either order.
func (c *Conn) switchOver() {
	if c.up.CompareAndSwap(up101, upPass) {
		c.pass.Store(true)
	}
}

// decided reports whether the response to the upgrade request is known.
func (c *Conn) decided() bool {
	u := c.up.Load()
	return u == upPass || u == upDecline
}

// leaveHold ends stHold once the response to the upgrade request is known:
// after a switch every byte passes, otherwise heads are expected again.
func (c *Conn) leaveHold() bool {
	switch c.up.Load() {
	case upPass:
		c.st = stPass
		return true
	case upDecline:
		c.up.Store(upIdle)
		c.st = stHead
		c.stalled = false
		return true
	}
	return false
}

// readErr handles an error from the wrapped connection. A timeout is
// transient (net/http aborts its background read with a past deadline);
// anything else ends the stream, and a pending partial head is dropped.
func (c *Conn) readErr(err error) error {
	if isTimeout(err) {
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

// isTimeout reports whether err is a timeout. The socket's own error (a
// *net.OpError) is a net.Error itself: it is asked directly, since
// net/http's abort of its background read ends in one after every request
// and errors.As (reflection) was 2 % of a small static file's CPU.
func isTimeout(err error) bool {
	if ne, ok := err.(net.Error); ok {
		return ne.Timeout()
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stash keeps bytes that arrived in the caller's buffer and cannot be
// handed out yet: the start of an incomplete head, an upgrade head that
// needs a Read of its own, or bytes held after an upgrade request.
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

func (c *Conn) reject(r reasonCode) {
	c.reason.CompareAndSwap(0, uint32(r))
}

// Interface guards.
var (
	_ net.Conn      = (*Conn)(nil)
	_ io.ReaderFrom = (*Conn)(nil)
)
