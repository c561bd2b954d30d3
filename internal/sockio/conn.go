//go:build unix

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
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
	writeFn func(uintptr) bool
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
	return s
}

// NetConn returns the wrapped conn.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Unwrap returns the wrapped conn: reading and writing it directly is the
// same as going through c.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// SyscallConn returns the wrapped conn's RawConn.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// Read reads from the socket; see the package documentation.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rb, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
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
	c.wb, c.wn, c.werr = p, 0, nil
	err := c.raw.Write(c.writeFn)
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
