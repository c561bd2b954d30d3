package compress

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPrecompressDir lays out a collectstatic-like tree and checks every
// rule: siblings for compressible files above the minimum, decoding to
// the file; nothing for small, binary or incompressible files; links
// followed inside the root only; up-to-date siblings left alone; a
// changed file recompressed; no temporary files left.
func TestPrecompressDir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	css := text(20 << 10)
	js := text(100 << 10)
	random := make([]byte, 8<<10)
	rand.Read(random)
	writeFile(t, filepath.Join(root, "admin/css/base.3f2a1b9c.css"), css)
	writeFile(t, filepath.Join(root, "admin/js/app.JS"), js) // suffix case ignored
	writeFile(t, filepath.Join(root, "small.txt"), text(100))
	writeFile(t, filepath.Join(root, "img/logo.png"), text(20<<10)) // not a compressible suffix
	writeFile(t, filepath.Join(root, "random.js"), random)          // does not compress
	writeFile(t, filepath.Join(outside, "secret.css"), text(20<<10))
	if err := os.Symlink("admin/css/base.3f2a1b9c.css", filepath.Join(root, "base.css")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.css"), filepath.Join(root, "escape.css")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../"+filepath.Base(outside)+"/secret.css", filepath.Join(root, "escape2.css")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "linkeddir")); err != nil {
		t.Fatal(err)
	}

	st, err := PrecompressDir(context.Background(), root, PrecompressOptions{})
	if err != nil {
		t.Fatalf("PrecompressDir: %v", err)
	}
	// base.3f2a1b9c.css, app.JS, random.js and the base.css link qualify.
	if st.Files != 4 || st.Small != 1 || st.Skipped != 2 || st.NotSmall != 3 || st.Written != 9 || st.ErrorsSeen != 0 {
		t.Errorf("stats %+v; want 4 files, 1 small, 2 skipped links, 3 not smaller, 9 written", st)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"admin/css/base.3f2a1b9c.css", css}, {"admin/js/app.JS", js}, {"base.css", css}} {
		info, _ := os.Stat(filepath.Join(root, f.name))
		for _, e := range []Encoding{Zstd, Brotli, Gzip} {
			sib := filepath.Join(root, f.name+e.Ext())
			b, err := os.ReadFile(sib)
			if err != nil {
				t.Errorf("%s: %v", f.name+e.Ext(), err)
				continue
			}
			if got := decode(t, e.String(), b); !bytes.Equal(got, f.data) {
				t.Errorf("%s decodes to %d bytes, want the file's %d", f.name+e.Ext(), len(got), len(f.data))
			}
			si, _ := os.Lstat(sib)
			if !si.ModTime().Equal(info.ModTime()) || !si.Mode().IsRegular() {
				t.Errorf("%s: mtime %v (file %v), mode %v; want the file's mtime, a regular file", sib, si.ModTime(), info.ModTime(), si.Mode())
			}
		}
	}
	for _, name := range []string{"small.txt", "img/logo.png", "random.js", "escape.css", "escape2.css"} {
		for _, e := range []Encoding{Zstd, Brotli, Gzip} {
			if _, err := os.Lstat(filepath.Join(root, name+e.Ext())); err == nil {
				t.Errorf("%s written, want none", name+e.Ext())
			}
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside directory has %d entries, want only secret.css: something was written through a link", len(ents))
	}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(filepath.Base(p), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})

	// Second run: everything is up to date.
	st, err = PrecompressDir(context.Background(), root, PrecompressOptions{})
	if err != nil || st.Written != 0 || st.UpToDate != 9 {
		t.Errorf("second run: %+v, %v; want 0 written, 9 up to date", st, err)
	}

	// A changed file (newer than its siblings) is recompressed.
	css2 := text(30 << 10)
	p := filepath.Join(root, "admin/css/base.3f2a1b9c.css")
	writeFile(t, p, css2)
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	st, err = PrecompressDir(context.Background(), root, PrecompressOptions{Encodings: []Encoding{Gzip}})
	if err != nil || st.Written != 2 { // the file and the link to it
		t.Errorf("after a change: %+v, %v; want 2 written", st, err)
	}
	b, _ := os.ReadFile(p + ".gz")
	if got := decode(t, "gzip", b); !bytes.Equal(got, css2) {
		t.Errorf("recompressed sibling decodes to %d bytes, want %d", len(got), len(css2))
	}
}

// TestPrecompressDirErrors: a sibling path that is not a regular file is
// an error naming it, and the other files are still done.
func TestPrecompressDirErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.css"), text(4<<10))
	writeFile(t, filepath.Join(root, "b.css"), text(4<<10))
	if err := os.Mkdir(filepath.Join(root, "a.css.gz"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := PrecompressDir(context.Background(), root, PrecompressOptions{Encodings: []Encoding{Gzip}})
	if err == nil || !strings.Contains(err.Error(), "a.css.gz: exists and is not a regular file") {
		t.Errorf("error %v; want one naming a.css.gz", err)
	}
	if st.Written != 1 || st.ErrorsSeen != 1 {
		t.Errorf("stats %+v; want b.css.gz written and 1 error", st)
	}
	if _, err := PrecompressDir(context.Background(), filepath.Join(root, "missing"), PrecompressOptions{}); err == nil {
		t.Error("missing directory: no error")
	}
	if _, err := PrecompressDir(context.Background(), root, PrecompressOptions{Encodings: []Encoding{Identity}}); err == nil {
		t.Error("identity encoding: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := PrecompressDir(ctx, root, PrecompressOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}
