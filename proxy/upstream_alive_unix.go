//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle upstream connection may still be
// used: nothing to read (EAGAIN) means the backend has neither closed it
// nor sent anything unasked. One non-blocking MSG_PEEK receive; only
// requests that could not be retried on a stale connection pay for it.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				// Nothing pending: still open.
			default:
				// EOF (n == 0), an error, or bytes nobody asked for
				// (n > 0): not reusable.
				alive = false
			}
			return true
		}
	})
	return alive && err == nil
}
