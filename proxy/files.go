package proxy

import (
	"io"
	"net/http"
	"os"

	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/realip"
	"github.com/gatehouse-proxy/gatehouse/internal/stickycookie"
	"github.com/gatehouse-proxy/gatehouse/staticfile"
)

// File routes (alias or root on a route) are served by package
// staticfile. The proxy's part:
//
//   - A client's request passes the same checks as a proxied one (site,
//     allow/deny, TRACE, body limit, rate-limit zones) before it reaches
//     the file server; an internal route answers it 404.
//   - The file server writes through fileWriter, which applies the route's
//     response header rules when the status is written, bounds every
//     write by timeouts.send, counts the bytes for the access log, and
//     passes the file to net/http's ReadFrom in pieces of sendbound.FileChunk, so
//     sendfile(2) still moves the bytes on plaintext HTTP/1 while no
//     single write may block longer than the send timeout.
//   - The file server's own errors (404, 405, 500, 503) come back through
//     fileErrorPage: the site's error page, or, on a route that also has
//     an upstream, a hand-over of the 404 to it (nginx try_files $uri
//     @backend).
//   - A backend response with X-Accel-Redirect is taken apart in attempt
//     (takeAccel) and served after the backend is released (serveAccel),
//     from the site's internal route the target names.

// fileServer opens (or shares, through Deps.Files) the server of a file
// route of rt.
func (rt *Runtime) fileServer(rc *config.Route) (*staticfile.Server, error) {
	f, c := rc.Files, rt.cfg.OpenFileCache
	o := staticfile.Options{
		Root:                  f.Dir,
		Index:                 f.Index,
		CacheControl:          f.CacheControl,
		ImmutableCacheControl: f.ImmutableCacheControl,
		IgnoreHashes:          f.IgnoreHashes,
		Precompressed:         f.Precompressed,
		AllowDotFiles:         f.AllowDotFiles,
		Internal:              rc.Internal,
		ErrorPage:             fileErrorPage,
		CacheEntries:          c.Entries,
		CacheValid:            c.Valid,
		CacheInactive:         c.Inactive,
		MemoryBytes:           c.Memory,
		Logger:                rt.log,
	}
	// config's zero means "none"; staticfile's zero means its default.
	if c.Entries == 0 {
		o.CacheEntries = -1
	}
	if c.Valid == 0 {
		o.CacheValid = -1
	}
	if c.Memory == 0 {
		o.MemoryBytes = -1
	}
	s, err := rt.deps.Files.Get(o)
	if err != nil {
		return nil, err
	}
	rt.files = append(rt.files, s)
	return s, nil
}

// fileName is the name route r's file server looks up for a request (or
// X-Accel-Redirect) path p that r matched: without the route's prefix
// for alias, the whole path for root.
func (r *route) fileName(p string) string {
	if r.cfg.Files.Alias {
		return p[len(r.cfg.Path):]
	}
	return p
}

// internalRoute is the site's internal file route for an X-Accel-Redirect
// target (longest prefix), or nil.
func (s *site) internalRoute(target string) *route {
	r, _ := s.internal.Match(target)
	return r
}

// serveFile answers a client's request on a file route; path is the
// normalised, decoded request path.
func (q *request) serveFile(path string) {
	rt := q.route
	if rt.upstream != nil && q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		// A file route with an upstream: what is not a read goes to the
		// application (a form posted to a path the directory also holds).
		q.proxy()
		return
	}
	q.ownHeaders(q.w.Header())
	q.fw = fileWriter{q: q, rules: rt.respRules, comp: rt.comp}
	// The request's start is the open-file cache's time: one clock read
	// fewer.
	rt.files.ServeAt(&q.fw, q.r, rt.fileName(path), q.start)
	q.fw.finish()
}

