package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NetHTTP sends Requests with net/http's http.Transport, with the same
// semantics as Client: header timeout across 1xx responses (counted from
// the end of the request), 1xx handed to Request.Interim, the body gap
// timeout, cancellation. It builds one http.Header per request from
// Request.Header.
type NetHTTP struct {
	tr *http.Transport
}

// NewNetHTTP returns a NetHTTP. OnUnsolicited is not called: the
// Transport closes a connection holding bytes nobody asked for itself,
// and logs it with the standard logger.
func NewNetHTTP(o Options) *NetHTTP {
	dial := o.dialer()
	tr := &http.Transport{
		Proxy: nil, // never $HTTP_PROXY
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, err := dial(ctx, addr)
			if err != nil {
				return nil, &DialError{Addr: addr, Err: err}
			}
			return &guardConn{Conn: c}, nil
		},
		MaxIdleConnsPerHost:    o.MaxIdle,
		DisableKeepAlives:      o.MaxIdle <= 0,
		IdleConnTimeout:        o.IdleTimeout,
		DisableCompression:     true, // the client's Accept-Encoding is the backend's business
		MaxResponseHeaderBytes: maxHead,
	}
	// HTTP/1.1 only, as Client.
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	return &NetHTTP{tr: tr}
}

// settleWait bounds how long a reused connection may take to show that
// the Transport's read loop has nothing buffered (see guardConn).
const settleWait = 250 * time.Millisecond

// guardConn is a backend connection as the Transport holds it.
//
// The Transport returns a connection to its idle pool as soon as a
// response body has been read, and only then does the connection's read
// loop look for bytes left behind it ("Unsolicited response received on
// idle HTTP channel"). A request handed that connection in between is
// written on it, and the read loop takes the stray bytes for its answer:
// one client gets a response meant for nobody, or for another client.
//
// So when the Transport hands out a reused connection (httptrace
// GotConn, before anything is written), Do waits until the read loop is
// parked in a Read of the socket, which it does only with nothing
// buffered, or until the connection is closed (which the read loop does
// when it finds stray bytes). A connection that does neither within
// settleWait, or was closed, is poisoned: its first Write fails before a
// byte is sent, and the Transport sends the request again on another
// connection (guardedBody keeps what it has read until the request is
// written, so a body can be sent again).
type guardConn struct {
	net.Conn
	poisoned atomic.Bool

	mu      sync.Mutex
	reading bool          // a Read is in progress
	closed  bool          // Close was called
	wake    chan struct{} // closed when reading or closed becomes true
}

var errPoisoned = errors.New("upstream: reused connection was not idle: bytes nobody asked for, or closed")

func (c *guardConn) Read(p []byte) (int, error) {
	c.set(&c.reading, true)
	n, err := c.Conn.Read(p)
	c.set(&c.reading, false)
	return n, err
}

func (c *guardConn) Write(p []byte) (int, error) {
	if c.poisoned.Load() {
		return 0, errPoisoned
	}
	return c.Conn.Write(p)
}

func (c *guardConn) Close() error {
	c.set(&c.closed, true)
	return c.Conn.Close()
}

func (c *guardConn) set(f *bool, v bool) {
	c.mu.Lock()
	*f = v
	if v && c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
	c.mu.Unlock()
}

