package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
)

// cmdCompress writes the precompressed siblings (name.br, name.zst,
// name.gz) of every text file under a directory, at the maximum levels,
// for a file route to serve without compressing per request: Django's
// collectstatic output, at deploy time. It prints what it did; errors name
// their file, and the other files are still done.
func cmdCompress(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	types := fs.String("types", "", "comma-separated file suffixes to compress, such as css,js,svg (default: "+
		strings.Join(compress.DefaultPrecompressExtensions(), ",")+")")
	minLength := fs.String("min-length", "1k", "smallest file compressed: bytes, or with a unit (512, 4k, 1MiB); 0: every non-empty file")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gatehouse compress [-types LIST] [-min-length SIZE] DIR

Writes name.br, name.zst and name.gz beside every text file under DIR (CSS,
JavaScript, source maps, JSON, SVG, HTML, fonts, ...), at the maximum levels,
for a file route to serve to the browsers that accept them. Run it after
"manage.py collectstatic". Siblings not older than their file are left alone,
so a second run only does what changed; a sibling that would not be smaller
is not written; symbolic links are followed only inside DIR.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	// Flags may also follow DIR.
	var dir string
	if fs.NArg() > 0 {
		dir = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return flagExit(err)
		}
	}
	if dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "gatehouse compress: want one directory")
		fs.Usage()
		return 2
	}
	o := compress.PrecompressOptions{}
	n, err := config.ParseSize(*minLength)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse compress: -min-length: %v\n", err)
		return 2
	}
	o.MinLength = n
	if n == 0 {
		o.MinLength = -1 // every non-empty file
	}
	if *types != "" {
		for _, t := range strings.Split(*types, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !strings.HasPrefix(t, ".") {
				t = "." + t
			}
			if len(t) < 2 || strings.ContainsAny(t, "/\\ ") {
				fmt.Fprintf(stderr, "gatehouse compress: -types: %q is not a file suffix (write css,js,svg)\n", t)
				return 2
			}
			o.Extensions = append(o.Extensions, t)
		}
		if len(o.Extensions) == 0 {
			fmt.Fprintln(stderr, "gatehouse compress: -types: no suffix given")
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := compress.PrecompressDir(ctx, dir, o)
	// PrecompressDir's error is "precompress DIR: " and one error per
	// file, each naming the file (relative to DIR); or, when DIR could
	// not be read at all, that error alone.
	perFile, walked := errors.Unwrap(err).(interface{ Unwrap() []error })
	if err != nil && !walked {
		fmt.Fprintf(stderr, "gatehouse compress: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d file(s) to compress: %d sibling(s) written (%s -> %s), %d up to date, %d not smaller than their file; %d file(s) below %s left alone",
		dir, st.Files, st.Written, humanSize(st.BytesIn), humanSize(st.BytesOut), st.UpToDate, st.NotSmall, st.Small, humanSize(max(n, 1)))
	if st.Skipped > 0 {
		fmt.Fprintf(stdout, ", %d symbolic link(s) leading out of the directory skipped", st.Skipped)
	}
	fmt.Fprintln(stdout)
	if err != nil {
		for _, e := range perFile.Unwrap() {
			fmt.Fprintf(stderr, "gatehouse compress: %s: %v\n", dir, e)
		}
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "gatehouse compress: interrupted; run it again to finish")
		}
		return 1
	}
	return 0
}

// humanSize writes n bytes for a person: "512 B", "3.2 KiB", "1.5 MiB".
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
