package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// Options configure a Client or a NetHTTP.
type Options struct {
	// ConnectTimeout bounds a dial. Zero: no limit.
	ConnectTimeout time.Duration
	// MaxIdle is how many idle connections are kept per backend address.
	// Zero: none; every request goes on a new connection with
	// Connection: close.
	MaxIdle int
	// IdleTimeout is how long a connection may stay idle in the pool.
	// Zero: no limit.
	IdleTimeout time.Duration
	// Dial opens a connection to addr. Nil: TCP with ConnectTimeout and
	// keep-alive probes every 30 s.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Now is the clock of the idle accounting. Nil: time.Now.
	Now func() time.Time
	// OnUnsolicited, when set, is called each time a connection is closed
	// instead of reused because the backend sent bytes after the end of a
	// response (net/http's "Unsolicited response received on idle HTTP
	// channel"). Client only: http.Transport logs these itself.
	OnUnsolicited func(addr string)
	// OnResend, when set, is called each time Do sends a request once
	// more on a new connection because the first one ended before any
	// byte of a response (err says how). Client only: http.Transport
	// retries such requests without telling.
	OnResend func(addr string, err error)
}

// tcpKeepAlive is the keep-alive probe interval of backend connections:
// net.Dialer's default, stated so it does not change under us.
const tcpKeepAlive = 30 * time.Second

func (o *Options) dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: tcpKeepAlive}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Client is the hand-written HTTP/1.1 client (see the package doc). It is
// safe for concurrent use.
type Client struct {
	o    Options
	now  func() time.Time
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu     sync.Mutex
	idle   map[string][]*upConn // most recently used last
	closed bool
}

// Limits of a backend's response head.
const (
	bufSize  = 8 << 10  // bufio sizes, and the longest header line
	maxHead  = 64 << 10 // one response head
	maxLines = 256      // header lines of one head
	max1xx   = 10       // interim responses before the final one
)

