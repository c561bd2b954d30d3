//go:build !race

package reqpath

const raceEnabled = false
