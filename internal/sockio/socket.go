package sockio

import (
	"net"
	"syscall"
)

// An Unwrapper is a net.Conn layered over another. Every wrapper of a
// client connection implements it, so that Socket can find the socket
// underneath without knowing the wrapper types.
type Unwrapper interface {
	// Unwrap returns the connection underneath, or nil while reading and
	// writing it directly, bypassing the wrapper, would not be the same
	// as going through the wrapper (the wrapper still inspects or
	// transforms the stream). A *tls.Conn is never an Unwrapper.
	Unwrap() net.Conn
}

// A Bufferer is a wrapper that may hold bytes it read from the connection
// underneath and has not yet returned from Read.
type Bufferer interface {
	// Buffered returns the number of such bytes. Call it only while no
	// Read is running (after http.Hijacker.Hijack, for example).
	Buffered() int
}

// maxWrappers bounds the walk of Socket, against a wrapper that unwraps
// to itself.
const maxWrappers = 16

// Socket returns the socket under c's wrappers (a conn that is not an
// Unwrapper and exposes its file descriptor through syscall.Conn, such as
// a *net.TCPConn) when every wrapper on the way can be bypassed and none
// holds unread bytes; else nil. A caller that gets a socket may read and
// write it directly (and must still close c, so that the wrappers release
// what they hold).
func Socket(c net.Conn) net.Conn {
	for range maxWrappers {
		if c == nil {
			return nil
		}
		if b, ok := c.(Bufferer); ok && b.Buffered() != 0 {
			return nil
		}
		u, ok := c.(Unwrapper)
		if !ok {
			if _, ok := c.(syscall.Conn); ok {
				return c
			}
			return nil
		}
		c = u.Unwrap()
	}
	return nil
}
