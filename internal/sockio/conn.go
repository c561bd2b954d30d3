//go:build unix

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Supported reports whether this build has the raw socket paths (unix,
// without the gatehouse_nosockio tag); where it does not, Wrap returns its
// argument.
const Supported = rawConns

// Conn is a socket read and written through its syscall.RawConn. One
// goroutine at a time may read and one may write, as net/http and
// crypto/tls do.
type Conn struct {
	net.Conn
	raw syscall.RawConn

	rb     []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool

	wb      []byte
	wn      int
	werr    error
	waited  bool // the running Write has waited (SetWriteTimeout)
	writeFn func(uintptr) bool

	// wto is the write timeout (SetWriteTimeout), in nanoseconds.
	wto atomic.Int64

	// Deadlines reach the socket when an operation needs them (see
	// SetReadDeadline). eager: something may use the socket around this
	// Conn (Unwrap, NetConn), so every deadline goes through at once.
	rdl, wdl deadline
	eager    atomic.Bool
	rc       rawConn
}

// deadline is one direction's deadline as the caller set it.
type deadline struct {
	busy atomic.Int32 // operations running: a new deadline must go through at once
	pend atomic.Bool  // want has not reached the socket
	mu   sync.Mutex   // guards want, sock and the setting of the socket's deadline
	want time.Time
	sock time.Time // the deadline the socket has
	err  error     // expired's error, made once
}

// Wrap returns c as a *Conn when c exposes a RawConn (a *net.TCPConn, or a
// wrapper whose SyscallConn succeeds because it has nothing of its own
// left to read), else c itself.
func Wrap(c net.Conn) net.Conn {
	if !rawConns {
		return c
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	s := &Conn{Conn: c, raw: raw}
	s.readFn, s.writeFn = s.read, s.write
	s.rc.c = s
	return s
}

// NetConn returns the wrapped conn. From then on every deadline set on c
// reaches the socket at once, since the caller may use the wrapped conn
// directly.
func (c *Conn) NetConn() net.Conn {
	c.handOver()
	return c.Conn
}

// Unwrap returns the wrapped conn: reading and writing it directly is the
// same as going through c (deadlines included: see NetConn).
func (c *Conn) Unwrap() net.Conn {
	c.handOver()
	return c.Conn
}

// SyscallConn returns the wrapped conn's RawConn, behind one that brings
// the socket's deadlines up to date before each call.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return &c.rc, nil }

// SetWriteTimeout bounds every write that has to wait for the socket
// while no write deadline is set: a Write may wait at most d from the
// moment it first has to (for the peer to take bytes), a ReadFrom that
// hands the copy to the kernel (sendfile) at most d from its start. This
// is nginx's send_timeout, kept by the connection instead of by a
// deadline set around every write: a write that finds buffer space,
// which is nearly every write of a small response, costs nothing for it.
// A write deadline set on the Conn takes its place while it is set. Zero
// (the default) turns it off; so does handing the wrapped conn out
// (Unwrap, NetConn), since its writes no longer pass through the Conn.
func (c *Conn) SetWriteTimeout(d time.Duration) { c.wto.Store(int64(d)) }

// SetDeadline sets both deadlines; see SetReadDeadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.set(&c.rdl, t, true)
	c.set(&c.wdl, t, false)
	return nil
}

// SetReadDeadline sets the read deadline. It reaches the socket when a
// Read has to wait for data, or at once if a Read is running, so that a
// connection whose deadline is set and cleared around every request
// (net/http sets a client connection's read deadline six times per
// request) pays for one setting per Read that waits after a change, not
// one per change, and none while reads find their data (a busy
// keep-alive connection). A Read always runs under the deadline last set,
// as with the socket's own SetReadDeadline: one that has passed when the
// Read starts fails it, and a Read that finds data without waiting is not
// failed by one the socket still has from before, which may not be later
// than now. A deadline before 2001 is the standard library's idiom for
// "now" (aLongTimeAgo in net/http and crypto/tls): a Read that starts
// while it is set fails as the socket would, without a system call.
// Errors from the socket's deadline (a closed conn) are left to the
// operation, which meets the same condition.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.set(&c.rdl, t, true)
	return nil
}

