package staticfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	errIsDir      = errors.New("is a directory")
	errNotRegular = errors.New("not a regular file")
	errChanged    = errors.New("file changed on disk")
)

// Server serves the files under one root directory. Its methods are safe
// for concurrent use.
type Server struct {
	o     Options // defaults applied
	root  *os.Root
	encs  []encoding
	cache *cache // nil: no open-file cache

	refs      atomic.Int64 // 1 for the owner until Close, plus one per request in flight
	closed    atomic.Bool  // Close was called: no new requests
	closeOnce sync.Once

	readers sync.Pool // of *bytes.Reader, for files in memory

	// Header values shared by every response, never mutated.
	nosniff      []string
	vary         []string
	acceptRanges []string

	// epoch is the origin of the open-file cache's clock (now).
	epoch time.Time

	// viaServeContent sends every response through http.ServeContent,
	// also those serveDirect would answer: set by tests that compare
	// the two. False (the zero value): the direct path is used.
	viaServeContent bool
}

// New opens opts.Root and returns a Server for it. It fails when the
// options are invalid or the root cannot be opened as a directory.
func New(opts Options) (*Server, error) {
	o, encs, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(o.Root)
	if err != nil {
		return nil, fmt.Errorf("staticfile: root: %w", err)
	}
	s := &Server{
		o:            o,
		root:         root,
		encs:         encs,
		nosniff:      []string{"nosniff"},
		vary:         []string{"Accept-Encoding"},
		acceptRanges: []string{"bytes"},
		epoch:        time.Now(),
	}
	if o.CacheEntries > 0 {
		s.cache = newCache(o.CacheEntries, o.CacheValid, o.CacheInactive, o.MemoryBytes)
	}
	s.readers.New = func() any { return new(bytes.Reader) }
	s.refs.Store(1)
	return s, nil
}

// Close releases the root and the cached descriptors once the requests in
// flight have finished (it does not wait for them). Requests that arrive
// afterwards get 503. Close is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.release()
	})
	return nil
}

// acquire counts a request in; false once the Server is closed. A
// request that passed the closed check just before Close still finds the
// root open: the count keeps it so until the request ends.
func (s *Server) acquire() bool {
	if s.closed.Load() {
		return false
	}
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *Server) release() {
	if s.refs.Add(-1) == 0 {
		if s.cache != nil {
			s.cache.closeAll()
		}
		s.root.Close()
	}
}

// ServeHTTP serves the file named by r.URL.Path, relative to the root: a
// route's handler after its path prefix has been stripped
// ([http.StripPrefix]). It is Serve(w, r, r.URL.Path).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Serve(w, r, r.URL.Path)
}

// Serve answers a client's request for the file name: a slash-separated
// path relative to the root, already percent-decoded, with or without a
// leading slash (the proxy passes the request path with the route prefix
// cut off, which costs no allocation, where http.StripPrefix copies the
// request). A name ending in a slash names a directory, served through
// Options.Index. GET and HEAD only; conditional and Range requests are
// answered by [http.ServeContent] (see the package doc for the plain
// GET of a small file). On an Internal server it answers 404.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, name string) {
	s.ServeAt(w, r, name, time.Time{})
}

// ServeAt is Serve for a request the caller received at t, as time.Now
// gave it: the open-file cache takes t as the time instead of reading the
// clock again (one clock read fewer per request, 30-55 ns on this
// project's VM). t must be a moment ago: the cache keeps an entry it
// checked less than open_file_cache.valid before t. The zero t reads the
// clock; with Options.Now set, t is not used.
func (s *Server) ServeAt(w http.ResponseWriter, r *http.Request, name string, t time.Time) {
	if s.o.Internal {
		s.fail(w, r, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, http.StatusMethodNotAllowed)
		return
	}
	s.serve(w, r, name, nil, false, s.now(t))
}

// ServeRedirect answers a client's request with the file name on behalf
// of a backend whose response carried X-Accel-Redirect (see
// [RedirectTarget]): r is the client's request (its Range and conditional
// headers apply), name is the target path with the internal route's
// prefix cut off, and backend is the backend response's header.
//
// As nginx does, the method is treated as GET (HEAD stays HEAD), whatever
// the client used, and a few of the backend's headers are kept, replacing
// the file's own: Content-Type (when not empty; Django's HttpResponse
// defaults to text/html, so a view should set content_type or send
// Content-Type: "" to get the file's type), Content-Disposition,
// Content-Language, Cache-Control, Expires and Set-Cookie. Every other
// backend header is dropped; the proxy must not copy them itself (it may
// set its own headers, such as a request ID, on w before the call: they
// are kept). A directory or missing file is 404 through
// Options.ErrorPage; there is no redirect to "dir/".
//
// It works on any Server, Internal or not.
func (s *Server) ServeRedirect(w http.ResponseWriter, r *http.Request, name string, backend http.Header) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r = r.WithContext(r.Context()) // a shallow copy, so the caller's request is left alone
		r.Method = http.MethodGet
	}
	s.serve(w, r, name, backend, true, s.now(time.Time{}))
}

