// Package regularfile reads the files an operator's configuration names
// (the configuration itself, error pages, CA roots, certificates, keys,
// secrets) safely: only a regular file is accepted, under a size cap, and
// opening it never blocks, so a FIFO, a device or a file swapped for one
// cannot hang a load or a reload.
package regularfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxPEMBytes bounds a certificate chain, key or CA bundle: a chain is a
// few KiB and a system root bundle about 200 KiB. config checks the files
// it names with it, and tlsedge reads certificates and keys under it, at
// load and when it finds them changed.
const MaxPEMBytes = 4 << 20

// Rule says how a file named in the configuration may be read.
//
// Every file Gatehouse reads because the configuration names it (the
// config file itself, error pages, ACME roots, certificates and keys) must
// be a regular file: a FIFO would block the reader (and with it every later
// reload), a device such as /dev/zero would never end, and a directory or
// socket is a mistake. The file is opened non-blocking after a stat says it
// is regular, and fstat must then agree (same file, still regular), so a
// file swapped for a FIFO between the two cannot block either.
type Rule struct {
	// MaxBytes is the largest file accepted, in bytes. It must be greater
	// than zero. It is enforced on what is read, not only on the size
	// stat reports (files under /proc report 0).
	MaxBytes int64
	// NoSymlink refuses a path whose last element is a symbolic link
	// (O_NOFOLLOW). Directories on the way may still be links. False
	// follows links to a regular file, as certbot's live/ directory needs.
	NoSymlink bool
}

// Read reads the file at path under rule r. Errors name the path;
// callers add the config key.
func Read(path string, r Rule) ([]byte, error) {
	f, _, err := openRegular(path, r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one byte past the cap to tell "at the cap" from "over it": the
	// size stat reported is only a hint.
	b, err := io.ReadAll(io.LimitReader(f, r.MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > r.MaxBytes {
		return nil, tooLarge(path, r.MaxBytes)
	}
	return b, nil
}

// Check applies rule r to the file at path without reading it: for
// files another package reads (certificates and keys, which tlsedge loads
// by path), so that a FIFO or device is refused before that read.
func Check(path string, r Rule) error {
	f, _, err := openRegular(path, r)
	if err != nil {
		return err
	}
	return f.Close()
}

// openRegular opens path for reading if it is a regular file of at most
// r.MaxBytes (by stat), never blocking on the open.
func openRegular(path string, r Rule) (*os.File, fs.FileInfo, error) {
	if r.MaxBytes <= 0 {
		return nil, nil, fmt.Errorf("%s: no size limit given", path)
	}
	stat := os.Stat
	if r.NoSymlink {
		stat = os.Lstat
	}
	before, err := stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := regular(path, before); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, openFlags(r.NoSymlink), 0)
	if err != nil {
		if r.NoSymlink && isLoop(err) {
			return nil, nil, regular(path, fileMode(fs.ModeSymlink))
		}
		return nil, nil, err
	}
	after, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := regular(path, after); err != nil {
		f.Close()
		return nil, nil, err
	}
	if !os.SameFile(before, after) {
		f.Close()
		return nil, nil, fmt.Errorf("%s changed while it was being opened", path)
	}
	if after.Size() > r.MaxBytes {
		f.Close()
		return nil, nil, tooLarge(path, r.MaxBytes)
	}
	return f, after, nil
}

// regular refuses everything but a regular file, saying what it is.
func regular(path string, fi interface{ Mode() fs.FileMode }) error {
	m := fi.Mode()
	var what string
	switch {
	case m.IsRegular():
		return nil
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	default:
		what = "not a plain file"
	}
	return fmt.Errorf("%s is %s, not a regular file", path, what)
}

type fileMode fs.FileMode

func (m fileMode) Mode() fs.FileMode { return fs.FileMode(m) }

func tooLarge(path string, max int64) error {
	return fmt.Errorf("%s is larger than the limit of %s", path, formatSize(max))
}

// formatSize writes n bytes for a message: "2 MiB", "64 KiB", "10 bytes".
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
