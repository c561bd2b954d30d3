//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// peekIdle looks at an idle connection without reading from it: one
// non-blocking MSG_PEEK receive. Nothing to read (EAGAIN) means the
// backend has neither closed it nor sent anything unasked.
func peekIdle(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return idleOK
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return idleOK
	}
	st := idleOK
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				// Nothing pending: still open.
			case err == nil && n > 0:
				st = idleData
			default:
				// EOF (n == 0) or an error.
				st = idleClosed
			}
			return true
		}
	})
	if err != nil {
		return idleClosed
	}
	return st
}
