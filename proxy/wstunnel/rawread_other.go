//go:build !unix

package wstunnel

// hasRawRead reports whether this platform reads through syscall.RawConn.
const hasRawRead = false

func (p *pipe) rawRead(fd uintptr) bool { panic("wstunnel: raw reads are unix-only") }
