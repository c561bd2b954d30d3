//go:build !race

package wstunnel

const raceEnabled = false
