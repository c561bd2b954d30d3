// Package statefile writes the files Gatehouse keeps for itself under its
// state directory (the self-signed pair, OCSP staples) so that a reader,
// or Gatehouse after a crash, finds either the old content or the new
// one, never a part: the bytes go to a temporary file in the same
// directory (mode 0600, created exclusively), are synced, and the
// temporary file is renamed over the old one; then the directory is synced
// so that the rename itself survives a power loss. (The ban list is
// written the same way by a copy in package ratelimit, which imports no
// project package.)
package statefile

import (
	"os"
	"path/filepath"
)

// Write replaces the file at path with b, atomically as described in the
// package documentation. The file has mode 0600 whatever the old one had.
// On an error the old file is left as it was and no temporary file stays.
func Write(path string, b []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*") // mode 0600, O_EXCL
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some file systems cannot sync a directory
		d.Close()
	}
	return nil
}
