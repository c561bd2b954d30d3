package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/gatehouse-proxy/gatehouse/config"
)

// runCompress runs `gatehouse compress args...` through run.
func runCompress(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"compress"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// textOf is n bytes of compressible text.
func textOf(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, ".item-%d { color: #%06x; margin: %dpx; }\n", i, i*997, i%13)
	}
	return b.Bytes()[:n]
}

// unsibling decodes the sibling file p (its coding from its suffix).
func unsibling(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("sibling %s: %v", p, err)
	}
	defer f.Close()
	var r io.Reader
	switch filepath.Ext(p) {
	case ".gz":
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	case ".br":
		r = brotli.NewReader(f)
	case ".zst":
		d, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", p, err)
	}
	return b
}

// TestCompressCommand (issue 14.3): `gatehouse compress DIR` writes .br,
// .zst and .gz beside the text files of at least 1 KiB, which decode to
// the file; leaves images, short files and up-to-date siblings alone;
// says what it did; -types and -min-length choose the files; an error
// names its file and the others are still done; -h documents the flags.
func TestCompressCommand(t *testing.T) {
	dir := t.TempDir()
	css, svg, js := textOf(8<<10), textOf(3<<10), textOf(200)
	for name, b := range map[string][]byte{
		"app.3f2a1b9c4d5e.css": css,
		"img/logo.svg":         svg,
		"small.js":             js,
		"img/photo.png":        textOf(4 << 10), // never: not a text suffix
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCompress(t, dir)
	if code != 0 || errOut != "" {
		t.Fatalf("compress: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "2 file(s) to compress: 6 sibling(s) written") || !strings.Contains(out, "1 file(s) below 1.0 KiB left alone") {
		t.Errorf("summary: %q", out)
	}
	for name, want := range map[string][]byte{"app.3f2a1b9c4d5e.css": css, "img/logo.svg": svg} {
		for _, ext := range []string{".br", ".zst", ".gz"} {
			if got := unsibling(t, filepath.Join(dir, name+ext)); !bytes.Equal(got, want) {
				t.Errorf("%s%s decodes to %d bytes, want the file's %d", name, ext, len(got), len(want))
			}
		}
	}
	for _, name := range []string{"small.js.gz", "img/photo.png.gz", "img/photo.png.br"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s was written", name)
		}
	}
	// A second run has nothing to do.
	if code, out, _ := runCompress(t, dir); code != 0 || !strings.Contains(out, "0 sibling(s) written (0 B -> 0 B), 6 up to date") {
		t.Errorf("second run: exit %d, %q", code, out)
	}

	// -types and -min-length (flags after DIR too).
	if code, out, errOut := runCompress(t, "-types", "js", dir, "-min-length", "100"); code != 0 || !strings.Contains(out, "1 file(s) to compress: 3 sibling(s) written") {
		t.Errorf("-types js -min-length 100: exit %d, %q %s", code, out, errOut)
	}
	if got := unsibling(t, filepath.Join(dir, "small.js.br")); !bytes.Equal(got, js) {
		t.Errorf("small.js.br decodes to %d bytes", len(got))
	}

	// An error names the file; the others are done.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "a.css"), css, 0o644)
	os.WriteFile(filepath.Join(bad, "b.css"), css, 0o644)
	os.Mkdir(filepath.Join(bad, "a.css.gz"), 0o755) // in the way
	code, out, errOut = runCompress(t, bad)
	if code != 1 || !strings.Contains(errOut, "a.css.gz: exists and is not a regular file") || !strings.Contains(out, "5 sibling(s) written") {
		t.Errorf("a sibling in the way: exit %d, stdout %q, stderr %q; want 1, the file named, the rest written", code, out, errOut)
	}
	if code, _, errOut := runCompress(t, filepath.Join(bad, "missing")); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("a missing directory: exit %d, %q", code, errOut)
	}

	// Usage.
	if code, _, errOut := runCompress(t, "-h"); code != 0 || !strings.Contains(errOut, "Usage: gatehouse compress") ||
		!strings.Contains(errOut, "-types") || !strings.Contains(errOut, "-min-length") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{}, {dir, dir}, {"-min-length", "1 lot", dir}, {"-types", "a/b", dir}} {
		if code, _, errOut := runCompress(t, args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, %q; want 2 and a message", args, code, errOut)
		}
	}
}

// TestRestartOnlyMaxEncoders: the encoder cap is made once, at start; a
// reload that changes it says it takes effect at the next restart.
func TestRestartOnlyMaxEncoders(t *testing.T) {
	parse := func(extra string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte(extra + `
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
[listeners.https]
address = ""
`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := parse(""), parse("[compression]\nmax_encoders = 64\ngzip_level = 6\n")
	if keys := restartOnly(a, b); len(keys) != 1 || keys[0] != "compression.max_encoders" {
		t.Errorf("restartOnly = %q, want [compression.max_encoders] (the levels apply on reload)", keys)
	}
}
