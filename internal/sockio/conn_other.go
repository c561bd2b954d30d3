//go:build !unix

package sockio

import (
	"net"
	"time"
)

// Supported reports whether this platform has the raw socket paths; where
// it does not, Wrap returns its argument.
const Supported = false

// Wrap returns c: this platform has no raw socket paths.
func Wrap(c net.Conn) net.Conn { return c }

// Read is not available on this platform.
func Read(fd uintptr, b []byte) (int, error) { panic("sockio: unix only") }

// Write is not available on this platform.
func Write(fd uintptr, b []byte) (int, error) { panic("sockio: unix only") }

// Conn is never made on this platform; the type exists so callers can
// unwrap it everywhere.
type Conn struct{ net.Conn }

// NetConn returns the wrapped conn.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Unwrap returns the wrapped conn.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// SetWriteTimeout does nothing: a Conn is never made on this platform.
func (c *Conn) SetWriteTimeout(time.Duration) {}
