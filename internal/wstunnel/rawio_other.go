//go:build !unix

package wstunnel

// hasRawIO reports whether this platform reads and writes sockets through
// syscall.RawConn.
const hasRawIO = false

func (p *pipe) rawRead(fd uintptr) bool { panic("wstunnel: raw socket I/O is unix-only") }

func (p *pipe) waitTLS(fd uintptr) bool { panic("wstunnel: raw socket I/O is unix-only") }
