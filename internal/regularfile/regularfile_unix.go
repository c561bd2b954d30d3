//go:build unix

package regularfile

import (
	"errors"
	"os"
	"syscall"
)

// openFlags opens for reading without ever blocking (a FIFO that slipped
// past the stat opens at once and is then refused by fstat), without
// acquiring a controlling terminal, and, for noSymlink, refusing a link in
// the last path element.
func openFlags(noSymlink bool) int {
	fl := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY | syscall.O_CLOEXEC
	if noSymlink {
		fl |= syscall.O_NOFOLLOW
	}
	return fl
}

// isLoop reports the error O_NOFOLLOW gives for a symbolic link.
func isLoop(err error) bool { return errors.Is(err, syscall.ELOOP) }