// fileErrorPage is every file server's Options.ErrorPage: w is the
// fileWriter of the request.
func fileErrorPage(w http.ResponseWriter, r *http.Request, status int) {
	for {
		if fw, ok := w.(*fileWriter); ok {
			fw.q.fileFailed(fw, status)
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	http.Error(w, http.StatusText(status), status)
}

// fileFailed answers a status the file server produced itself: a 404 on a
// route with an upstream goes to the upstream (try_files), anything else
// gets the site's error page under the header rules of the route whose
// files were looked for.
func (q *request) fileFailed(fw *fileWriter, status int) {
	if status == http.StatusNotFound && !fw.accel && q.route.upstream != nil {
		q.proxy()
		return
	}
	q.rules = fw.rules
	q.fail(status, false)
}

// fileWriter is the http.ResponseWriter a file server writes to: q's, with
// the route's response header rules applied at WriteHeader, every write
// bounded by the send timeout, and the bytes counted. A file without a
// precompressed sibling, of a compressible type and at most
// max_file_size, is compressed on the way (compress.go): the decision is
// made at WriteHeader, after the rules, and the body then goes through
// cw; larger files go to sendfile as they are.
type fileWriter struct {
	q      *request
	rules  respRules
	comp   *compress.Compressor // the route's; nil: compress is off
	accel  bool                 // serving an X-Accel-Redirect
	wrote  bool                 // the status went out
	failed bool                 // a write to the client failed
	chunk  io.LimitedReader
	cw     *compress.Writer // the response is compressed through it
	// armed: a write was bounded by the send timeout and nothing is
	// waited for between writes of a file (sendbound.Bound.End keeps it).
	armed bool
}

func (f *fileWriter) Header() http.Header { return f.q.w.Header() }

func (f *fileWriter) WriteHeader(code int) {
	if f.wrote {
		return
	}
	f.wrote = true
	f.q.status = code
	h := f.q.w.Header()
	f.rules.Apply(h)
	if !f.q.mayCompress(f.comp) {
		// Before the length is parsed for compressWriter.
		f.q.w.WriteHeader(code)
		return
	}
	if f.cw = f.q.compressWriter(f.comp, h, code, contentLength(h), f.q.rt.compMaxFile, false); f.cw != nil {
		f.cw.WriteHeader(code)
		return
	}
	f.q.w.WriteHeader(code)
}

// out is where the body goes: the compress.Writer, or the client's
// writer.
func (f *fileWriter) out() http.ResponseWriter {
	if f.cw != nil {
		return f.cw
	}
	return f.q.w
}

func (f *fileWriter) Write(p []byte) (int, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	f.q.sendBound().Arm(http.NewResponseController(f.q.w))
	f.armed = true
	n, err := f.out().Write(p)
	f.q.bytes += int64(n)
	if err != nil {
		f.failed = true
	}
	return n, err
}

// ReadFrom hands a file to net/http's ReadFrom (sendfile on plaintext
// HTTP/1) sendbound.FileChunk bytes at a time, re-arming the send timeout before
// each: http.ServeContent passes an *io.LimitedReader over the *os.File,
// and a LimitedReader over a file is what sendfile accepts.
func (f *fileWriter) ReadFrom(src io.Reader) (int64, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	rf, ok := f.out().(io.ReaderFrom)
	lr, isLR := src.(*io.LimitedReader)
	if isLR {
		_, isLR = lr.R.(*os.File)
	}
	if !ok || !isLR {
		// Not a file (a small file from memory, a multipart range, or
		// HTTP/2): plain writes, which net/http buffers, so a small
		// file leaves with its head in one write(2).

		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		return io.CopyBuffer(fileWrites{f}, src, *bp)
	}
	total, armed, err := f.q.sendBound().SendFile(http.NewResponseController(f.q.w), rf, lr, &f.chunk)
	f.armed = f.armed || armed
	f.q.bytes += total
	if err != nil {
		f.failed = true
	}
	return total, err
}

// Unwrap gives http.ResponseController the writer underneath.
func (f *fileWriter) Unwrap() http.ResponseWriter { return f.out() }

// finish ends a file response: a client that went away is logged 499;
// otherwise the coded stream is completed and what net/http still
// buffers goes out, under the send bound.
func (f *fileWriter) finish() {
	q := f.q
	if !f.wrote {
		return // answered by fail or the upstream
	}
	if f.cw != nil {
		if !f.failed && q.r.Context().Err() == nil {
			q.sendBound().Arm(http.NewResponseController(q.w))
			f.armed = true
			f.failed = f.cw.Close() != nil
		}
		f.abort()
		q.bytes = q.sent.N
	}
	if f.failed || q.r.Context().Err() != nil {
		q.status = StatusClientClosed
		return
	}
	if q.sendBound().End(http.NewResponseController(q.w), f.armed) != nil {
		q.status = StatusClientClosed
	}
}

// abort releases the encoder of a response that did not finish (a
// panic, a client gone): nothing more is written. After finish it does
// nothing.
func (f *fileWriter) abort() {
	if f.cw != nil {
		f.cw.Abort()
		f.cw = nil
	}
}

// fileWrites is a fileWriter without its ReadFrom, for io.Copy (a
// pointer-shaped value: no allocation as an io.Writer).
type fileWrites struct{ f *fileWriter }

func (w fileWrites) Write(p []byte) (int, error) { return w.f.Write(p) }

// accelHeader is staticfile.IsAccelHeader with a cheap first test: every
// name it matches starts with an X and has at least 8 bytes, which most of
// a response's header names do not.
func accelHeader(k string) bool {
	return len(k) >= 8 && k[0]|0x20 == 'x' && staticfile.IsAccelHeader(k)
}

// accel is a backend's X-Accel-Redirect, taken from its response in
// attempt and served by proxy once the backend is released.
type accel struct {
	pending bool
	target  string      // the path named, decoded
	err     error       // the header was unusable
	header  http.Header // the backend response's header (a copy)
}

// accelDrain is how much of a redirecting response's body is read so
// that its connection can be reused (Django sends none); more, and the
// connection is closed instead.
const accelDrain = 64 << 10

// takeAccel keeps what serveAccel needs of a response carrying
// X-Accel-Redirect, and drains its body. The header is copied: the
// upstream client reuses its map once the body is closed.
func (q *request) takeAccel(resp *http.Response, cookie *http.Cookie) {
	target, _, err := staticfile.RedirectTarget(resp.Header)
	h := resp.Header.Clone()
	if cookie != nil {
		h["Set-Cookie"] = append(h["Set-Cookie"], cookie.String())
		if cc := h["Cache-Control"]; len(cc) > 0 {
			h["Cache-Control"] = []string{stickycookie.MergePrivate(cc)}
		}
	}
	q.accel = accel{pending: true, target: target, err: err, header: h}
	_, _ = io.CopyN(io.Discard, resp.Body, accelDrain)
}

// serveAccel sends the file a backend named with X-Accel-Redirect, from
// the site's internal route for it, with the backend's Content-Type,
// Content-Disposition, Content-Language, Cache-Control, Expires and
// Set-Cookie (staticfile.Server.ServeRedirect). A malformed target, an
// upstream without x_accel_redirect, or a target no internal route
// serves is 502 and a log line; the header never reaches the client.
func (q *request) serveAccel() {
	a := q.accel
	q.accel = accel{}
	u := q.route.upstream.cfg.Name
	var ir *route
	switch {
	case a.err != nil:
		q.e.log.Warn("X-Accel-Redirect refused: malformed", "upstream", u, "uri", q.r.RequestURI, "err", a.err)
	case !q.route.upstream.cfg.XAccelRedirect:
		q.e.log.Warn("X-Accel-Redirect refused: the upstream may not use it (set x_accel_redirect = true on it)",
			"upstream", u, "uri", q.r.RequestURI, "target", a.target)
	default:
		if ir = q.site.internalRoute(a.target); ir == nil {
			q.e.log.Warn("X-Accel-Redirect refused: no internal file route serves the target",
				"upstream", u, "site", q.site.cfg.Name, "uri", q.r.RequestURI, "target", a.target)
		}
	}
	if ir == nil {
		q.e.metrics.UpstreamErrors.WithLabelValues(u, "x_accel").Inc()
		q.fail(http.StatusBadGateway, false)
		return
	}
	q.rules = ir.respRules
	if !realip.Allowed(ir.cfg.Allow, ir.cfg.Deny, q.client) {
		q.e.metrics.Rejected.WithLabelValues("access_denied").Inc()
		q.fail(http.StatusForbidden, false)
		return
	}
	q.ownHeaders(q.w.Header())
	q.fw = fileWriter{q: q, rules: ir.respRules, comp: ir.comp, accel: true}
	ir.files.ServeRedirect(&q.fw, q.r, ir.fileName(a.target), a.header)
	q.fw.finish()
}

var _ http.ResponseWriter = (*fileWriter)(nil)
var _ io.ReaderFrom = (*fileWriter)(nil)
