package compress

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// phase is where a Writer is in its response.
type phase uint8

const (
	phaseHeader   phase = iota // nothing sent; the handler may still set headers
	phasePending               // eligible; buffering up to MinLength before deciding
	phaseEncode                // headers sent with Content-Encoding; body through enc
	phasePlain                 // headers sent as they are; body passed through
	phaseHijacked              // the connection was taken over; nothing more to do
	phaseClosed                // Close or Abort ran
)

// sniffLen is how much net/http's content sniffing reads.
const sniffLen = 512

// ErrClosed is returned by a Write after Close or Abort.
var ErrClosed = errors.New("compress: write after close")

// Writer is an http.ResponseWriter that compresses the response when it
// qualifies. It decides when the status is written (WriteHeader, or the
// first Write or Flush): a response is compressed only when
//
//   - the status allows a body (not 1xx, 204 or 304) and the request is
//     not HEAD;
//   - the Content-Type is on the list (Options.Types), or, when the
//     handler set no Content-Type at all, the type net/http would sniff is;
//   - it has no Content-Encoding (it is not already encoded), no
//     Content-Range and is not a 206;
//   - neither the response nor the request says Cache-Control:
//     no-transform;
//   - the client accepts one of the offered codings;
//   - its Content-Length is at least MinLength, or, with no
//     Content-Length, its body reaches MinLength or is flushed first.
//
// Compressing removes Content-Length, Accept-Ranges and the digests of
// the uncoded bytes (Content-MD5, Content-Digest, Repr-Digest, Digest),
// sets Content-Encoding, adds "Vary: Accept-Encoding" and weakens a
// strong ETag ("x" becomes W/"x": the bytes differ from the uncoded
// response's). Vary is also added whenever the type qualifies but this
// client was not sent a coding, so that a cache does not hand one
// client's variant to another.
//
// A Writer is for one response and one goroutine, like the ResponseWriter
// it wraps. Call Close when the handler returns normally, and Abort (for
// example deferred) on every other path; Abort after Close does nothing.
//
// Flush pushes everything written so far through the encoder (a sync
// flush) and then flushes the connection, so each event of a
// text/event-stream arrives when it is sent. Unwrap gives
// http.ResponseController the underlying writer (SetWriteDeadline,
// EnableFullDuplex); Hijack (a WebSocket upgrade) takes the connection
// with compression bypassed.
type Writer struct {
	c      *Compressor
	rw     http.ResponseWriter
	accept []string // the request's Accept-Encoding values
	head   bool     // HEAD request
	noTx   bool     // request Cache-Control: no-transform

	ifNoneMatch string // the request's If-None-Match, for a 304

	phase    phase
	code     int
	sniff    bool     // Content-Type absent: sniff it from the body before deciding
	coding   Encoding // phasePending: the negotiated coding; phaseEncode: the one in use
	enc      encoder
	stateful bool
	bufp     *[]byte // phasePending: the pooled buffer buf lives in
	buf      []byte  // phasePending: the body so far
	err      error   // first write error from the encoder
	done     bool    // a coded body was completed (for Coding after Close)
}

// Wrap returns a Writer for the response to r written to w. The Writer
// reads r's Accept-Encoding, Cache-Control and method now.
func (c *Compressor) Wrap(w http.ResponseWriter, r *http.Request) *Writer {
	return &Writer{
		c:      c,
		rw:     w,
		accept: r.Header.Values("Accept-Encoding"),
		head:   r.Method == http.MethodHead,
		noTx:   hasNoTransform(r.Header.Values("Cache-Control")),

		ifNoneMatch: r.Header.Get("If-None-Match"),
	}
}

// Header returns the header map of the wrapped writer.
func (w *Writer) Header() http.Header { return w.rw.Header() }

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.rw }

// Coding is the content coding the response is sent with; Identity until
// the decision is made and when it is not compressed.
func (w *Writer) Coding() Encoding {
	if w.enc != nil || w.done {
		return w.coding
	}
	return Identity
}

// WriteHeader records the status and decides, if the headers allow it,
// whether the response is compressed. An informational status (1xx other
// than 101) is passed on at once and decides nothing.
func (w *Writer) WriteHeader(code int) {
	if w.phase != phaseHeader {
		if w.phase == phasePending {
			return // like net/http: a superfluous WriteHeader is ignored
		}
		w.rw.WriteHeader(code) // net/http logs the superfluous call
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.rw.WriteHeader(code)
		return
	}
	w.code = code
	w.decide()
}

