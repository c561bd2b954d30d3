package config

import "github.com/gatehouse-proxy/gatehouse/internal/regularfile"

// FileRule says how a file named in the configuration may be read: only
// a regular file, of at most MaxBytes, and (NoSymlink) not through a link
// in its last element. See internal/regularfile, which does the reading.
type FileRule = regularfile.Rule

// ReadFile reads the file at path under rule r, refusing anything but a
// regular file (a FIFO, a device) without blocking on it. Errors name the
// path; callers add the config key.
func ReadFile(path string, r FileRule) ([]byte, error) { return regularfile.Read(path, r) }

// CheckFile applies rule r to the file at path without reading it: for
// files another package reads (certificates and keys, which tlsedge loads
// by path), so that a FIFO or device is refused before that read.
func CheckFile(path string, r FileRule) error { return regularfile.Check(path, r) }