// serve is the common path; backend is nil for a client's own request,
// now the open-file cache's time (see now).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, name string, backend http.Header, redirect bool, now int64) {
	if !s.acquire() {
		s.fail(w, r, http.StatusServiceUnavailable)
		return
	}
	defer s.release()
	clean, dir, ok := cleanName(name, s.o.AllowDotFiles)
	if !ok {
		s.o.Logger.Debug("static file name refused", "name", name)
		s.fail(w, r, http.StatusNotFound)
		return
	}
	if dir {
		s.serveIndex(w, r, clean, backend, now)
		return
	}
	for range 2 {
		e, err := s.lookup(clean, now)
		if err != nil {
			if errors.Is(err, errIsDir) && !redirect && s.hasIndex(clean+"/", now) {
				s.redirectDir(w, r, clean)
				return
			}
			s.failErr(w, r, clean, err)
			return
		}
		served := s.serveEntry(w, r, e, backend)
		s.done(e)
		if served {
			return
		}
		// The file changed between the check and the open: look again.
	}
	s.fail(w, r, http.StatusNotFound)
}

// serveIndex answers a directory request (dir is "" or ends in "/").
func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request, dir string, backend http.Header, now int64) {
	for _, idx := range s.o.Index {
		name := dir + idx
		for range 2 {
			e, err := s.lookup(name, now)
			if err != nil {
				if isMissing(err) {
					break
				}
				s.failErr(w, r, name, err)
				return
			}
			served := s.serveEntry(w, r, e, backend)
			s.done(e)
			if served {
				return
			}
		}
	}
	s.o.Logger.Debug("static file not found", "name", dir, "err", "directory without an index file")
	s.fail(w, r, http.StatusNotFound)
}

func (s *Server) hasIndex(dir string, now int64) bool {
	for _, idx := range s.o.Index {
		if e, err := s.lookup(dir+idx, now); err == nil {
			s.done(e)
			return true
		}
	}
	return false
}

// redirectDir sends a client that named a directory without the final
// slash to the slashed name, as nginx and http.FileServer do. The
// Location is relative ("./docs/"), so the route prefix the proxy cut off
// stays in place.
func (s *Server) redirectDir(w http.ResponseWriter, r *http.Request, name string) {
	loc := "./" + (&url.URL{Path: path.Base(name) + "/"}).EscapedPath()
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusMovedPermanently)
}

// now is the open-file cache's time, in nanoseconds: Options.Now's, or t
// (the clock when t is zero) as the monotonic time since the Server was
// made.
func (s *Server) now(t time.Time) int64 {
	if s.o.Now != nil {
		return s.o.Now().UnixNano()
	}
	if t.IsZero() {
		return int64(time.Since(s.epoch))
	}
	return int64(t.Sub(s.epoch))
}

// lookup returns the entry for a file name (no trailing slash), from the
// cache when it is there and still valid at now.
func (s *Server) lookup(name string, now int64) (*entry, error) {
	if s.cache == nil {
		return s.build(name)
	}
	if e := s.cache.get(name, now); e != nil {
		if now-e.checked.Load() < s.cache.valid || !e.checking.CompareAndSwap(false, true) {
			// Fresh, or another request is checking it: serve what we
			// have, as nginx does while open_file_cache_valid runs.
			return e, nil
		}
		if s.unchanged(e) {
			e.checked.Store(now)
			e.checking.Store(false)
			return e, nil
		}
		s.cache.drop(e) // checking stays set: the entry is dead
	}
	e, err := s.build(name)
	if err != nil {
		return nil, err
	}
	e.checked.Store(now)
	s.cache.put(e, now)
	return e, nil
}

