package compress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Maximum levels for precompression, where a file is compressed once at
// deploy time and served many times: CPU does not matter, bytes do.
const (
	precompressGzipLevel   = gzip.BestCompression      // 9
	precompressZstdLevel   = zstd.SpeedBestCompression // about zstd -11
	precompressZstdWindow  = 8 << 20                   // the most an HTTP client must accept (RFC 9659)
	precompressBrotliLevel = brotli.BestCompression    // 11
	precompressBrotliLGWin = 22                        // 4 MiB, the brotli tool's historic default
)

// DefaultPrecompressExtensions returns the file suffixes PrecompressDir
// compresses when PrecompressOptions.Extensions is empty: what Django's
// collectstatic writes that is text (a new slice each call).
func DefaultPrecompressExtensions() []string {
	return []string{
		".html", ".htm", ".css", ".js", ".mjs", ".cjs", ".map", ".json", ".webmanifest",
		".xml", ".svg", ".txt", ".csv", ".md", ".ics", ".rss", ".atom", ".yaml", ".yml",
		".wasm", ".ttf", ".otf", ".eot", ".ico",
	}
}

// PrecompressOptions configure [PrecompressDir].
type PrecompressOptions struct {
	// Encodings are the siblings written. Default (empty): zstd, br and
	// gzip.
	Encodings []Encoding
	// Extensions are the file-name suffixes compressed, matched
	// case-insensitively. Default (empty): DefaultPrecompressExtensions().
	Extensions []string
	// MinLength is the smallest file, in bytes, that gets siblings.
	// Default (0): DefaultMinLength; negative: every non-empty file.
	MinLength int64
}

// PrecompressStats count what [PrecompressDir] did.
type PrecompressStats struct {
	Files      int   // files with a compressible suffix and at least MinLength bytes
	Small      int   // files with a compressible suffix below MinLength
	Written    int   // siblings written
	UpToDate   int   // siblings left alone: not older than their file
	NotSmall   int   // siblings not written: not smaller than the file
	Skipped    int   // symbolic links that lead out of the directory, or to no regular file
	BytesIn    int64 // bytes of the files whose siblings were written, once per sibling
	BytesOut   int64 // bytes of the siblings written
	ErrorsSeen int   // files that failed (their errors are in the returned error)
}

// PrecompressDir writes compressed siblings (name.zst, name.br, name.gz)
// next to every compressible file under dir, at the maximum levels, for
// a static file route to serve: Django's collectstatic output at deploy
// time (`gatehouse compress DIR`).
//
//   - A sibling that is not older than its file is left alone, so a
//     second run does little; a written sibling gets its file's
//     modification time, so a file that changes gets new siblings.
//   - Siblings are written to a temporary file in the same directory and
//     renamed over the old one: a server reading the directory sees the
//     old sibling or the new, never half of one.
//   - A sibling that would not be smaller than its file is not written.
//   - Every path is opened through an os.Root of dir: a symbolic link is
//     followed only when it leads to a regular file inside dir (the
//     sibling is written beside the link); one that leads out is skipped
//     and counted. Linked directories are not descended.
//
// It goes on after a failure with one file and returns every error at
// the end, each naming its file. ctx stops it between files.
func PrecompressDir(ctx context.Context, dir string, o PrecompressOptions) (PrecompressStats, error) {
	var st PrecompressStats
	encs := o.Encodings
	if len(encs) == 0 {
		encs = []Encoding{Zstd, Brotli, Gzip}
	}
	for _, e := range encs {
		if e == Identity || e >= numEncodings {
			return st, fmt.Errorf("precompress: encoding %v cannot be written", e)
		}
	}
	exts := o.Extensions
	if len(exts) == 0 {
		exts = DefaultPrecompressExtensions()
	}
	minLen := o.MinLength
	if minLen == 0 {
		minLen = DefaultMinLength
	}
	minLen = max(minLen, 1)

	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, fmt.Errorf("precompress: %w", err)
	}
	defer root.Close()

	var errs []error
	var maxEncs maxEncoders
	walkErr := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			st.ErrorsSeen++
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || !hasSuffixFold(p, exts) {
			return nil
		}
		info, err := root.Stat(p) // follows a link, inside root only
		if d.Type()&fs.ModeSymlink != 0 && (err != nil || !info.Mode().IsRegular()) {
			st.Skipped++
			return nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			st.ErrorsSeen++
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if info.Size() < minLen {
			st.Small++
			return nil
		}
		st.Files++
		for _, e := range encs {
			if err := precompressOne(root, p, info, e, &maxEncs, &st); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p+e.Ext(), err))
				st.ErrorsSeen++
			}
		}
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("precompress %s: %w", dir, errors.Join(errs...))
	}
	return st, nil
}

func hasSuffixFold(name string, exts []string) bool {
	for _, x := range exts {
		if len(name) > len(x) && strings.EqualFold(name[len(name)-len(x):], x) {
			return true
		}
	}
	return false
}

// precompressOne writes the e sibling of the file p unless it is up to
// date.
func precompressOne(root *os.Root, p string, info fs.FileInfo, e Encoding, encs *maxEncoders, st *PrecompressStats) error {
	sib := p + e.Ext()
	if si, err := root.Lstat(sib); err == nil {
		if !si.Mode().IsRegular() {
			return errors.New("exists and is not a regular file; not replaced")
		}
		if !si.ModTime().Before(info.ModTime()) {
			st.UpToDate++
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	src, err := root.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), "."+path.Base(sib)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm()&0o666)
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			_ = root.Remove(tmp)
		}
	}()
	cw := &countWriter{}
	err = encs.encodeMax(io.MultiWriter(f, cw), src, e)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if int64(cw.n) >= info.Size() {
		st.NotSmall++
		return nil
	}
	if err := root.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
		return err
	}
	if err := root.Rename(tmp, sib); err != nil {
		return err
	}
	keep = true
	st.Written++
	st.BytesIn += info.Size()
	st.BytesOut += int64(cw.n)
	return nil
}

// maxEncoders holds one encoder per coding at the precompression
// level, made on first use and reset for every file: a zstd encoder at
// its best level with an 8 MiB window costs more to build (~100 ms) than
// to compress a small file.
type maxEncoders [numEncodings]encoder

// encodeMax compresses src into dst with e at the precompression level.
func (m *maxEncoders) encodeMax(dst io.Writer, src io.Reader, e Encoding) error {
	if m[e] == nil {
		switch e {
		case Gzip:
			w, err := gzip.NewWriterLevel(dst, precompressGzipLevel)
			if err != nil {
				return err
			}
			m[e] = w
		case Zstd:
			w, err := zstd.NewWriter(dst,
				zstd.WithEncoderLevel(precompressZstdLevel),
				zstd.WithWindowSize(precompressZstdWindow),
				zstd.WithEncoderConcurrency(1))
			if err != nil {
				return err
			}
			m[e] = w
		case Brotli:
			m[e] = brotli.NewWriterOptions(dst, brotli.WriterOptions{Quality: precompressBrotliLevel, LGWin: precompressBrotliLGWin})
		default:
			return fmt.Errorf("encoding %v cannot be written", e)
		}
	}
	enc := m[e]
	enc.Reset(dst)
	defer enc.Reset(io.Discard) // keep no reference to the file
	if _, err := io.Copy(enc, src); err != nil {
		return err
	}
	return enc.Close()
}

// countWriter counts the bytes written through it.
type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
