//go:build linux && !gatehouse_nosockio

package sockio

import (
	"syscall"
	"unsafe"
)

// Read and Write are read(2) and write(2) on a non-blocking socket, made
// as raw system calls: without the runtime's entersyscall/exitsyscall
// bookkeeping, which exists for calls that may block and buys nothing
// here. On a mostly idle process that bookkeeping is not free: the first
// system call after the scheduler went idle wakes the runtime's monitor
// thread (sysmon) from its deep sleep, a futex wake followed by a
// millisecond of 20 µs naps. A request or WebSocket message arriving at an
// idle proxy paid that on every hop (see docs/performance.md).
func Read(fd uintptr, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Write is write(2) on a non-blocking socket; see Read.
func Write(fd uintptr, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawConns: Wrap wraps conns only where Read and Write are raw.
const rawConns = true
