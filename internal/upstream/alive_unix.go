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

// bindPeek prepares peek for uc's connection, once per connection: its
// raw socket and the callback, so that the check before each reuse
// allocates nothing (a closure over peekIdle's locals escapes to the
// heap at every call).
func (uc *upConn) bindPeek() {
	sc, ok := uc.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	uc.raw, uc.peekFn = raw, uc.peekRead
}

// peek is peekIdle for the connection's owner, the request about to
// reuse it (usable): its state is uc's, so no one else may call it (the
// idle reaper, which probes connections it does not own, uses
// peekIdle).
func (uc *upConn) peek() int {
	if uc.raw == nil {
		return idleOK
	}
	uc.peekState = idleOK
	if err := uc.raw.Read(uc.peekFn); err != nil {
		return idleClosed
	}
	return uc.peekState
}

// peekRead is peekIdle's receive, on uc's state.
func (uc *upConn) peekRead(fd uintptr) bool {
	for {
		n, _, err := syscall.Recvfrom(int(fd), uc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
		case err == nil && n > 0:
			uc.peekState = idleData
		default:
			uc.peekState = idleClosed
		}
		return true
	}
}