// SetWriteDeadline sets the write deadline; see SetReadDeadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.set(&c.wdl, t, false)
	return nil
}

func (c *Conn) set(d *deadline, t time.Time, read bool) {
	d.mu.Lock()
	d.want = t
	if t.Equal(d.sock) {
		// Back to what the socket has (the send bound's clear after a
		// response whose write did not wait).
		d.pend.Store(false)
	} else {
		d.pend.Store(true)
		if d.busy.Load() != 0 || c.eager.Load() {
			c.apply(d, read)
		}
	}
	d.mu.Unlock()
}

// apply sets the socket's deadline to d.want; d.mu is held.
func (c *Conn) apply(d *deadline, read bool) {
	if read {
		_ = c.Conn.SetReadDeadline(d.want)
	} else {
		_ = c.Conn.SetWriteDeadline(d.want)
	}
	d.sock = d.want
	d.pend.Store(false)
}

// begin starts an operation in d's direction. It fails (with the socket's
// error for an expired deadline) when the deadline is the idiom for now.
// Otherwise the deadline as set goes to the socket if it has not, unless
// the operation is lazy (Read, Write: their system calls are made here,
// and settle sends it before they wait) and may start under the socket's
// deadline as it is: the one set has not passed, nor has the socket's
// (the poller fails an operation that starts after its deadline).
func (c *Conn) begin(d *deadline, read, lazy bool) error {
	d.busy.Add(1)
	if !d.pend.Load() {
		return nil
	}
	d.mu.Lock()
	if d.pend.Load() {
		if t := d.want; !t.IsZero() && t.Unix() < pastDeadline {
			err := c.expired(d, read)
			d.mu.Unlock()
			d.busy.Add(-1)
			return err
		}
		if !lazy || passed(d.want) || passed(d.sock) {
			c.apply(d, read)
		}
	}
	d.mu.Unlock()
	return nil
}

// bound gives the write about to wait (or, for one the kernel runs, about
// to start) the write timeout's deadline if no write deadline is set; it
// reports whether the timeout is on. The deadline is then the socket's,
// not the one set (none), so the next write starts by clearing it unless
// it finds buffer space while the deadline has not passed.
func (c *Conn) bound() bool {
	to := c.wto.Load()
	if to <= 0 {
		return false
	}
	d := &c.wdl
	d.mu.Lock()
	if d.want.IsZero() {
		t := time.Now().Add(time.Duration(to))
		_ = c.Conn.SetWriteDeadline(t)
		d.sock = t
		d.pend.Store(true)
	} else if d.pend.Load() {
		c.apply(d, false)
	}
	d.mu.Unlock()
	return true
}

// passed reports whether t is set and not in the future.
func passed(t time.Time) bool { return !t.IsZero() && time.Until(t) <= 0 }

// settle sends d's deadline to the socket if it has not gone yet: a lazy
// operation is about to wait.
func (c *Conn) settle(d *deadline, read bool) {
	if !d.pend.Load() {
		return
	}
	d.mu.Lock()
	if d.pend.Load() {
		c.apply(d, read)
	}
	d.mu.Unlock()
}

