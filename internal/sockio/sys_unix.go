//go:build unix && !linux

package sockio

import "syscall"

// Read is read(2) on a non-blocking socket. (On Linux it is a raw system
// call; see sys_linux.go.)
func Read(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

// Write is write(2) on a non-blocking socket.
func Write(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