// New returns a Client.
func New(o Options) *Client {
	c := &Client{o: o, now: o.Now, dial: o.dialer(), idle: map[string][]*upConn{}}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Do sends req and reads the response head. The response lives in the
// connection: it is valid until its Body is closed, which returns the
// connection to the pool when the body was read to its exact end. A
// pooled connection the backend had closed is replaced, and the request
// sent once more on a new one when it may be (canResend).
func (c *Client) Do(ctx context.Context, req *Request) (*http.Response, error) {
	uc, err := c.get(ctx, req.Addr, req.Start)
	if err != nil {
		return nil, err
	}
	resp, err := uc.exchange(ctx, req)
	if err == nil {
		return resp, nil
	}
	uc.close()
	// A connection that ended before any byte of a response: a pooled one
	// the backend had closed, or a new one it dropped (a server shutting
	// down resets the connections still in its accept queue). A request
	// that may be sent twice goes once more on a new connection —
	// net/http's rule for pooled connections, extended to new ones as
	// nginx's proxy_next_upstream error does for idempotent requests.
	if !errors.Is(err, errStaleConn) || !canResend(req) {
		return nil, unwrapStale(err)
	}
	if req.Body != nil {
		rw, ok := req.Body.(Rewinder)
		if !ok {
			return nil, unwrapStale(err)
		}
		rw.Rewind()
	}
	if c.o.OnResend != nil {
		c.o.OnResend(req.Addr, unwrapStale(err))
	}
	uc, err = c.dialConn(ctx, req.Addr)
	if err != nil {
		return nil, err
	}
	resp, err = uc.exchange(ctx, req)
	if err != nil {
		uc.close()
		if errors.Is(err, errStaleConn) {
			// Dropped again before any byte: the server is going away
			// (a restart closing its accept queue) or will not answer
			// this request; the caller may try another server.
			return nil, &noResponseError{unwrapStale(err)}
		}
		return nil, unwrapStale(err)
	}
	return resp, nil
}

// RoundTrip implements http.RoundTripper for plain http:// URLs: the
// header is sent as it is (no default User-Agent is added), 1xx responses
// go to the context's httptrace.ClientTrace.Got1xxResponse, and the
// request body is closed. Unlike a Do response, the response stays valid
// after its Body is closed.
func (c *Client) RoundTrip(r *http.Request) (*http.Response, error) {
	req, err := fromHTTP(r)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return detachResponse(resp, r), nil
}

// fromHTTP converts a RoundTrip request. It closes r.Body on error.
func fromHTTP(r *http.Request) (*Request, error) {
	if r.URL == nil || r.URL.Scheme != "http" || r.URL.Host == "" {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("upstream: RoundTrip needs an http:// URL with a host")
	}
	addr := r.URL.Host
	if r.URL.Port() == "" {
		addr = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	req := &Request{
		Addr:       addr,
		Method:     r.Method,
		Target:     r.URL.RequestURI(),
		Host:       host,
		Header:     HeaderFields(r.Header),
		Close:      r.Close,
		Replayable: r.GetBody != nil,
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	if r.Body != nil && r.Body != http.NoBody {
		b := &closingBody{rc: r.Body, get: r.GetBody}
		req.Body, req.ContentLength, req.Trailer = b, r.ContentLength, r.Trailer
		if r.ContentLength == 0 {
			req.ContentLength = -1 // net/http's "unknown" for a non-nil Body
		}
	}
	if t := httptrace.ContextClientTrace(r.Context()); t != nil && t.Got1xxResponse != nil {
		req.Interim = traceInterim{t}
	}
	return req, nil
}

// closingBody is a RoundTrip request body: closed at EOF (the
// RoundTripper contract), rewound through GetBody.
type closingBody struct {
	rc  io.ReadCloser
	get func() (io.ReadCloser, error)
}

func (b *closingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.rc.Close()
	}
	return n, err
}

func (b *closingBody) Rewind() {
	if b.get == nil {
		return
	}
	if rc, err := b.get(); err == nil {
		b.rc.Close()
		b.rc = rc
	}
}

type traceInterim struct{ t *httptrace.ClientTrace }

func (t traceInterim) Interim(code int, h http.Header) error {
	return t.t.Got1xxResponse(code, textproto.MIMEHeader(h))
}

// detachResponse copies a response out of its connection for RoundTrip
// callers, who may read it after closing the body.
func detachResponse(resp *http.Response, r *http.Request) *http.Response {
	out := *resp
	out.Header = resp.Header.Clone()
	out.Request = r
	out.Body = &trailerBody{ReadCloser: resp.Body, src: resp, dst: &out}
	return &out
}

// trailerBody copies the trailer into the detached response at EOF.
type trailerBody struct {
	io.ReadCloser
	src, dst *http.Response
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.src.Trailer != nil {
		b.dst.Trailer = b.src.Trailer.Clone()
	}
	return n, err
}

// get returns an idle connection to addr (most recent first) or dials one.
// An idle connection is checked first: it must not be past the idle
// timeout, the backend must not have closed it, and no byte may be
// waiting on it — bytes nobody asked for would be read as the answer to
// this request.
func (c *Client) get(ctx context.Context, addr string, now time.Time) (*upConn, error) {
	if now.IsZero() {
		now = c.now()
	}
	for {
		c.mu.Lock()
		list := c.idle[addr]
		if len(list) == 0 {
			c.mu.Unlock()
			break
		}
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		c.idle[addr] = list[:len(list)-1]
		c.mu.Unlock()
		if c.o.IdleTimeout > 0 && now.Sub(uc.idleSince) > c.o.IdleTimeout {
			uc.conn.Close()
			continue
		}
		if !c.usable(uc) {
			continue
		}
		return uc, nil
	}
	return c.dialConn(ctx, addr)
}

// usable checks an idle connection before use and closes it when it is
// not: closed by the backend, or with bytes waiting (counted).
func (c *Client) usable(uc *upConn) bool {
	st := idleOK
	if uc.br.Buffered() > 0 {
		st = idleData
	} else {
		st = uc.peek()
	}
	switch st {
	case idleOK:
		return true
	case idleData:
		c.unsolicited(uc.addr)
	}
	uc.conn.Close()
	return false
}

func (c *Client) unsolicited(addr string) {
	if c.o.OnUnsolicited != nil {
		c.o.OnUnsolicited(addr)
	}
}

func (c *Client) dialConn(ctx context.Context, addr string) (*upConn, error) {
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	conn = sockio.Wrap(conn)
	uc := &upConn{c: c, conn: conn, addr: addr}
	uc.br = bufio.NewReaderSize(conn, bufSize)
	uc.bw = bufio.NewWriterSize(conn, bufSize)
	uc.body.uc = uc
	uc.abortFn = uc.abort
	uc.bindPeek()
	return uc, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (c *Client) put(uc *upConn) {
	if c.o.MaxIdle <= 0 {
		uc.conn.Close()
		return
	}
	uc.idleSince = c.now()
	c.mu.Lock()
	list := c.idle[uc.addr]
	if c.closed || len(list) >= c.o.MaxIdle {
		c.mu.Unlock()
		uc.conn.Close()
		return
	}
	c.idle[uc.addr] = append(list, uc)
	c.mu.Unlock()
}

// Reap closes the idle connections that have been idle longer than the
// idle timeout at now, that the backend has closed, or that hold bytes
// nobody asked for.
func (c *Client) Reap(now time.Time) {
	var check, expired []*upConn
	c.mu.Lock()
	for addr, list := range c.idle {
		kept := list[:0]
		for _, uc := range list {
			if c.o.IdleTimeout > 0 && now.Sub(uc.idleSince) > c.o.IdleTimeout {
				expired = append(expired, uc)
				continue
			}
			kept = append(kept, uc)
		}
		clear(list[len(kept):])
		c.idle[addr] = kept
		check = append(check, kept...)
	}
	c.mu.Unlock()
	for _, uc := range expired {
		uc.conn.Close()
	}
	// Probe outside the lock; a connection found dead is removed if it is
	// still idle (a request may have taken it meanwhile: it then checks
	// it itself).
	for _, uc := range check {
		st := peekIdle(uc.conn)
		if st == idleOK {
			continue
		}
		if c.takeIdle(uc) {
			if st == idleData {
				c.unsolicited(uc.addr)
			}
			uc.conn.Close()
		}
	}
}

// takeIdle removes uc from the pool if it is still there.
func (c *Client) takeIdle(uc *upConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.idle[uc.addr]
	for i, x := range list {
		if x == uc {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			c.idle[uc.addr] = list[:len(list)-1]
			return true
		}
	}
	return false
}

// reapInterval is how often Run reaps: a quarter of the idle timeout, so
// a connection is closed at most 25 % past it, and never more often than
// every minReap.
func (c *Client) reapInterval() time.Duration {
	if c.o.IdleTimeout <= 0 {
		return reapNoTimeout
	}
	return max(c.o.IdleTimeout/4, minReap)
}

const (
	// minReap bounds how often Run wakes up for very short idle timeouts.
	minReap = 10 * time.Millisecond
	// reapNoTimeout is how often Run looks for connections the backend
	// closed when there is no idle timeout.
	reapNoTimeout = time.Minute
)

// Run reaps idle connections (Reap) every quarter of the idle timeout (at
// most every 10 ms, with no idle timeout every minute: connections the
// backend closed still go) until ctx ends. The caller owns the goroutine.
// With keep-alive off there is nothing to reap and Run returns at once.
func (c *Client) Run(ctx context.Context) {
	if c.o.MaxIdle <= 0 {
		return
	}
	t := time.NewTicker(c.reapInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Reap(c.now())
		}
	}
}

// CloseIdle closes every idle connection.
func (c *Client) CloseIdle() { c.closeIdle(false) }

// Close closes every idle connection, and every connection returned
// afterwards.
func (c *Client) Close() { c.closeIdle(true) }

func (c *Client) closeIdle(final bool) {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*upConn{}
	if final {
		c.closed = true
	}
	c.mu.Unlock()
	for _, list := range idle {
		for _, uc := range list {
			uc.conn.Close()
		}
	}
}

// idleCount is the number of idle connections to addr (tests).
func (c *Client) idleCount(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}

// State of an idle connection, from peekIdle.
const (
	idleOK     = iota // nothing to read: still open
	idleClosed        // the backend closed it, or it failed
	idleData          // bytes nobody asked for
)

var _ http.RoundTripper = (*Client)(nil)
