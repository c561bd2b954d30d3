//go:build linux

package compress

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns a clock of the CPU time used by the calling goroutine's
// thread, and an unlock to call when done: benchmarks on a shared 2-core
// machine report CPU per KiB, which other processes do not inflate the way
// they inflate wall time.
func threadCPU() (now func() time.Duration, unlock func()) {
	runtime.LockOSThread()
	return func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			panic(err)
		}
		return time.Duration(ts.Nano())
	}, runtime.UnlockOSThread
}
