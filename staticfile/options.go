package staticfile

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/coding"
)

// Defaults of the Options fields, exported so that config can apply and
// document the same values.
const (
	// DefaultImmutableCacheControl is sent for files whose name carries a
	// content hash: the name changes whenever the content does, so a
	// browser may keep the file for a year without asking again.
	DefaultImmutableCacheControl = "public, max-age=31536000, immutable"
	// DefaultCacheControl is sent for other files: a minute (whitenoise's
	// choice), so that a deploy that replaces app.css in place is seen
	// within a minute, while a page's burst of requests is served from
	// the browser's cache. After it a browser revalidates (304).
	DefaultCacheControl = "public, max-age=60"
	// DefaultInternalCacheControl is sent for files of an internal route
	// (X-Accel-Redirect targets: protected downloads) when the backend
	// sets no Cache-Control: no shared cache may keep them, and the
	// browser asks the backend (which checks permission again) each time.
	DefaultInternalCacheControl = "private, no-cache"
	// DefaultCacheEntries bounds the open-file cache (nginx's usual
	// open_file_cache max=1000): a Django site's static directory holds a
	// few hundred files.
	DefaultCacheEntries = 1000
	// DefaultCacheValid is how long a cached file's metadata is trusted
	// before it is checked with stat again (nginx open_file_cache_valid
	// is 60 s; a second keeps a deploy visible at once for the price of
	// one stat per hot file per second).
	DefaultCacheValid = time.Second
	// DefaultCacheInactive is how long an unused cache entry keeps its
	// descriptors (nginx open_file_cache inactive=60s).
	DefaultCacheInactive = time.Minute
	// DefaultMemoryBytes bounds the small files the cache keeps in
	// memory: 16 MiB holds a typical Django site's CSS, JS and icons with
	// their .br and .gz siblings several times over.
	DefaultMemoryBytes = 16 << 20
)

// SmallFileBytes is the largest file the open-file cache keeps in memory
// (within Options.MemoryBytes). Up to this size one write(2) of bytes
// already in memory costs less than what sendfile needs around it
// (http.ServeContent's two lseek(2)s, a read(2) of the first 512 bytes,
// then sendfile(2)).
const SmallFileBytes = 32 << 10

// Options configures a [Server]. Only Root is required; the zero value of
// every other field selects the documented default.
type Options struct {
	// Root is the directory files are served from (nginx root/alias):
	// a request name is resolved relative to it. Required. New opens it
	// once with [os.OpenRoot]; renaming or replacing the directory
	// itself afterwards is not seen (build a new Server).
	Root string

	// Index lists the file names tried, in order, for a request that
	// names a directory (nginx index). Each is a plain name: no slash,
	// no leading dot. Nil or empty: no index, and a directory is 404.
	Index []string

	// CacheControl is the Cache-Control value for files whose name
	// carries no content hash. Empty: DefaultCacheControl, or
	// DefaultInternalCacheControl when Internal is set. Gatehouse always
	// sends Cache-Control on a file: without one, browsers guess a
	// lifetime from Last-Modified (RFC 9111 §4.2.2).
	CacheControl string

	// ImmutableCacheControl is the Cache-Control value for files whose
	// name carries a content hash (see [IsHashed]). Empty:
	// DefaultImmutableCacheControl. Ignored when IgnoreHashes or
	// Internal is set.
	ImmutableCacheControl string

	// IgnoreHashes turns off hashed-name detection: every file gets
	// CacheControl. Use it for user uploads (media), whose names are
	// not content hashes even when they look like one. Default false.
	IgnoreHashes bool

	// Precompressed lists the content codings whose precompressed
	// siblings are looked for, in the server's order of preference when
	// the client accepts several equally: "br" (name.br), "zstd"
	// (name.zst), "gzip" (name.gz). Nil: br, zstd, gzip. An empty,
	// non-nil slice: none.
	Precompressed []string

	// AllowDotFiles lets names with a segment starting with "." be
	// served (.well-known/...). Default false: such names are 404, since
	// a directory deployed with rsync or git may hold .git, .env or
	// .htpasswd. "." and ".." segments are refused regardless.
	AllowDotFiles bool

	// Internal marks the files as reachable only through
	// [Server.ServeRedirect] (nginx internal): [Server.Serve] and
	// ServeHTTP answer 404. It also turns hashed-name detection off and
	// makes DefaultInternalCacheControl the default.
	Internal bool

	// ErrorPage writes the response when the server answers with an
	// error status itself: 404 (missing or refused), 405 (a method other
	// than GET or HEAD; Allow is already set), 500 (the file could not be
	// opened for a reason other than its absence) and 503 (the Server is
	// closed). The proxy renders its site error page here, or hands a 404
	// to an upstream (nginx try_files ... @backend). Nil: a short
	// text/plain body from [http.Error].
	ErrorPage func(w http.ResponseWriter, r *http.Request, status int)

	// CacheEntries bounds the open-file cache, in names (each holds the
	// file's metadata and, per file and precompressed sibling, either its
	// content (see MemoryBytes) or up to two idle descriptors).
	// Zero: DefaultCacheEntries. Negative: no cache; every request opens
	// and closes its file.
	CacheEntries int

	// CacheValid is how long a cached file's size, modification time and
	// identity are trusted before they are checked with stat (nginx
	// open_file_cache_valid). Zero: DefaultCacheValid. Negative: checked
	// on every request (the descriptors are still reused).
	CacheValid time.Duration

	// CacheInactive is how long an entry may go unused before it is
	// dropped and its descriptors closed (nginx open_file_cache
	// inactive). Entries are swept whenever the cache is used. Zero or
	// negative: DefaultCacheInactive.
	CacheInactive time.Duration

	// MemoryBytes bounds the total size of the small files (up to
	// SmallFileBytes each, precompressed siblings included) that the
	// open-file cache keeps in memory instead of as open descriptors;
	// they are sent without touching the file system. Files beyond the
	// budget are served through descriptors. Zero: DefaultMemoryBytes.
	// Negative: none. Ignored without a cache.
	MemoryBytes int64

	// Logger receives the reasons for 404s (Debug), unreadable files
	// (Warn) and I/O errors (Error). Nil: nothing is logged.
	Logger *slog.Logger

	// Now is the clock of the open-file cache. Nil: the monotonic clock
	// (one clock read per lookup where time.Now makes two).
	Now func() time.Time
}

