package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/sendbound"
)

// Compression of responses (package compress), on routes whose compress
// key allows it:
//
//   - One compress.Compressor per generation, from [compression]; its
//     encoders count against the process's compress.EncoderLimit
//     (Deps.Encoders), which every generation shares, so a reload does not
//     double the cap while the old one's streams drain.
//   - The decision is made when the response head is complete: for a
//     proxied response in copyResponse (after the header rules, the
//     sticky cookie and Gatehouse's own fields), for a file in
//     fileWriter.WriteHeader (after the route's rules). compressWriter
//     turns away at once, without allocating, what compress would pass
//     through untouched or cannot shrink: a client that accepts no coding
//     (no Accept-Encoding at all: no Vary either, as Caddy's encode), a
//     status without a compressible body (1xx, 101, 204, 206), a body
//     already encoded (a precompressed sibling, Django's GZipMiddleware),
//     a Content-Range, a type not on the list, a response that declares
//     trailers (a digest trailer would describe bytes we changed), a file
//     over max_file_size. A compressible type whose body is known to be
//     shorter than min_length, or that this client takes uncoded, only
//     gets "Vary: Accept-Encoding". Everything else goes through a
//     compress.Writer, which applies the package's rules (no-transform,
//     sniffing a missing type, streams, the encoder cap, weak ETags on
//     304 and HEAD).
//   - The compress.Writer writes to a sendbound.Counter over the client's
//     writer, so the access log's bytes are those sent (nginx's
//     $body_bytes_sent), and http.ResponseController reaches the real
//     writer through the Unwrap of both (the send bound's deadlines,
//     flushes). Every Flush goes through the encoder first, so an event
//     stream arrives event by event.
//   - A response the backend broke off is aborted (compress.Writer.Abort)
//     before panic(http.ErrAbortHandler): the client never gets a valid
//     coded ending for a cut-off body. Every path that wraps releases the
//     encoder (Close or Abort), or the process's cap would shrink.
//   - Gatehouse's own error pages are not compressed: the built-in ones
//     are under min_length, and a site's pages are sent mostly to
//     scanners' 404s, which should not cost encoder CPU.
//   - The WebSocket path never gets here (it hijacks).

// newCompressor builds a generation's Compressor from cc, its encoders
// counted against limit.
func newCompressor(cc config.Compression, limit *compress.EncoderLimit) (*compress.Compressor, error) {
	o := compress.Options{
		Types:       cc.Types,
		MinLength:   cc.MinLength,
		GzipLevel:   cc.GzipLevel,
		ZstdLevel:   cc.ZstdLevel,
		BrotliLevel: cc.BrotliLevel,
		Limit:       limit,
	}
	if o.MinLength == 0 {
		o.MinLength = -1 // config's 0: every non-empty body
	}
	for _, name := range cc.Encodings {
		e, ok := compress.ParseEncoding(name)
		if !ok || e == compress.Identity {
			return nil, fmt.Errorf("encodings: unknown coding %q", name)
		}
		o.Encodings = append(o.Encodings, e)
	}
	return compress.New(o)
}

// noMaxLength is compressWriter's maxLength for proxied responses.
const noMaxLength = -1

// mayCompress reports whether a response to q may be compressed by comp
// at all: compression is on for the route and the client accepts some
// encoding. compressWriter looks at the response only when it may.
func (q *request) mayCompress(comp *compress.Compressor) bool {
	return comp != nil && len(q.r.Header["Accept-Encoding"]) != 0
}

// compressWriter returns the compress.Writer a response of status code
// with header h (complete, but for what compress changes) is to be sent
// through, or nil when it goes out as it is (see the notes above).
// length is the body's length (-1: unknown), maxLength the longest body
// compressed (noMaxLength: any), trailers whether it declares trailers.
// The caller sends the status through the returned Writer and ends it
// with Close or Abort; q.sent counts what reaches the client.
func (q *request) compressWriter(comp *compress.Compressor, h http.Header, code int, length, maxLength int64, trailers bool) *compress.Writer {
	if !q.mayCompress(comp) {
		return nil
	}
	switch {
	case code < 200 || code == http.StatusNoContent || code == http.StatusPartialContent:
		return nil
	case trailers:
		return nil
	case maxLength != noMaxLength && (maxLength == 0 || length > maxLength):
		return nil
	}
	if ce := h["Content-Encoding"]; len(ce) > 0 && !strings.EqualFold(ce[0], "identity") {
		return nil
	}
	if len(h["Content-Range"]) > 0 {
		return nil
	}
	ct, hasType := h["Content-Type"]
	if hasType && (len(ct) == 0 || !comp.Compressible(ct[0])) {
		return nil
	}
	switch {
	case code == http.StatusNotModified:
		// A 304 has no type when it comes from Django or
		// http.ServeContent. The Writer gives one that revalidates a
		// response we compressed (If-None-Match names the weak tag we
		// made) the Vary and weak ETag that response had; other 304s of
		// unknown type it leaves alone, so they are not wrapped.
		if !hasType && !strings.Contains(headerValue(q.r.Header, "If-None-Match"), "W/") {
			return nil
		}
	case !hasType:
		if q.r.Method == http.MethodHead {
			return nil // no body to sniff a type from
		}
		// compress sniffs the type as net/http would.
	case q.r.Method == http.MethodHead:
		// The Writer gives the head the Vary and weak ETag a GET's
		// compressed answer would have.
	case length >= 0 && length < int64(q.rt.compMinLength):
		compress.AddVary(h)
		return nil
	default:
		if e, _ := comp.Negotiate(q.r); e == compress.Identity {
			compress.AddVary(h)
			return nil
		}
	}
	q.sent = sendbound.Counter{W: q.w}
	return comp.Wrap(&q.sent, q.r)
}

// contentLength is h's Content-Length, or -1.
func contentLength(h http.Header) int64 {
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}