// build opens name and stats its precompressed siblings.
func (s *Server) build(name string) (*entry, error) {
	fd, fi, err := openRegular(s.root, name)
	if err != nil {
		return nil, err
	}
	e := &entry{key: name, ident: newFile(name, fi, "")}
	if e.ident.load(s.cache, fd) {
		fd.Close()
	} else {
		e.ident.idle = append(e.ident.idle, fd)
	}
	for i, enc := range s.encs {
		sfi, err := s.root.Stat(name + enc.ext)
		if err != nil || !sfi.Mode().IsRegular() {
			if err != nil && !isMissing(err) {
				s.o.Logger.Debug("precompressed sibling unusable", "name", name+enc.ext, "err", err)
			}
			continue
		}
		e.sib[i] = sfi
		if sfi.ModTime().Before(fi.ModTime()) {
			// Older than the file: written before the file last changed,
			// so probably of older content. Not served.
			s.o.Logger.Debug("precompressed sibling older than its file; not served", "name", name+enc.ext)
			continue
		}
		f := newFile(name+enc.ext, sfi, enc.token)
		if s.cache != nil && f.size <= SmallFileBytes {
			if sfd, sfi2, err := openRegular(s.root, f.name); err == nil {
				if sameVersion(sfi, sfi2) {
					f.load(s.cache, sfd)
				}
				sfd.Close()
			}
		}
		e.enc[i] = f
		e.avail[i] = true
		e.variants = true
	}
	e.ctype = []string{contentType(name)}
	if !s.o.IgnoreHashes && IsHashed(name) {
		e.cc = []string{s.o.ImmutableCacheControl}
	} else {
		e.cc = []string{s.o.CacheControl}
	}
	return e, nil
}

// done ends a request's use of e: without a cache, its descriptors are
// closed.
func (s *Server) done(e *entry) {
	if s.cache == nil {
		e.retire()
	}
}

// unchanged stats e's file and siblings and reports whether they are as
// cached.
func (s *Server) unchanged(e *entry) bool {
	fi, err := s.root.Stat(e.key)
	if err != nil || !fi.Mode().IsRegular() || !sameVersion(fi, e.ident.info) {
		return false
	}
	for i, enc := range s.encs {
		sfi, err := s.root.Stat(e.key + enc.ext)
		if err != nil || !sfi.Mode().IsRegular() {
			sfi = nil
		}
		if (sfi == nil) != (e.sib[i] == nil) || (sfi != nil && !sameVersion(sfi, e.sib[i])) {
			return false
		}
	}
	return true
}

// serveEntry sends e (or one of its siblings): a plain GET or HEAD of a
// file held in memory directly (serveDirect), anything else with
// http.ServeContent. It returns false, having written nothing, when the
// file on disk is no longer the one e describes.
func (s *Server) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, backend http.Header) bool {
	f, coding := e.ident, -1
	// A Range request gets the file itself: byte offsets then mean the
	// same thing whatever the client accepts (see the package doc).
	if e.variants && len(r.Header["Range"]) == 0 {
		if coding = negotiate(r.Header["Accept-Encoding"], s.encs, &e.avail); coding >= 0 {
			f = e.enc[coding]
		}
	}
	// A Content-Encoding someone else set (not a sibling's: that is set
	// below) makes ServeContent leave Content-Length out and send the
	// body chunked; such a response goes the full way.
	direct := f.inMem && !s.viaServeContent && unconditional(r.Header) && len(w.Header()["Content-Encoding"]) == 0
	multi := false
	if rg := r.Header["Range"]; len(rg) > 0 && strings.Contains(rg[0], ",") {
		// Several ranges: ServeContent reads them in a goroutine of its
		// own that may still run when it returns (client gone), after the
		// descriptor or reader went back to its pool. A reader of its
		// own, reading with pread, never touches what others use.
		multi = true
	}
	var content io.ReadSeeker
	switch {
	case direct:
		// No reader: serveDirect writes f.data as it is.
	case f.inMem && multi:
		content = bytes.NewReader(f.data)
	case f.inMem:
		br := s.readers.Get().(*bytes.Reader)
		br.Reset(f.data)
		defer s.readers.Put(br)
		content = br
	default:
		fd, err := f.take(s.root)
		if err != nil {
			if !isMissing(err) && !errors.Is(err, errChanged) {
				s.failErr(w, r, f.name, err)
				return true
			}
			// Replaced or removed since it was checked: drop the entry
			// and let the caller look again.
			s.o.Logger.Debug("static file changed since it was checked", "name", f.name, "err", err)
			if s.cache != nil {
				s.cache.drop(e)
			}
			return false
		}
		defer f.give(fd)
		content = fd
		if multi {
			content = io.NewSectionReader(fd, 0, f.size)
		}
	}

	h := w.Header()
	h["Content-Type"] = e.ctype
	h["Cache-Control"] = e.cc
	h["Etag"] = f.etag
	h["X-Content-Type-Options"] = s.nosniff
	if e.variants {
		if v, ok := h["Vary"]; ok {
			h["Vary"] = append(v[:len(v):len(v)], "Accept-Encoding")
		} else {
			h["Vary"] = s.vary
		}
	}
	if coding >= 0 {
		h["Content-Encoding"] = s.encs[coding].hdr
		// ServeContent leaves Content-Length out when Content-Encoding is
		// set (for handlers that compress on the fly), which would make
		// the response chunked (no sendfile) and a HEAD lengthless. A
		// variant is never sent in part (ranges get the file itself),
		// so its length is its size.
		h["Content-Length"] = f.clen
	}
	if backend != nil {
		mergeBackend(h, backend)
	}
	if direct {
		s.serveDirect(w, r, f)
		return true
	}
	if coding >= 0 {
		w = variantWriter{w}
	}
	http.ServeContent(w, r, "", f.modTime, content)
	return true
}

