//go:build unix && !linux

package wstunnel

import "syscall"

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket.
// (On Linux they are raw system calls; see sysio_linux.go.)
func sysRead(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

func sysWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