// encoding is a content coding whose precompressed sibling may be served.
type encoding struct {
	coding coding.Coding
	token  string   // Content-Encoding token
	ext    string   // sibling suffix
	hdr    []string // Content-Encoding header value, shared, never mutated
}

// maxEncodings is the number of codings Options.Precompressed may name.
const maxEncodings = 3

func knownEncoding(token string) (encoding, bool) {
	c, ok := coding.Parse(token)
	if !ok || c == coding.Identity || token != c.String() {
		return encoding{}, false // only the canonical tokens br, zstd, gzip
	}
	return encoding{coding: c, token: c.String(), ext: c.Ext()}, true
}

// resolve checks o and returns it with defaults applied, plus the
// encodings to look for.
func (o Options) resolve() (Options, []encoding, error) {
	var errs []error
	if o.Root == "" {
		errs = append(errs, errors.New("staticfile: root: required"))
	}
	for i, name := range o.Index {
		if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\\\x00") {
			errs = append(errs, fmt.Errorf("staticfile: index[%d]: %q is not a plain file name (no slash, no leading dot)", i, name))
		}
	}
	enc := o.Precompressed
	if enc == nil {
		enc = []string{"br", "zstd", "gzip"}
	}
	var encs []encoding
	for i, token := range enc {
		e, ok := knownEncoding(token)
		if !ok {
			errs = append(errs, fmt.Errorf("staticfile: precompressed[%d]: unknown coding %q (want br, zstd or gzip)", i, token))
			continue
		}
		for _, have := range encs {
			if have.token == e.token {
				errs = append(errs, fmt.Errorf("staticfile: precompressed[%d]: %q listed twice", i, token))
			}
		}
		e.hdr = []string{e.token}
		encs = append(encs, e)
	}
	if len(encs) > maxEncodings {
		encs = encs[:maxEncodings] // only reachable with duplicates, already an error
	}
	if err := errors.Join(errs...); err != nil {
		return o, nil, err
	}
	if o.Internal {
		o.IgnoreHashes = true
		if o.CacheControl == "" {
			o.CacheControl = DefaultInternalCacheControl
		}
	}
	if o.CacheControl == "" {
		o.CacheControl = DefaultCacheControl
	}
	if o.ImmutableCacheControl == "" {
		o.ImmutableCacheControl = DefaultImmutableCacheControl
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.CacheValid == 0 {
		o.CacheValid = DefaultCacheValid
	}
	if o.CacheValid < 0 {
		o.CacheValid = 0
	}
	if o.MemoryBytes == 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if o.MemoryBytes < 0 {
		o.MemoryBytes = 0
	}
	if o.CacheInactive <= 0 {
		o.CacheInactive = DefaultCacheInactive
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ErrorPage == nil {
		o.ErrorPage = func(w http.ResponseWriter, _ *http.Request, status int) {
			http.Error(w, http.StatusText(status), status)
		}
	}
	return o, encs, nil
}