// unconditional reports whether a request carries none of the header
// fields that can make http.ServeContent answer with anything but 200
// and the whole content: Range, If-Range and the four preconditions.
// (ServeContent reads them by their canonical names, as here; a field
// present with an empty value counts as present, which only sends the
// request the full way.)
func unconditional(h http.Header) bool {
	return len(h["Range"]) == 0 && len(h["If-Range"]) == 0 &&
		len(h["If-Match"]) == 0 && len(h["If-None-Match"]) == 0 &&
		len(h["If-Modified-Since"]) == 0 && len(h["If-Unmodified-Since"]) == 0
}

// serveDirect answers a GET or HEAD without Range or preconditions for a
// file held in memory, with the headers serveEntry set, as
// http.ServeContent would (TestDirectMatchesServeContent compares the
// two): 200, Last-Modified, Accept-Ranges and Content-Length, then the
// content in one Write, none for HEAD or an empty file. Every
// header value is a shared slice computed once per cache entry, so the
// response costs no allocation here, and the one Write lets net/http
// send a small file with its head in one write(2). What ServeContent
// does on top (Content-Type sniffing, Seek for the size, parsing the
// conditions) has nothing to do for such a request.
func (s *Server) serveDirect(w http.ResponseWriter, r *http.Request, f *file) {
	h := w.Header()
	if f.lastMod != nil {
		h["Last-Modified"] = f.lastMod
	}
	h["Accept-Ranges"] = s.acceptRanges
	h["Content-Length"] = f.clen
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead && len(f.data) > 0 {
		_, _ = w.Write(f.data) // a client gone: net/http and the proxy's writer see it
	}
}

// variantWriter drops the Content-Length set for a precompressed variant
// when ServeContent answers with anything but 200: a 412 (If-Match,
// If-Unmodified-Since) has no body, and a stale length would make the
// client wait for bytes that never come. (304 and error responses have
// theirs removed by ServeContent.)
type variantWriter struct{ http.ResponseWriter }

func (w variantWriter) WriteHeader(code int) {
	if code != http.StatusOK {
		w.Header().Del("Content-Length")
	}
	w.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps the ResponseWriter's own ReadFrom (net/http's, which
// reaches sendfile) in reach through the wrapper.
func (w variantWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Unwrap gives http.ResponseController the ResponseWriter underneath.
func (w variantWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isMissing reports whether err means the name does not exist as a file
// the server may serve (a 404 that is worth no more than a debug line).
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errIsDir) || errors.Is(err, errNotRegular) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENAMETOOLONG)
}

// failErr answers a failed open: 404 for a name that is missing or may
// not be served, 500 for a server-side I/O failure.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case isMissing(err):
		s.o.Logger.Debug("static file not found", "name", name, "err", err)
		s.fail(w, r, http.StatusNotFound)
	case errors.Is(err, fs.ErrPermission):
		s.o.Logger.Warn("static file not readable", "name", name, "err", err)
		s.fail(w, r, http.StatusNotFound)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENOMEM):
		s.o.Logger.Error("static file open failed", "name", name, "err", err)
		s.fail(w, r, http.StatusInternalServerError)
	default:
		// Including os.Root's "path escapes from parent" for a symlink
		// pointing out of the root.
		s.o.Logger.Debug("static file refused", "name", name, "err", err)
		s.fail(w, r, http.StatusNotFound)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int) {
	s.o.ErrorPage(w, r, status)
}

// openRegular opens name under root for reading without blocking (a FIFO
// would block open(2) until a writer came) and keeps it only if it is a
// regular file.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	fd, err := root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := fd.Stat()
	switch {
	case err != nil:
	case fi.IsDir():
		err = errIsDir
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%s: %w (%v)", name, errNotRegular, fi.Mode().Type())
	default:
		return fd, fi, nil
	}
	fd.Close()
	return nil, nil, err
}
