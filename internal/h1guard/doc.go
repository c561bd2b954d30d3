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
// the request path is [MarkerPath] and [Conn.Rejected] reports true (431
// when the reason is [ReasonHeadTooLarge]). The path alone proves nothing: a
// client may send it.
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
// A *Conn hides a wrapped *tls.Conn from net/http, so Request.TLS is nil:
// take the TLS state from NetConn in http.Server.ConnContext.
//
// Bare LF line endings are accepted in heads, as Go accepts them. Blank lines
// before a request line are handed through (Go discards them after a POST
// and answers 400 otherwise).
//
// # Upgrades
//
// A GET with an Upgrade field and a Connection field containing the
// "upgrade" token is an upgrade request. The guard stops inspecting the
// stream only if the protocol really switches, which net/http's server
// never does by itself: the handler must hijack the connection and answer
// 101. So after an upgrade request (and its body, if it has one) the guard
// holds what follows: Read hands out nothing more, waits for the client on
// the wrapped connection, keeps what arrives (at most Options.MaxHeadBytes
// plus one byte; then it stops reading) and returns 0, nil, which ends
// net/http's background read as a pipelined byte would. Meanwhile Write
// reads the status line of what the server writes, across as many writes
// as it takes, skipping informational responses (100 Continue, 103 Early
// Hints):
//
//   - a final status 101 on a hijacked connection (see below) switches the
//     guard to pass-through: [Conn.Passthrough] reports true, the held
//     bytes and every later byte are handed out unchanged, and
//     [Conn.Unwrap] returns the wrapped connection;
//   - any other final status (or bytes that are not an HTTP/1.x status
//     line) leaves the guard on: the held bytes are validated as the next
//     request, so a request pipelined behind the upgrade request is
//     answered, and one with ambiguous framing is rejected;
//   - a 101 on a connection that is not hijacked keeps the bytes held.
//     net/http treats a 101 that a handler writes without hijacking as a
//     final response and goes on reading requests; those never reach it:
//     its read fails and it closes the connection.
//
// Response bodies may reach the wrapped connection through
// [Conn.ReadFrom] (net/http's response.ReadFrom: sendfile(2) for a file on
// a plaintext socket) without passing Write. That is safe because net/http
// writes the response head, status line included, through Write before it
// calls ReadFrom; and while the response to an upgrade request is still
// unknown, ReadFrom itself copies through Write, so a hijacking handler
// that copies its 101 from a reader is seen.
//
// A 101 written in answer to any other request (a POST with Upgrade, say)
// switches nothing: the guard watches the response only to an upgrade
// request.
//
// The server must tell the guard about hijacks: call [Conn.Hijacked] from
// http.Server.ConnState on http.StateHijacked. Without that call no
// connection ever switches: the bytes after a 101 stay held and the
// upgraded stream stalls (it is never passed through unchecked). A caller
// that reads in a loop while the response is unknown gets 0, nil each time
// the hold is full.
//
// Which response answers the upgrade request: the first final status line
// written after the last byte of the upgrade head was handed out. That
// rests on how net/http serves a connection (Go 1.26 net/http/server.go):
// conn.serve runs one request at a time and writes and flushes the whole
// response to request N (response.finishRequest) before readRequest reads
// the head of request N+1; while a handler runs, only
// connReader.backgroundRead reads ahead, one byte at a time; body reads
// stop at the end of the body. The guard hands out an upgrade head in a
// Read that hands out nothing before it, so the Read that hands out its
// last byte comes from readRequest, after every earlier response. A
// server that reads further ahead than that would break the rule.
//
// After a hijack, read from the *Conn. Reading from [Conn.NetConn]
// directly is safe only after the switch and when [Conn.Buffered] is 0,
// since the guard may hold bytes that followed the upgrade head (a
// WebSocket client may send its first frame with the handshake).
package h1guard
