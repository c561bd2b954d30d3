// Package sendbound bounds every write of a response to the client by the
// send timeout (nginx's send_timeout), and copies bodies and files under
// that bound.
//
// Every write of a response to the client — the first one, which carries
// the head, included — over HTTP/1 and HTTP/2, for proxied responses and
// Gatehouse's own pages, is bounded by timeouts.send (nginx's
// send_timeout): the write deadline is set through http.ResponseController
// before each write or flush, so no single write may block longer, while
// a download or an event stream that keeps moving is never cut.
// net/http's WriteHeader writes nothing (for a final status): the head
// goes out with the first write or flush, or when the handler returns,
// and each of those is bounded.
//
// On HTTP/1 the deadline is the connection's: a write past it fails and
// net/http closes the connection. Where the connection keeps the bound
// itself (edgeserver.ConnInfo.SendBound: a socket written through
// internal/sockio, whose write timeout is the send timeout), a Bound with
// Conn set sets no deadline: each write to the socket that has to wait
// may wait at most the send timeout, as with nginx's send_timeout, and a
// write that finds buffer space (every write of a small response) costs
// nothing for it. That is plaintext only: over TLS a socket write is one
// record, a fraction of a response's write, so the response keeps its
// own deadlines. On HTTP/2 it is the stream's: when it
// passes, net/http resets the stream (RST_STREAM INTERNAL_ERROR) and a
// write blocked on flow control — a client that advertised a zero window
// and never opens it — returns an error at once, so the handler returns
// and gives back its backend slot and upstream connection. The stream's
// deadline is a timer that resets the stream whether or not a write is
// running, so between writes (while the handler waits for the backend's
// next bytes) it is disarmed. HEADERS frames are not flow controlled; a
// connection whose socket takes no byte at all is closed by the
// connection-level write timeout (edgeserver, HTTP2Config.WriteByteTimeout),
// which is also the send timeout.
//
// [Bound] sets and clears the deadlines, [Bound.Copy] copies a body (a
// backend's response) write by write, [Bound.SendFile] hands a file to
// net/http in pieces of [FileChunk] so sendfile(2) still moves the bytes,
// and [Counter] counts the bytes that reach the client under a writer that
// changes them (a compressor). The package keeps no state of its own.
package sendbound
