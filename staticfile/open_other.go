//go:build !unix

package staticfile

// openFlags: no FIFOs to guard against outside Unix.
const openFlags = 0
