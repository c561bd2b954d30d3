//go:build !linux

package compress

import "time"

// threadCPU falls back to wall time where no thread CPU clock is read.
func threadCPU() (now func() time.Duration, unlock func()) {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }, func() {}
}
