//go:build !unix

package proxy

import "net"

// connAlive cannot probe a socket on this platform.
func connAlive(net.Conn) bool { return true }