// decide runs the header rules once the status is known.
func (w *Writer) decide() {
	h := w.rw.Header()
	switch w.eligible(h) {
	case notEligible:
		w.sendPlain()
		return
	case sniffFirst:
		w.sniff = true
		w.pend()
		return
	}
	coding, ok := w.chooseCoding(h)
	if !ok {
		w.sendPlain()
		return
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			if n < int64(w.c.minLen) {
				w.sendPlain()
			} else {
				w.startEncode(coding, false)
			}
			return
		}
	}
	w.coding = coding
	w.pend()
}

func (w *Writer) pend() {
	w.phase = phasePending
	w.bufp = w.c.bufs.Get().(*[]byte)
	w.buf = (*w.bufp)[:0]
}

type eligibility uint8

const (
	notEligible eligibility = iota
	typeEligible
	sniffFirst // no Content-Type: decide on the sniffed one
)

// eligible applies the rules that do not depend on the client: status,
// type, existing coding, ranges and no-transform.
func (w *Writer) eligible(h http.Header) eligibility {
	if w.code == http.StatusSwitchingProtocols || w.code == http.StatusPartialContent {
		return notEligible
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return notEligible
	}
	if h.Get("Content-Range") != "" || hasNoTransform(h.Values("Cache-Control")) {
		return notEligible
	}
	ct, ok := h["Content-Type"]
	if !ok && w.code == http.StatusNotModified {
		// Django's 304 carries no Content-Type. If the client is
		// revalidating a response we compressed (its If-None-Match has
		// the weak tag we made), the 304 keeps that tag and our Vary.
		if et := h.Get("Etag"); len(et) >= 2 && et[0] == '"' && hasWeakTag(w.ifNoneMatch, et) {
			AddVary(h)
			weakenETag(h)
		}
		return notEligible
	}
	if !ok {
		// net/http would sniff the type from the first 512 bytes; so do
		// we, before deciding, when a body follows.
		if w.head || !bodyAllowed(w.code) {
			return notEligible
		}
		return sniffFirst
	}
	if len(ct) > 0 && w.c.types.match(ct[0]) {
		return typeEligible
	}
	return notEligible
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// chooseCoding runs once the type qualifies: whether a coding is used now
// depends on the request's Accept-Encoding, so Vary says so. ok is false
// when this response goes out uncoded.
func (w *Writer) chooseCoding(h http.Header) (coding Encoding, ok bool) {
	AddVary(h)
	coding, _ = Negotiate(w.accept, w.c.offers)
	if coding == Identity || w.noTx {
		return Identity, false
	}
	if w.head || !bodyAllowed(w.code) {
		// The same response to a GET would carry a weakened ETag (unless
		// it is too short to compress); a HEAD or a 304 revalidating it
		// must not bring back the strong one.
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err != nil || n >= int64(w.c.minLen) {
			weakenETag(h)
		}
		return Identity, false
	}
	return coding, true
}

// sendPlain sends the headers as they are; the body passes through.
func (w *Writer) sendPlain() {
	w.phase = phasePlain
	w.rw.WriteHeader(w.code)
}

// startEncode takes an encoder, rewrites the headers for the coding and
// sends them. With no stateful encoder to be had (over the cap), a
// response gets stateless gzip if the client takes gzip, and goes out
// plain otherwise or when it is a stream (an event stream, or flushed
// before it reached MinLength): stateless gzip compresses each flushed
// piece on its own, and small events come out no smaller
// (BenchmarkSSE).
func (w *Writer) startEncode(coding Encoding, flushed bool) {
	statelessOK := !flushed && !isEventStream(w.rw.Header().Get("Content-Type"))
	if statelessOK && coding != Gzip {
		c, _ := Negotiate(w.accept, gzipOnly)
		statelessOK = c == Gzip
	}
	enc, stateful := w.c.pools.get(coding, w.rw, statelessOK)
	if enc == nil {
		w.sendPlain()
		return
	}
	if !stateful {
		coding = Gzip
	}
	w.coding, w.enc, w.stateful = coding, enc, stateful
	h := w.rw.Header()
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	h.Del("Content-Md5")
	h.Del("Content-Digest")
	h.Del("Repr-Digest")
	h.Del("Digest")
	h["Content-Encoding"] = w.c.codingValues[coding]
	weakenETag(h)
	w.phase = phaseEncode
	w.rw.WriteHeader(w.code)
}

var gzipOnly = []Encoding{Gzip}

// Write compresses p, passes it through, or buffers it until the
// decision can be made.
func (w *Writer) Write(p []byte) (int, error) {
	switch w.phase {
	case phaseHeader:
		w.WriteHeader(http.StatusOK)
		return w.Write(p)
	case phaseEncode:
		if w.err != nil {
			return 0, w.err
		}
		n, err := w.enc.Write(p)
		if err != nil {
			w.err = err
		}
		return n, err
	case phasePlain, phaseHijacked:
		return w.rw.Write(p)
	case phasePending:
		need := w.c.minLen
		if w.sniff && need < sniffLen {
			need = sniffLen
		}
		if len(w.buf)+len(p) < need {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		if err := w.resolve(p, true, false); err != nil {
			return 0, err
		}
		return w.Write(p)
	}
	return 0, ErrClosed
}

// resolve ends phasePending. next is the write about to follow (it
// counts for sniffing but is not written here); big says whether the body
// has reached MinLength or is a stream, flushed says it is a Flush that
// decides. It sends the headers and the buffered bytes.
func (w *Writer) resolve(next []byte, big, flushed bool) error {
	buf := w.buf
	defer func() {
		*w.bufp = buf[:0]
		w.c.bufs.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}()
	h := w.rw.Header()
	coding := w.coding
	if w.sniff {
		sample := buf
		if len(sample) < sniffLen && len(next) > 0 {
			sample = append(sample, next[:min(len(next), sniffLen-len(sample))]...)
		}
		if len(sample) == 0 {
			w.sendPlain() // nothing to sniff: net/http sends no type either
			return nil
		}
		ct := http.DetectContentType(sample)
		if !w.c.types.match(ct) {
			w.sendPlain() // net/http sniffs the same type itself
			return w.writeBuffered(buf)
		}
		h.Set("Content-Type", ct)
		var ok bool
		if coding, ok = w.chooseCoding(h); !ok {
			w.sendPlain()
			return w.writeBuffered(buf)
		}
	}
	if !big {
		if _, set := h["Content-Length"]; !set {
			h["Content-Length"] = []string{strconv.Itoa(len(buf))}
		}
		w.sendPlain()
		return w.writeBuffered(buf)
	}
	w.startEncode(coding, flushed)
	return w.writeBuffered(buf)
}

func (w *Writer) writeBuffered(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	_, err := w.Write(buf)
	return err
}

// Flush sends everything written so far to the client: a sync flush of
// the encoder, then a flush of the connection. A Flush while the decision
// is pending decides for compression (a flushed response is a stream).
// Errors are dropped, as http.Flusher requires; see FlushError.
func (w *Writer) Flush() { _ = w.FlushError() }

// FlushError is Flush returning the error (http.ResponseController
// prefers it).
func (w *Writer) FlushError() error {
	switch w.phase {
	case phaseHeader:
		w.WriteHeader(http.StatusOK)
		return w.FlushError()
	case phasePending:
		if err := w.resolve(nil, true, true); err != nil {
			return err
		}
		return w.FlushError()
	case phaseEncode:
		if w.err != nil {
			return w.err
		}
		if err := w.enc.Flush(); err != nil {
			w.err = err
			return err
		}
	case phaseClosed:
		return ErrClosed
	}
	return http.NewResponseController(w.rw).Flush()
}

// Hijack takes over the connection (a WebSocket upgrade): compression is
// bypassed and Close has nothing left to do. It fails where the wrapped
// writer cannot hijack (HTTP/2).
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.phase == phaseEncode {
		// Headers went out coded; bytes already in the encoder are
		// completed so the client can read what it was sent, and nothing
		// more goes through this Writer whether or not the hijack works.
		_ = w.finish()
		w.phase = phaseClosed
	}
	if w.phase == phasePending {
		_ = w.resolve(nil, false, false)
	}
	conn, brw, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.phase = phaseHijacked
	}
	return conn, brw, err
}

