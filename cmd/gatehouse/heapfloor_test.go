package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		floor, live, scan uint64
		want              int
	}{
		{32 * mib, 1 * mib, 1 * mib, 800},   // the runtime's 4 MiB minimum × 8 is the floor
		{32 * mib, 0, 0, 800},               // before the first cycle
		{32 * mib, 10 * mib, 10 * mib, 220}, // goal = 10 + 10×2.2 = 32 MiB
		{32 * mib, 10 * mib, 11 * mib, 200}, // stacks and globals count
		{32 * mib, 20 * mib, 20 * mib, 100}, // twice live is above the floor: Go's default
		{32 * mib, 40 * mib, 40 * mib, 100}, // live above the floor
		{32 * mib, 15 * mib, 17 * mib, 100}, // 100 already reaches it
		{1 << 62, 1, 1, 1_000_000},          // clamped
	} {
		if got := gcPercentFor(tc.floor, tc.live, tc.scan); got != tc.want {
			t.Errorf("gcPercentFor(%d, %d, %d) = %d, want %d", tc.floor, tc.live, tc.scan, got, tc.want)
		}
	}
}

// TestHeapFloor runs the tuner against the real runtime: after a GC cycle
// the heap goal sits at the floor; stopping gives GOGC back to 100.
func TestHeapFloor(t *testing.T) {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}}
	read := func() (percent, goal uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}
	const floor = 256 << 20 // far above anything this test binary keeps live
	h := newHeapFloor()
	t.Cleanup(func() { h.set(0) })
	h.set(floor)
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC() // the cleanup re-tunes after each cycle
		p, goal := read()
		if p > 100 && goal >= floor*9/10 && goal <= floor*11/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after GC: GOGC %d, heap goal %d MiB; want > 100 and about %d MiB", p, goal>>20, floor>>20)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.set(0)
	if p, _ := read(); p != 100 {
		t.Fatalf("after stop: GOGC %d, want 100", p)
	}
	// Stopped stays stopped: the pending cleanup must not tune again.
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	if p, _ := read(); p != 100 {
		t.Fatalf("a cycle after stop: GOGC %d, want 100", p)
	}
}
