package proxy

import (
	"net/http"
	"time"
)

// Every write of a response to the client — the head and the first body
// bytes included, HTTP/1 and HTTP/2, proxied responses and Gatehouse's own
// pages — is bounded by timeouts.send (nginx's send_timeout): the write
// deadline is set through http.ResponseController before WriteHeader and
// set again before each write, so it is idle-based (a download that keeps
// moving is never cut) but no single write may block longer.
//
// On HTTP/1 the deadline is the connection's: a write past it fails and
// net/http closes the connection. On HTTP/2 it is the stream's: net/http
// resets the stream (RST_STREAM INTERNAL_ERROR) when it passes, and a
// write blocked on flow control — a client that advertised a zero window
// and never opens it — returns an error at once, so the handler returns
// and gives back its backend slot and upstream connection. HEADERS frames
// are not flow controlled; a connection whose socket takes no byte at all
// is closed by the connection-level write timeout (edgeserver,
// HTTP2Config.WriteByteTimeout), which is also the send timeout.

// sendBound is when the writes of one response must end, and how.
type sendBound struct {
	send time.Duration // 0: unbounded
	now  func() time.Time
	h2   bool
}

// sendBound is the bound of q's response.
func (q *request) sendBound() sendBound {
	return sendBound{send: q.rt.cfg.Timeouts.Send, now: q.e.now, h2: q.r.ProtoMajor == 2}
}

// arm bounds the next write (or the head net/http writes later) by the
// send timeout from now.
func (b sendBound) arm(rc *http.ResponseController) {
	if b.send > 0 {
		_ = rc.SetWriteDeadline(b.now().Add(b.send))
	}
}

// end finishes a bounded response before the handler returns. On HTTP/1
// what is still buffered (the head of a response without a body, the
// tail of a body) is flushed under the armed deadline, which is then
// cleared: it is the connection's, and the connection's next request must
// not inherit it (net/http writes its 100 Continue before the handler
// could arm anything). On HTTP/2 the deadline is the stream's and stays
// armed: it bounds the final frames net/http writes after the handler
// returns, and the stream's end disarms it.
func (b sendBound) end(rc *http.ResponseController) error {
	if b.h2 || b.send <= 0 {
		return nil
	}
	err := rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
	return err
}
