//go:build unix && (!linux || !gatehouse_rawsockio)

package sockio

import "syscall"

// Read is read(2) on a non-blocking socket, through the runtime's
// syscall bookkeeping. This is the default build, in which Wrap is a
// no-op; on Linux the build tag gatehouse_rawsockio makes Read and Write
// raw system calls (sys_linux.go), an opt-in kept with its tests because
// it lowers the CPU of a mostly idle proxy (docs/performance.md,
// "Cleverness budget").
func Read(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

// Write is write(2) on a non-blocking socket.
func Write(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }

// rawConns: Wrap wraps conns only where Read and Write are raw.
const rawConns = false
