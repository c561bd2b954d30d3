//go:build unix

package wstunnel

import (
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// hasRawIO reports whether this platform reads and writes sockets through
// syscall.RawConn.
const hasRawIO = true

// rawRead is the syscall.RawConn read callback. It borrows a pooled buffer,
// reads what the kernel has and keeps the buffer only if it read something
// (or hit EOF or an error). On EAGAIN it returns the buffer to the pool and
// reports false, so the goroutine parks in the poller holding no buffer.
func (p *pipe) rawRead(fd uintptr) bool {
	if p.buf == nil {
		p.buf = p.t.r.bufs.Get().(*[bufSize]byte)
	}
	for {
		n, err := sockio.Read(fd, p.buf[:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			p.t.r.bufs.Put(p.buf)
			p.buf = nil
			return false
		}
		if n < 0 {
			n = 0
		}
		p.rn, p.rerr = n, err
		return true
	}
}
