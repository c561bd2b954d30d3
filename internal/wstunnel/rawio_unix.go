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

// waitTLS is the syscall.RawConn read callback of a TLS source: it
// returns once the socket has something to read (data, EOF or an error),
// leaving it for crypto/tls to read. The first call looks (the poller
// forgets a readiness event when a read begins); on EAGAIN the goroutine
// parks in the poller, and the call after it wakes trusts the event
// without a second look: a spurious one only makes the read that follows
// wait inside crypto/tls, still without a pooled buffer.
func (p *pipe) waitTLS(fd uintptr) bool {
	if p.waited || waitReadable(fd) {
		return true
	}
	p.waited = true
	return false
}

// waitReadable reports whether the socket fd has something to read, without
// reading it.
func waitReadable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
