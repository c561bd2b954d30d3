//go:build !unix

package regularfile

import "os"

// openFlags: without O_NONBLOCK and O_NOFOLLOW, the stat before the open
// and the fstat after it are the only guards.
func openFlags(noSymlink bool) int { return os.O_RDONLY }

func isLoop(err error) bool { return false }
