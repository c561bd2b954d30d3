//go:build !race

package hostname

const raceEnabled = false
