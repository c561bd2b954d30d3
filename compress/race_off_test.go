//go:build !race

package compress

// raceEnabled: see race_on_test.go.
const raceEnabled = false