// idle waits up to d for the read loop to park in a Read or for the
// connection to close, and reports whether it is parked and open.
func (c *guardConn) idle(d time.Duration) bool {
	c.mu.Lock()
	if c.reading || c.closed {
		ok := !c.closed
		c.mu.Unlock()
		return ok
	}
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	wake := c.wake
	c.mu.Unlock()
	t := time.NewTimer(d)
	select {
	case <-wake:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reading && !c.closed
}

// gotConn checks a reused connection before the request is written on it.
func gotConn(info httptrace.GotConnInfo) {
	if gc, ok := info.Conn.(*guardConn); ok && info.Reused && !gc.idle(settleWait) {
		gc.poisoned.Store(true)
	}
}

// Do sends req with the Transport. The response stays valid after its
// Body is closed.
func (t *NetHTTP) Do(ctx context.Context, req *Request) (*http.Response, error) {
	h := make(http.Header, 16)
	if req.Header != nil {
		req.Header.WriteFields(headerMap(h))
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue // keep the Transport from adding its own
	}
	x := &netExchange{req: req, headerTimeout: req.HeaderTimeout}
	x.ctx, x.cancel = context.WithCancelCause(ctx)
	trace := &httptrace.ClientTrace{WroteRequest: x.wroteRequest, GotConn: gotConn}
	if req.Interim != nil {
		trace.Got1xxResponse = x.got1xx
	}
	out := (&http.Request{
		Method:     req.Method,
		URL:        targetURL(req.Addr, req.Target),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       req.Host,
		Close:      req.Close,
	}).WithContext(httptrace.WithClientTrace(x.ctx, trace))
	if req.Body != nil {
		x.body = &guardedBody{r: req.Body, x: x}
		out.Body, out.ContentLength = x.body, req.ContentLength
		if req.ContentLength < 0 {
			out.ContentLength = -1
			out.Trailer = req.Trailer
		}
		if rw, ok := req.Body.(Rewinder); ok && req.Replayable {
			out.GetBody = func() (io.ReadCloser, error) {
				rw.Rewind()
				return x.body, nil
			}
		} else {
			// The Transport sends a request again when its reused
			// connection failed before a byte was written (closed by
			// the backend, or poisoned): by then it has read at most
			// its write buffer of the body, which guardedBody keeps.
			x.body.keep = true
			out.GetBody = x.body.again
		}
	}
	if req.HeaderTimeout > 0 {
		x.timer = time.AfterFunc(req.HeaderTimeout, x.headTimeout)
	}
	resp, err := t.tr.RoundTrip(out)
	timedOut := x.endHead()
	if err != nil {
		x.end()
		switch {
		case timedOut:
			return nil, ErrHeaderTimeout
		case ctx.Err() != nil:
			return nil, ErrCanceled
		}
		var be *BodyError
		if errors.As(err, &be) {
			return nil, be
		}
		return nil, err
	}
	if timedOut {
		resp.Body.Close()
		x.end()
		return nil, ErrHeaderTimeout
	}
	resp.Body = &netBody{rc: resp.Body, x: x, gap: req.BodyTimeout}
	return resp, nil
}

// RoundTrip implements http.RoundTripper with the Transport as it is.
func (t *NetHTTP) RoundTrip(r *http.Request) (*http.Response, error) { return t.tr.RoundTrip(r) }

// CloseIdle closes every idle connection.
func (t *NetHTTP) CloseIdle() { t.tr.CloseIdleConnections() }

// Close closes every idle connection. The Transport cannot refuse later
// returns; the idle timeout closes them.
func (t *NetHTTP) Close() { t.tr.CloseIdleConnections() }

var emptyValue = []string{""}

// targetURL is a URL whose RequestURI is target exactly: target as the
// opaque part, except when it starts with "//" (an opaque "//x" is written
// as "http://x"), which goes in Path and RawPath.
func targetURL(addr, target string) *url.URL {
	u := &url.URL{Scheme: "http", Host: addr}
	if !strings.HasPrefix(target, "//") {
		u.Opaque = target
		return u
	}
	p, q, hasQuery := strings.Cut(target, "?")
	u.RawPath, u.RawQuery, u.ForceQuery = p, q, hasQuery && q == ""
	if up, err := url.PathUnescape(p); err == nil {
		u.Path = up
	} else {
		u.Path = p
	}
	return u
}

// netExchange is the state of one NetHTTP request. Its 1xx callback and
// timers run on other goroutines than Do's: mu orders them. ctx is the
// request's own context, derived from the caller's: the timers cancel it
// with their cause.
type netExchange struct {
	ctx           context.Context
	req           *Request
	headerTimeout time.Duration
	cancel        context.CancelCauseFunc
	body          *guardedBody

	mu       sync.Mutex
	timer    *time.Timer
	headDone bool
	timedOut bool
}

// wroteRequest restarts the header timeout when the request is written:
// it counts from the end of the request, as Client's does.
func (x *netExchange) wroteRequest(info httptrace.WroteRequestInfo) {
	if x.body != nil && info.Err == nil {
		x.body.forget()
	}
	x.progress()
}

// progress restarts the header timeout when the Transport reads more of
// the request body: a stall of the body write is bounded by it, as in
// Client.
func (x *netExchange) progress() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.timer != nil && !x.headDone && !x.timedOut {
		x.timer.Reset(x.headerTimeout)
	}
}

