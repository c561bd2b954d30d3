package proxy

import (
	"net/http"
	"time"
)

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
// net/http closes the connection. On HTTP/2 it is the stream's: when it
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

// sendBound is how the writes of one response are bounded.
type sendBound struct {
	send time.Duration // 0: unbounded
	now  func() time.Time
	h2   bool
}

// sendBound is the bound of q's response.
func (q *request) sendBound() sendBound {
	return sendBound{send: q.rt.cfg.Timeouts.Send, now: q.e.now, h2: q.r.ProtoMajor == 2}
}

// arm bounds the next write or flush by the send timeout from now.
func (b sendBound) arm(rc *http.ResponseController) {
	if b.send > 0 {
		_ = rc.SetWriteDeadline(b.now().Add(b.send))
	}
}

// idle follows a write after which the handler waits for more to send:
// an HTTP/2 stream's deadline is disarmed so the wait does not count. An
// HTTP/1 connection's deadline only fails writes, and the next write
// re-arms it.
func (b sendBound) idle(rc *http.ResponseController) {
	if b.h2 && b.send > 0 {
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

// end bounds what is written when the handler returns. On HTTP/1 what is
// still buffered (the head of a response without a body, the tail of a
// body) is flushed under the deadline, which is then cleared: it is the
// connection's, and the connection's next request must not inherit it
// (net/http writes its 100 Continue before the handler could arm
// anything). On HTTP/2 the deadline stays armed on the stream: it bounds
// the frames net/http writes after the handler returns (the head of a
// response without a body, the buffered tail, END_STREAM), and the
// stream's end disarms it.
//
// armed reports that the response's last write was bounded by arm and
// nothing was waited for since (the body ended with it): that bound,
// set a moment ago, is the one end would set, and is kept rather than
// set again (on HTTP/2 every setting is a message to the connection's
// serve loop).
func (b sendBound) end(rc *http.ResponseController, armed bool) error {
	if b.send <= 0 {
		return nil
	}
	if !armed {
		b.arm(rc)
	}
	if b.h2 {
		return nil
	}
	err := rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
	return err
}
