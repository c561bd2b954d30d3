//go:build race

package upstream

// raceEnabled: the race detector adds allocations of its own, so the
// allocation guard does not run under it.
const raceEnabled = true