// ReadFrom copies r into the response. A response that is not compressed
// uses the wrapped writer's ReadFrom (sendfile for files on plaintext
// connections).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	if w.phase == phaseHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.phase == phasePending {
		bp := w.c.copyBufs.Get().(*[]byte)
		defer w.c.copyBufs.Put(bp)
		for w.phase == phasePending {
			n, err := r.Read(*bp)
			if n > 0 {
				m, werr := w.Write((*bp)[:n])
				total += int64(m)
				if werr != nil {
					return total, werr
				}
			}
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
		}
	}
	switch w.phase {
	case phasePlain, phaseHijacked:
		if rf, ok := w.rw.(io.ReaderFrom); ok {
			n, err := rf.ReadFrom(r)
			return total + n, err
		}
		n, err := io.Copy(writerOnly{w.rw}, r)
		return total + n, err
	case phaseEncode:
		bp := w.c.copyBufs.Get().(*[]byte)
		defer w.c.copyBufs.Put(bp)
		n, err := io.CopyBuffer(writerOnly{w}, r, *bp)
		return total + n, err
	}
	return total, ErrClosed
}

// writerOnly hides ReadFrom so io.Copy does not call back into it.
type writerOnly struct{ io.Writer }

// Close completes the response: it writes what is buffered (deciding on
// the size now known) or ends the coded stream, and releases the
// encoder. The wrapped writer is not closed (net/http ends the
// response when the handler returns).
func (w *Writer) Close() error {
	var err error
	switch w.phase {
	case phasePending:
		err = w.resolve(nil, len(w.buf) >= w.c.minLen, false)
		if w.phase == phaseEncode {
			err = w.finish()
		}
	case phaseEncode:
		err = w.finish()
	case phaseClosed:
		return nil
	}
	w.phase = phaseClosed
	return err
}