// expired returns the error of an operation whose deadline has passed, as
// the socket returns it; it is made once per direction (net/http ends
// its background read with it after every request). d.mu is held.
func (c *Conn) expired(d *deadline, read bool) error {
	if d.err == nil {
		op := "write"
		if read {
			op = "read"
		}
		d.err = &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return d.err
}

// pastDeadline: deadlines before this Unix time (September 2001) are
// taken for the idiom "now" (see SetReadDeadline).
const pastDeadline = 1e9

// handOver makes every deadline go through at once from now on, and
// sends those not yet there (a write deadline of the write timeout's is
// cleared, and the write timeout is off).
func (c *Conn) handOver() {
	c.wto.Store(0)
	c.eager.Store(true)
	for _, d := range [...]*deadline{&c.rdl, &c.wdl} {
		d.mu.Lock()
		if d.pend.Load() {
			c.apply(d, d == &c.rdl)
		}
		d.mu.Unlock()
	}
}

// rawConn is c's RawConn for callers outside: each call runs with the
// socket's deadline up to date, as c's own operations do.
type rawConn struct{ c *Conn }

func (r *rawConn) Control(f func(fd uintptr)) error { return r.c.raw.Control(f) }

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	if err := r.c.begin(&r.c.rdl, true, false); err != nil {
		return err
	}
	defer r.c.rdl.busy.Add(-1)
	return r.c.raw.Read(f)
}

func (r *rawConn) Write(f func(fd uintptr) bool) error {
	if err := r.c.begin(&r.c.wdl, false, false); err != nil {
		return err
	}
	defer r.c.wdl.busy.Add(-1)
	r.c.bound()
	return r.c.raw.Write(f)
}

// Read reads from the socket; see the package documentation.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.begin(&c.rdl, true, true); err != nil {
		return 0, err
	}
	c.rb, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
	c.rdl.busy.Add(-1)
	c.rb = nil
	if err != nil {
		return 0, err
	}
	if c.rerr != nil {
		return 0, c.opError("read", c.rerr)
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, err := Read(fd, c.rb)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.settle(&c.rdl, true)
			return false
		}
		c.rn, c.rerr = n, err
		return true
	}
}

// Write writes all of p unless the deadline passes, the conn is closed or
// the socket fails.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.begin(&c.wdl, false, true); err != nil {
		return 0, err
	}
	c.wb, c.wn, c.werr, c.waited = p, 0, nil, false
	err := c.raw.Write(c.writeFn)
	c.wdl.busy.Add(-1)
	c.wb = nil
	n := c.wn
	if err != nil {
		return n, err
	}
	if c.werr != nil {
		return n, c.opError("write", c.werr)
	}
	return n, nil
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wb) {
		n, err := Write(fd, c.wb[c.wn:])
		switch err {
		case nil:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			// The first wait of this Write sends the deadline set, or
			// starts the write timeout's; later waits of the same Write
			// stay under it (a deadline set meanwhile went through at
			// once).
			if !c.waited {
				c.waited = true
				if !c.bound() {
					c.settle(&c.wdl, false)
				}
			}
			return false
		default:
			c.werr = err
			return true
		}
	}
	return true
}

// ReadFrom copies r to the socket. A source the kernel can copy from
// (one with a file descriptor, such as the *os.File of a static file or
// a socket, alone or inside an io.LimitedReader) goes to the wrapped
// conn's ReadFrom, where a *net.TCPConn uses sendfile(2) or splice(2).
// Anything else is copied through Write, with raw system calls and a
// pooled buffer, as the wrapped conn's ReadFrom would copy it through
// its own Write with a fresh 32 KiB buffer. ReadFrom is a write: one
// goroutine at a time may call Write or ReadFrom.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok && kernelSource(r) {
		if err := c.begin(&c.wdl, false, false); err != nil {
			return 0, err
		}
		defer c.wdl.busy.Add(-1)
		c.bound()
		return rf.ReadFrom(r)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{c}, r, *bp)
}

// kernelSource reports whether r (or the reader inside an
// io.LimitedReader) has a file descriptor.
func kernelSource(r io.Reader) bool {
	if lr, ok := r.(*io.LimitedReader); ok {
		r = lr.R
	}
	_, ok := r.(syscall.Conn)
	return ok
}

// writerOnly hides a ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// copyBufs holds the buffers of ReadFrom's copies (net/http pools its own
// the same way).
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}

// Interface guard.
var _ io.ReaderFrom = (*Conn)(nil)
