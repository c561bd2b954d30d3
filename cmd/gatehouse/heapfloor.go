package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor lets the heap grow to a floor before the garbage collector
// runs ([runtime] min_heap). Go's pacer collects when the heap reaches
// about twice what was live after the last cycle, with a 4 MiB minimum. A
// proxy's live heap is small (about 1 MiB with no WebSockets open) while
// it allocates fast (tens of KiB per new TLS connection), so with Go's
// default it collected 60 times a second under the new-connection
// benchmark and spent 3 to 4 % of its CPU on it. After every cycle
// heapFloor sets GOGC so that the next goal is the floor; once twice the
// live heap is above the floor it leaves Go's default (100) alone, so a
// large heap grows exactly as it would without it.
//
// It runs on the runtime's cleanup goroutine, re-armed once per GC
// cycle: it costs nothing while the process is idle.
type heapFloor struct {
	mu      sync.Mutex
	floor   uint64 // 0: stopped
	armed   bool
	samples []metrics.Sample
}

// minGCPercent is Go's default GOGC, the least heapFloor sets.
const minGCPercent = 100

func newHeapFloor() *heapFloor {
	return &heapFloor{samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
}

// set changes the floor; 0 stops the tuning and gives GOGC back to Go's
// default.
func (h *heapFloor) set(floor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.floor = floor
	if floor == 0 {
		debug.SetGCPercent(minGCPercent)
		return
	}
	h.tuneLocked()
	if !h.armed {
		h.armed = true
		h.arm()
	}
}

// gcSentinel is allocated once per GC cycle; its cleanup runs after the
// cycle that found it unreachable. The pointer field keeps it out of the
// tiny allocator, whose shared blocks would delay the cleanup.
type gcSentinel struct {
	_ *byte
	_ [8]byte
}

func (h *heapFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), (*heapFloor).afterGC, h)
}

func (h *heapFloor) afterGC() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.floor == 0 {
		h.armed = false
		return
	}
	h.tuneLocked()
	h.arm()
}

// tuneLocked sets GOGC from the last cycle's figures.
func (h *heapFloor) tuneLocked() {
	metrics.Read(h.samples)
	live := h.samples[0].Value.Uint64()
	scan := live + h.samples[1].Value.Uint64() + h.samples[2].Value.Uint64()
	debug.SetGCPercent(gcPercentFor(h.floor, live, scan))
}

// goHeapMinimum is the runtime's minimum heap goal at GOGC=100; it scales
// with GOGC.
const goHeapMinimum = 4 << 20

// gcPercentFor is the GOGC that puts the next heap goal at floor, and at
// least minGCPercent. The pacer's goal is the larger of
// live + scan × GOGC/100 (scan: the live heap plus stacks and globals) and
// goHeapMinimum × GOGC/100, so GOGC = floor/goHeapMinimum × 100 makes the
// floor the goal while the first term stays under it; as the live heap
// grows GOGC comes down to keep the first term at the floor, and to 100
// once twice the live heap is past it.
func gcPercentFor(floor, live, scan uint64) int {
	const minScan = 256 << 10 // before the first cycle the figures are zero
	scan = max(scan, minScan)
	if floor <= live {
		return minGCPercent
	}
	p := min(float64(floor-live)*100/float64(scan), float64(floor)*100/goHeapMinimum)
	return int(min(max(p, minGCPercent), 1e6))
}