func (x *netExchange) headTimeout() {
	x.mu.Lock()
	if x.headDone {
		x.mu.Unlock()
		return
	}
	x.timedOut = true
	x.mu.Unlock()
	x.cancel(ErrHeaderTimeout)
}

func (x *netExchange) got1xx(code int, h textproto.MIMEHeader) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.headDone {
		// Do has returned: the caller's response writer is no longer
		// ours to write to.
		return nil
	}
	return x.req.Interim.Interim(code, http.Header(h))
}

// endHead marks the end of the wait for the head; it reports whether the
// header timeout fired.
func (x *netExchange) endHead() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.headDone = true
	if x.timer != nil {
		x.timer.Stop()
	}
	return x.timedOut
}

// end releases the exchange: the request body is detached (the Transport
// may still hold it), the context cancelled.
func (x *netExchange) end() {
	if x.body != nil {
		x.body.detach()
	}
	x.cancel(nil)
}

// guardedBody hands the request body to the Transport, which may read it
// on its own goroutine even after Do returned. Once detached it reads
// nothing more: the body belongs to the caller's request, which may be
// gone by then.
//
// With keep set it also keeps what it reads, up to keepMax bytes, until
// forget (the request was written): again then gives the body from its
// first byte, for the Transport to send on another connection.
type guardedBody struct {
	mu       sync.Mutex
	r        io.Reader
	x        *netExchange
	detached bool
	keep     bool
	kept     []byte
	replay   []byte // what again gives back before reading r again
}

// keepMax is more than the Transport can have read of a body before the
// first write to the connection (it fills its 4 KiB write buffer, head
// included, and flushes): a body past it was never going to be sent again,
// and keeping it would only copy an upload's first bytes for nothing.
const keepMax = 8 << 10

var (
	errDetached     = errors.New("upstream: request body read after the exchange ended")
	errBodyConsumed = errors.New("upstream: request body already sent in part; it cannot be sent again")
)

func (b *guardedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return 0, errDetached
	}
	if len(b.replay) > 0 {
		n := copy(p, b.replay)
		b.replay = b.replay[n:]
		return n, nil
	}
	n, err := b.r.Read(p)
	if n > 0 {
		if b.keep {
			if len(b.kept)+n <= keepMax {
				b.kept = append(b.kept, p[:n]...)
			} else {
				b.keep, b.kept = false, nil
			}
		}
		b.x.progress()
	}
	if err != nil && err != io.EOF {
		var be *BodyError
		if !errors.As(err, &be) {
			err = &BodyError{Err: err}
		}
	}
	return n, err
}

// again is the request's GetBody: the body from its first byte, while
// everything read of it is still kept.
func (b *guardedBody) again() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.keep {
		return nil, errBodyConsumed
	}
	b.replay = b.kept // still kept: the next connection may fail too
	return b, nil
}

// forget drops what is kept: the request is written.
func (b *guardedBody) forget() {
	b.mu.Lock()
	b.keep, b.kept = false, nil
	b.mu.Unlock()
}

// Close is a no-op: the caller owns the body.
func (b *guardedBody) Close() error { return nil }

func (b *guardedBody) detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

// netBody is a NetHTTP response body with the gap timeout: a timer runs
// only while a Read waits, and cancels the request when it fires.
type netBody struct {
	rc  io.ReadCloser
	x   *netExchange
	gap time.Duration
	t   *time.Timer
}

func (b *netBody) Read(p []byte) (int, error) {
	if b.gap > 0 {
		if b.t == nil {
			b.t = time.AfterFunc(b.gap, b.stalled)
		} else {
			b.t.Reset(b.gap)
		}
	}
	n, err := b.rc.Read(p)
	if b.t != nil {
		b.t.Stop()
	}
	if err != nil && err != io.EOF {
		switch cause := context.Cause(b.x.ctx); {
		case cause == ErrBodyTimeout:
			err = ErrBodyTimeout
		case cause != nil:
			err = ErrCanceled
		}
	}
	return n, err
}

func (b *netBody) stalled() { b.x.cancel(ErrBodyTimeout) }

func (b *netBody) Close() error {
	if b.t != nil {
		b.t.Stop()
	}
	err := b.rc.Close()
	b.x.end()
	return err
}