func (w *Writer) finish() error {
	err := w.err
	if cerr := w.enc.Close(); err == nil {
		err = cerr
	}
	w.releaseEncoder()
	w.done = true
	return err
}

// Abort releases the encoder without completing the body, for a handler
// that panicked or gave up: a cut-off response must not end with a valid
// coded trailer. It does nothing after Close.
func (w *Writer) Abort() {
	if w.phase == phaseClosed {
		return
	}
	if w.enc != nil {
		w.releaseEncoder()
	}
	if w.bufp != nil {
		w.c.bufs.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
	w.phase = phaseClosed
}

func (w *Writer) releaseEncoder() {
	w.c.pools.put(w.coding, w.enc, w.stateful)
	w.enc = nil
}

// isEventStream reports whether a Content-Type value is
// text/event-stream.
func isEventStream(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.Trim(ct, " \t"), "text/event-stream")
}

// hasNoTransform reports whether Cache-Control values carry no-transform.
func hasNoTransform(values []string) bool {
	for _, v := range values {
		for v != "" {
			var d string
			if i := strings.IndexByte(v, ','); i >= 0 {
				d, v = v[:i], v[i+1:]
			} else {
				d, v = v, ""
			}
			if strings.EqualFold(strings.Trim(d, " \t"), "no-transform") {
				return true
			}
		}
	}
	return false
}

// varyAcceptEncoding is the Vary value of a response that varies only by
// Accept-Encoding; shared, never written (AddVary copies before it appends).
var varyAcceptEncoding = []string{"Accept-Encoding"}

// AddVary adds Accept-Encoding to h's Vary unless it (or "*") is there,
// as a Writer does for a response whose type qualifies; a caller that
// decides not to compress such a response adds it too, since the answer
// still depends on Accept-Encoding. It allocates only to extend a Vary of
// the response's own, and never appends into that value's slice in place
// (it may be shared with the header it was copied from).
func AddVary(h http.Header) {
	vv := h["Vary"]
	if len(vv) == 0 {
		h["Vary"] = varyAcceptEncoding
		return
	}
	for _, v := range vv {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			f = strings.Trim(f, " \t")
			if f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h["Vary"] = append(vv[:len(vv):len(vv)], "Accept-Encoding")
}

// hasWeakTag reports whether the If-None-Match value inm lists the weak
// form of the strong entity tag et (W/"x" for "x").
func hasWeakTag(inm, et string) bool {
	for inm != "" {
		i := strings.Index(inm, "W/")
		if i < 0 {
			return false
		}
		inm = inm[i+2:]
		if strings.HasPrefix(inm, et) {
			return true
		}
	}
	return false
}

// weakenETag turns a strong ETag into a weak one: the coded bytes are not
// the ones the strong validator names (RFC 9110 §8.8.3.3).
func weakenETag(h http.Header) {
	et := h.Get("Etag")
	if len(et) >= 2 && et[0] == '"' {
		h.Set("Etag", "W/"+et)
	}
}

var _ http.ResponseWriter = (*Writer)(nil)
var _ http.Flusher = (*Writer)(nil)
var _ http.Hijacker = (*Writer)(nil)
var _ io.ReaderFrom = (*Writer)(nil)
