//go:build unix && (!linux || gatehouse_nosockio)

package sockio

import "syscall"

// Read is read(2) on a non-blocking socket, through the runtime's
// syscall bookkeeping. On Linux it is a raw system call (sys_linux.go)
// unless the build tag gatehouse_nosockio asks for this one, which also
// makes Wrap a no-op: the A/B build that measures what the raw paths buy
// (docs/performance.md).
func Read(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

// Write is write(2) on a non-blocking socket.
func Write(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }

// rawConns: Wrap wraps conns only where Read and Write are raw.
const rawConns = false
