package edgeserver

import (
	"net"
	"net/http"
	"sync/atomic"
)

// HTTP/2 settings Gatehouse sets on net/http's server (the others keep
// net/http's defaults; see Server).
const (
	// h2MaxReadFrameSize is the largest frame a client may send: the
	// protocol's default and minimum, as nginx advertises. net/http would
	// accept 1 MiB frames, and its frame reader keeps a buffer as large as
	// the largest frame read, for the connection's life: one 1 MiB
	// CONTINUATION or unknown frame per connection would pin a megabyte
	// each. Request bodies are limited by flow control, not frame size.
	h2MaxReadFrameSize = 16 << 10
	// h2HeadFactor is how far over the head limit an HTTP/2 header block
	// may go and still be decoded, so that it is answered 431 as on
	// HTTP/1 (see ServerOptions.MaxHeaderBytes): four times, 80 KiB with
	// the default limit, covers any head a real client sends by mistake
	// (a cookie too many); beyond it, net/http closes the connection.
	h2HeadFactor = 4
)

// headSlack is added to MaxHeaderBytes for the request line and the
// framing bytes of the head, as net/http does for HTTP/1.
const headSlack = 4 << 10

// headLimit is the longest request head accepted with maxHeaderBytes.
func headLimit(maxHeaderBytes int) int {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return maxHeaderBytes + headSlack
}

// h2Conn is the rapid-reset accounting of one HTTP/2 connection. A request
// (stream) ends either complete or cancelled — its context ended while the
// handler still ran: the client's RST_STREAM, the server resetting a stream
// stuck on flow control past the send timeout, or the connection going
// away. Cancellations are only counted once the connection proves alive by
// starting another request (a closed connection starts none), so a
// connection's close never counts against it; a connection whose counted
// resets exceed its completed requests by more than the budget is closed
// at its next request, which is refused.
type h2Conn struct {
	srv    *Server
	raw    net.Conn // under TLS: closing it ends the connection and every stream
	budget int64    // 0: never close

	maxHead int // request head limit in bytes (headLimit)

	pending   atomic.Int64 // cancellations not yet counted
	resets    atomic.Int64
	completed atomic.Int64
	closed    atomic.Bool
}

// StreamStart is called when a request starts. It reports false when the
// request must not be served: its HTTP/2 connection has spent its reset
// budget and is being closed (the handler sends nothing; every other
// stream of the connection is cancelled). On HTTP/1 it always reports
// true.
func (ci *ConnInfo) StreamStart() bool {
	h := ci.h2
	if h == nil {
		return true
	}
	if h.closed.Load() {
		return false
	}
	n := h.pending.Swap(0)
	if n == 0 {
		return true
	}
	// This request arrived on the connection after those streams ended:
	// they were reset on a live connection.
	resets := h.resets.Add(n)
	m := h.srv.o.Metrics
	m.h2Resets.WithLabelValues(h.srv.o.Name).Add(float64(n))
	completed := h.completed.Load()
	if h.budget <= 0 || resets-completed <= h.budget {
		return true
	}
	if h.closed.CompareAndSwap(false, true) {
		m.h2Closed.WithLabelValues(h.srv.o.Name, "resets").Inc()
		h.srv.o.Logger.Info("http2 connection closed: too many cancelled requests",
			"listener", h.srv.o.Name, "client", ci.Peer, "resets", resets, "completed", completed, "budget", h.budget)
		h.raw.Close()
	}
	return false
}

// StreamEnd is called when a request's handler returns; cancelled reports
// whether the request's context had ended by then (the client reset the
// stream before the response was complete). On HTTP/1 it does nothing.
func (ci *ConnInfo) StreamEnd(cancelled bool) {
	h := ci.h2
	if h == nil {
		return
	}
	if cancelled {
		h.pending.Add(1)
	} else {
		h.completed.Add(1)
	}
}
