//go:build unix

package staticfile

import "syscall"

// openFlags makes open(2) of a FIFO return at once instead of waiting for
// a writer; it changes nothing for regular files.
const openFlags = syscall.O_NONBLOCK
