// Package h1guard rejects HTTP/1.x requests with ambiguous framing before
// net/http sees them.
//
// Go's HTTP/1.1 server accepts some requests that a reverse proxy must refuse
// (RFC 9112 §6, request smuggling): it drops Content-Length when
// Transfer-Encoding: chunked is also present, and answers 501 rather than 400
// to other transfer codings. A [Conn] wraps the accepted (or TLS-decrypted)
// connection and follows the request framing on the inbound byte stream,
// request after request. Every request head is validated before any of its
// bytes are handed to the caller of Read. A bad head is never handed out:
// the guard hands out the synthetic request
//
//	GET /.gatehouse/rejected HTTP/1.1
//	Host: gatehouse.invalid
//	Connection: close
//
// instead, and io.EOF on every later Read. The HTTP handler gets the *Conn
// through http.Server.ConnContext and answers 400 with Connection: close when
// the request path is [MarkerPath] and [Conn.Rejected] reports true. The path
// alone proves nothing: a client may send it.
//
// What is rejected (the reason strings are those returned by Rejected):
//
//   - a request line that is not METHOD SP target SP HTTP/1.0 or HTTP/1.1, a
//     CONNECT request, an asterisk target on a method other than OPTIONS, an
//     origin-form path with a malformed percent escape, an absolute-form
//     target that is not http(s)://host[:port] followed by a path or query;
//   - a NUL, a bare CR or another control character anywhere in the head
//     (HTAB is allowed in field values; bytes ≥ 0x80 in field values only);
//   - obs-fold, whitespace between a field name and the colon, a field line
//     without a colon or with a name that is not a token;
//   - more than one Transfer-Encoding field, any value other than "chunked",
//     Transfer-Encoding together with Content-Length, Transfer-Encoding on
//     HTTP/1.0;
//   - a Content-Length that is not 1 to 18 decimal digits (a comma list is
//     rejected even when its members agree, as Go would reject it too), or
//     several Content-Length fields that are not byte-for-byte equal;
//   - no Host field on HTTP/1.1, or several Host fields;
//   - a head (leading blank lines included) longer than Options.MaxHeadBytes.
//
// Bodies pass through. A Content-Length body costs no per-byte work. A
// chunked body is scanned: chunk-size lines (at most 15 hex digits, optional
// extensions, no whitespace before ';', CRLF only), the CRLF after each
// chunk's data, and the trailer section up to the empty line. The scanner is
// never more lenient than Go's own chunked reader, including Go's limit on
// chunk overhead, so both always agree on where a body ends. A framing error
// inside a chunked body cannot be turned into a marker request because the
// head was already handed on: the guard records the reason, hands out the
// bytes before the error and then fails every Read with [ErrRejected]. The
// backend may therefore have seen the start of a body that never completes.
//
// After a GET with an Upgrade field and a Connection field containing the
// "upgrade" token (and after its body, if it has one) the guard stops
// inspecting the stream: [Conn.Passthrough] reports true and every later byte
// is handed out unchanged, which is what a hijacked WebSocket needs. The
// caller must then close the connection unless it switches protocols (101).
// Only GET switches the guard to passthrough, so a handler must not let a
// 101 through for any other request. After a hijack, read from the *Conn;
// reading from [Conn.NetConn] directly is safe only when [Conn.Buffered] is
// 0, since the guard may already hold bytes that followed the upgrade head.
//
// A *Conn hides a wrapped *tls.Conn from net/http, so Request.TLS is nil:
// take the TLS state from NetConn in http.Server.ConnContext.
//
// Bare LF line endings are accepted in heads, as Go accepts them. Blank lines
// before a request line are handed through (Go discards them after a POST
// and answers 400 otherwise).
package h1guard
