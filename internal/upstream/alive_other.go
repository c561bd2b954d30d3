//go:build !unix

package upstream

import "net"

// peekIdle cannot look at a socket on this platform: an idle connection
// is taken as open and empty.
func peekIdle(net.Conn) int { return idleOK }

// bindPeek does nothing on this platform.
func (uc *upConn) bindPeek() {}

// peek is peekIdle for the connection's owner.
func (uc *upConn) peek() int { return idleOK }
