package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// upstreamClient is the HTTP/1.1 client to the backends of one upstream,
// built for the proxy's hot path in place of http.Transport: the request
// runs on the caller's goroutine from start to end (no read and write
// loops to hand off to), the request head is written straight from the
// proxy's own header logic, and the response is parsed strictly on a
// pooled bufio.Reader. Idle connections are kept per backend address,
// most recently used first, at most keepalive of them, for at most
// keepalive_timeout.
type upstreamClient struct {
	connectTimeout time.Duration
	maxIdle        int
	idleTimeout    time.Duration
	now            func() time.Time
	// dial opens a connection; tests and benchmarks replace it.
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu     sync.Mutex
	idle   map[string][]*upConn
	closed bool
}

// Limits of a backend's response head.
const (
	upBufSize       = 8 << 10  // bufio sizes, and the longest header line
	maxUpstreamHead = 64 << 10 // whole response head
	maxUpstreamHdrs = 256      // header lines
)

func newUpstreamClient(connectTimeout time.Duration, keepalive int, idleTimeout time.Duration, now func() time.Time) *upstreamClient {
	c := &upstreamClient{
		connectTimeout: connectTimeout,
		maxIdle:        keepalive,
		idleTimeout:    idleTimeout,
		now:            now,
		idle:           map[string][]*upConn{},
	}
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	c.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
	return c
}

// upRequest is what the client sends. head writes the header lines other
// than Host and the framing headers (Content-Length, Transfer-Encoding,
// Connection), which the client writes itself.
type upRequest struct {
	ctx    context.Context
	addr   string
	method string
	uri    string // request target, origin-form
	host   string
	head   headWriter
	// body is nil for none; contentLength is its declared length, or -1
	// to send it chunked.
	body          io.Reader
	contentLength int64
	trailer       http.Header
	headerTimeout time.Duration
	// replayable: the request may be sent again after the backend may
	// have seen it (idempotent without body, or a kept body that body
	// can rewind).
	replayable bool
	// start is when the client's request began, the clock reading the
	// pool's idle check uses; zero: read the clock.
	start time.Time
}

// canResend reports whether the request may be sent again after a
// connection failed before any response byte: an idempotent method, with
// no body or one that can be rewound (net/http's isReplayable).
func (r *upRequest) canResend() bool {
	return idempotent(r.method) && (r.body == nil || r.replayable)
}

// headWriter writes request header lines, each ending in CRLF.
type headWriter interface {
	writeHeaders(w *bufio.Writer)
}

// rewinder is a request body that can be sent again.
type rewinder interface{ rewind() }

// errStaleConn marks a reused connection that failed before any byte of a
// response arrived (the backend closed it while idle).
var errStaleConn = errors.New("reused upstream connection closed before the response")

// errUpstreamFraming is a response whose framing cannot be trusted.
type upstreamProtocolError struct{ msg string }

func (e *upstreamProtocolError) Error() string { return "upstream response: " + e.msg }

// roundTrip sends req and reads the response head. The returned response
// lives in the connection: it is valid until its Body is closed, which
// also returns the connection to the pool when the body was read to its
// exact end.
func (c *upstreamClient) roundTrip(req *upRequest) (*http.Response, error) {
	uc, _, err := c.get(req.ctx, req.addr, !req.canResend(), req.start)
	if err != nil {
		return nil, err
	}
	resp, err := uc.exchange(req)
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
	if !errors.Is(err, errStaleConn) || !req.canResend() {
		return nil, unwrapStale(err)
	}
	if req.body != nil {
		rw, ok := req.body.(rewinder)
		if !ok {
			return nil, unwrapStale(err)
		}
		rw.rewind()
	}
	uc, err = c.dialConn(req.ctx, req.addr)
	if err != nil {
		return nil, err
	}
	resp, err = uc.exchange(req)
	if err != nil {
		uc.close()
		return nil, unwrapStale(err)
	}
	return resp, nil
}

func unwrapStale(err error) error {
	var se *staleError
	if errors.As(err, &se) {
		return se.err
	}
	return err
}

// staleError wraps the failure of a reused connection before any response
// byte; it is errStaleConn for errors.Is.
type staleError struct{ err error }

func (e *staleError) Error() string        { return e.err.Error() }
func (e *staleError) Unwrap() error        { return e.err }
func (e *staleError) Is(target error) bool { return target == errStaleConn }

// get returns an idle connection to addr (most recent first) or dials one.
// With check (a request that cannot be sent twice, so cannot be retried
// if the connection turns out stale), a pooled connection is first probed
// for a close from the backend.
func (c *upstreamClient) get(ctx context.Context, addr string, check bool, now time.Time) (*upConn, bool, error) {
	if now.IsZero() {
		now = c.now()
	}
	c.mu.Lock()
	list := c.idle[addr]
	for len(list) > 0 {
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if c.idleTimeout > 0 && now.Sub(uc.idleSince) > c.idleTimeout {
			c.idle[addr] = list
			c.mu.Unlock()
			uc.conn.Close()
			c.mu.Lock()
			list = c.idle[addr]
			continue
		}
		c.idle[addr] = list
		c.mu.Unlock()
		if check && uc.br.Buffered() == 0 && !connAlive(uc.conn) {
			uc.conn.Close()
			c.mu.Lock()
			list = c.idle[addr]
			continue
		}
		return uc, true, nil
	}
	c.mu.Unlock()
	uc, err := c.dialConn(ctx, addr)
	return uc, false, err
}

func (c *upstreamClient) dialConn(ctx context.Context, addr string) (*upConn, error) {
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	conn = sockio.Wrap(conn)
	uc := &upConn{c: c, conn: conn, addr: addr}
	uc.br = bufio.NewReaderSize(conn, upBufSize)
	uc.bw = bufio.NewWriterSize(conn, upBufSize)
	uc.body.uc = uc
	return uc, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (c *upstreamClient) put(uc *upConn) {
	if c.maxIdle <= 0 {
		uc.conn.Close()
		return
	}
	now := c.now()
	uc.idleSince = now
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		uc.conn.Close()
		return
	}
	list := c.idle[uc.addr]
	// Drop expired connections from the cold end of the stack.
	var expired *upConn
	if len(list) > 0 && c.idleTimeout > 0 && now.Sub(list[0].idleSince) > c.idleTimeout {
		expired = list[0]
		copy(list, list[1:])
		list[len(list)-1] = nil
		list = list[:len(list)-1]
	}
	full := len(list) >= c.maxIdle
	if !full {
		list = append(list, uc)
	}
	c.idle[uc.addr] = list
	c.mu.Unlock()
	if expired != nil {
		expired.conn.Close()
	}
	if full {
		uc.conn.Close()
	}
}

// closeIdle closes every idle connection; with final, later returns are
// closed too.
func (c *upstreamClient) closeIdle(final bool) {
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
func (c *upstreamClient) idleCount(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}

// upConn is one connection to a backend with its buffers and the state of
// its current exchange.
type upConn struct {
	c         *upstreamClient
	conn      net.Conn
	addr      string
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time

	resp     http.Response
	body     upBody
	scratch  []byte
	hdr      http.Header // response header map, reused per exchange
	noReuse  bool
	isClosed bool
}

func (uc *upConn) close() {
	if !uc.isClosed {
		uc.isClosed = true
		uc.conn.Close()
	}
}

// done ends an exchange whose response was read to its end.
func (uc *upConn) done() {
	if uc.noReuse || uc.isClosed {
		uc.close()
		return
	}
	uc.resp = http.Response{}
	uc.c.put(uc)
}

// exchange writes the request and reads the response head.
//
// While it waits for the response it looks at the request's context every
// ctxPoll (a read deadline, no goroutine or context registration per
// request): a client that went away stops the wait within that time.
func (uc *upConn) exchange(req *upRequest) (*http.Response, error) {
	uc.noReuse = uc.c.maxIdle <= 0
	now := time.Now()
	var deadline time.Time
	if req.headerTimeout > 0 {
		deadline = now.Add(req.headerTimeout)
	}
	if req.body == nil {
		// One deadline for writing the head and the first wait: a
		// backend that does not read is as stuck as one that does not
		// answer.
		_ = uc.conn.SetDeadline(uc.wake(now, deadline, req.ctx))
	}
	werr := uc.writeRequest(req)
	if werr != nil {
		var be *bodyError
		if errors.As(werr, &be) {
			return nil, werr
		}
		// The backend may have answered early (413) and closed: try to
		// read what it sent.
		uc.noReuse = true
		_ = uc.conn.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := uc.readResponse(req)
		if err != nil {
			if uc.br.Buffered() == 0 {
				return nil, &staleError{err: werr}
			}
			return nil, werr
		}
		return resp, nil
	}
	if req.body != nil {
		// The header timeout counts from the end of the request, as
		// http.Transport's ResponseHeaderTimeout.
		now = time.Now()
		if req.headerTimeout > 0 {
			deadline = now.Add(req.headerTimeout)
		}
		_ = uc.conn.SetDeadline(uc.wake(now, deadline, req.ctx))
	}
	if err := uc.await(req.ctx, deadline); err != nil {
		return nil, err
	}
	resp, err := uc.readResponse(req)
	if err != nil {
		return nil, err
	}
	_ = uc.conn.SetDeadline(time.Time{})
	return resp, nil
}

// ctxPoll is how often a wait for a backend's response looks at the
// client request's context.
const ctxPoll = time.Second

// wake is the read deadline of the next wait: the header deadline, or
// sooner to look at ctx.
func (uc *upConn) wake(now, deadline time.Time, ctx context.Context) time.Time {
	if ctx == nil {
		return deadline
	}
	if w := now.Add(ctxPoll); deadline.IsZero() || w.Before(deadline) {
		return w
	}
	return deadline
}

// await waits for the first byte of the response; the read deadline is
// set. A reused connection that ends first is stale.
func (uc *upConn) await(ctx context.Context, deadline time.Time) error {
	for {
		_, err := uc.br.Peek(1)
		if err == nil {
			return nil
		}
		if err == io.EOF || isConnReset(err) {
			return &staleError{err: err}
		}
		if !isTimeout(err) || ctx == nil || ctx.Err() != nil {
			return err
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return err
		}
		_ = uc.conn.SetReadDeadline(uc.wake(now, deadline, ctx))
	}
}

func (uc *upConn) writeRequest(req *upRequest) error {
	bw := uc.bw
	bw.WriteString(req.method)
	bw.WriteByte(' ')
	bw.WriteString(req.uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.host)
	bw.WriteString("\r\n")
	req.head.writeHeaders(bw)
	if uc.noReuse {
		bw.WriteString("Connection: close\r\n")
	}
	chunked := false
	switch {
	case req.body == nil:
		if req.method == "POST" || req.method == "PUT" || req.method == "PATCH" {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.contentLength >= 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(uc.scratch[:0], req.contentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.trailer {
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if req.body != nil {
		if err := uc.writeBody(req, chunked); err != nil {
			bw.Reset(uc.conn)
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		bw.Reset(uc.conn)
		return err
	}
	return nil
}

func (uc *upConn) writeBody(req *upRequest, chunked bool) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var w io.Writer = uc.bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(uc.bw)
		w = cw
	}
	var n int64
	for {
		nr, rerr := req.body.Read(buf)
		if nr > 0 {
			n += int64(nr)
			if !chunked && n > req.contentLength {
				return &bodyError{err: errors.New("request body longer than its Content-Length")}
			}
			if req.headerTimeout > 0 {
				// A backend that takes nothing for that long is stuck;
				// the client's own pace is bounded by bodyReader.
				_ = uc.conn.SetWriteDeadline(time.Now().Add(req.headerTimeout))
			}
			if _, err := w.Write(buf[:nr]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var be *bodyError
			if !errors.As(rerr, &be) {
				rerr = &bodyError{err: rerr}
			}
			return rerr
		}
	}
	if !chunked {
		if n != req.contentLength {
			return &bodyError{err: io.ErrUnexpectedEOF}
		}
		return nil
	}
	if err := cw.Close(); err != nil {
		return err
	}
	for k, vv := range req.trailer {
		for _, v := range vv {
			if !validFieldValue(v) {
				continue
			}
			uc.bw.WriteString(k)
			uc.bw.WriteString(": ")
			uc.bw.WriteString(v)
			uc.bw.WriteString("\r\n")
		}
	}
	_, err := uc.bw.WriteString("\r\n")
	return err
}

// readResponse reads a response head (skipping 1xx interim responses) and
// sets up the body.
func (uc *upConn) readResponse(req *upRequest) (*http.Response, error) {
	first := true
	for range 10 {
		code, minor, err := uc.readStatusLine(first)
		if err != nil {
			return nil, err
		}
		first = false
		h, err := uc.readHeader(false)
		if err != nil {
			return nil, err
		}
		if code >= 100 && code < 200 {
			if code == http.StatusSwitchingProtocols {
				return nil, &upstreamProtocolError{"101 to a request that did not ask for an upgrade"}
			}
			continue
		}
		return uc.setupResponse(req, code, minor, h)
	}
	return nil, &upstreamProtocolError{"too many 1xx responses"}
}

// readStatusLine parses "HTTP/1.x NNN reason".
func (uc *upConn) readStatusLine(first bool) (code, minor int, err error) {
	line, err := uc.br.ReadSlice('\n')
	if err != nil {
		if first && len(line) == 0 && uc.br.Buffered() == 0 && (err == io.EOF || isConnReset(err)) {
			return 0, 0, &staleError{err: err}
		}
		if err == bufio.ErrBufferFull {
			return 0, 0, &upstreamProtocolError{"status line too long"}
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	line = trimEOL(line)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
		line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, &upstreamProtocolError{"malformed status line"}
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, 0, &upstreamProtocolError{"malformed status code"}
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return 0, 0, &upstreamProtocolError{"malformed status code"}
	}
	return code, int(line[7] - '0'), nil
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// readHeader parses header lines up to the empty line, strictly: no
// folded lines, no space before the colon, no control characters. All
// values of one head share one string allocation.
func (uc *upConn) readHeader(trailer bool) (http.Header, error) {
	type field struct {
		key        string
		start, end int
	}
	var fieldsArr [24]field
	fields := fieldsArr[:0]
	vals := uc.scratch[:0]
	total := 0
	for {
		line, err := uc.br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return nil, &upstreamProtocolError{"header line too long"}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		total += len(line)
		if total > maxUpstreamHead || len(fields) >= maxUpstreamHdrs {
			return nil, &upstreamProtocolError{"response head too large"}
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		colon := -1
		for i, b := range line {
			if b == ':' {
				colon = i
				break
			}
			if !isTokenByte(b) {
				return nil, &upstreamProtocolError{"invalid header name"}
			}
		}
		if colon <= 0 {
			return nil, &upstreamProtocolError{"malformed header line"}
		}
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		for _, b := range v {
			if b < ' ' && b != '\t' || b == 0x7f {
				return nil, &upstreamProtocolError{"invalid header value"}
			}
		}
		key := canonicalKey(line[:colon])
		start := len(vals)
		vals = append(vals, v...)
		fields = append(fields, field{key, start, len(vals)})
	}
	uc.scratch = vals[:0]
	all := string(vals)
	// The map is the connection's, reused: only the value slices are
	// handed on (copyResponse copies them into the client's header), and
	// nothing reads resp.Header after Body.Close.
	h := uc.hdr
	switch {
	case trailer:
		h = make(http.Header, len(fields))
	case h == nil:
		h = make(http.Header, 16)
		uc.hdr = h
	default:
		clear(h)
	}
	if len(fields) == 0 {
		return h, nil
	}
	slab := make([]string, len(fields))
	for i, f := range fields {
		v := all[f.start:f.end]
		if old, ok := h[f.key]; ok {
			h[f.key] = append(old, v)
			continue
		}
		slab[i] = v
		h[f.key] = slab[i : i+1 : i+1]
	}
	return h, nil
}

func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// commonKeys interns canonical names of frequent response headers, by
// their canonical and lower-case spellings.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Age", "Allow", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Security-Policy",
		"Content-Type", "Cross-Origin-Opener-Policy", "Date", "Etag", "Expires", "Keep-Alive",
		"Last-Modified", "Location", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade", "Vary",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "Proxy-Authenticate",
	} {
		m[k] = k
		lower := []byte(k)
		for i, b := range lower {
			if 'A' <= b && b <= 'Z' {
				lower[i] = b + 'a' - 'A'
			}
		}
		m[string(lower)] = k
	}
	return m
}()

func canonicalKey(b []byte) string {
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// setupResponse checks the framing of a final response and prepares its
// body. Conflicting or unknown framing is refused (502): a proxy that
// guessed could be desynchronised from the backend.
func (uc *upConn) setupResponse(req *upRequest, code, minor int, h http.Header) (*http.Response, error) {
	r := &uc.resp
	*r = http.Response{
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
	}
	if minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	conn := h["Connection"]
	if minor == 0 && !hasToken(conn, "keep-alive") || hasToken(conn, "close") {
		uc.noReuse = true
	}
	te := h["Transfer-Encoding"]
	cl := h["Content-Length"]
	b := &uc.body
	*b = upBody{uc: uc}
	noBody := req.method == "HEAD" || code == http.StatusNoContent || code == http.StatusNotModified
	var n int64 = -1
	if len(cl) > 0 {
		var err error
		if n, err = parseContentLength(cl); err != nil {
			return nil, err
		}
	}
	switch {
	case len(te) > 0:
		if len(cl) > 0 {
			return nil, &upstreamProtocolError{"both Transfer-Encoding and Content-Length"}
		}
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return nil, &upstreamProtocolError{"unsupported Transfer-Encoding"}
		}
		if minor == 0 {
			return nil, &upstreamProtocolError{"Transfer-Encoding in an HTTP/1.0 response"}
		}
		delete(h, "Transfer-Encoding")
		if noBody {
			b.mode = bodyNone
			break
		}
		b.mode = bodyChunked
		b.cr = httputil.NewChunkedReader(uc.br)
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
		if tr := h["Trailer"]; len(tr) > 0 {
			r.Trailer = http.Header{}
			for _, line := range tr {
				for _, k := range splitTokens(line) {
					k = textproto.CanonicalMIMEHeaderKey(k)
					switch k {
					case "Transfer-Encoding", "Trailer", "Content-Length":
						continue
					}
					r.Trailer[k] = nil
				}
			}
		}
	case n >= 0:
		if noBody {
			b.mode = bodyNone
			r.ContentLength = n
			if req.method != "HEAD" {
				r.ContentLength = 0
			}
			break
		}
		b.mode, b.remain = bodyFixed, n
		r.ContentLength = n
		if n == 0 {
			b.mode = bodyNone
		}
	case noBody:
		b.mode = bodyNone
		r.ContentLength = 0
		if req.method == "HEAD" {
			r.ContentLength = -1
		}
	default:
		b.mode = bodyUntilClose
		uc.noReuse = true
		r.ContentLength = -1
		r.Close = true
	}
	if b.mode == bodyNone {
		b.eof, b.clean = true, true
	}
	r.Body = b
	return r, nil
}

var chunkedTE = []string{"chunked"}

func parseContentLength(cl []string) (int64, error) {
	if len(cl) == 1 && cl[0] != "" && cl[0][0] != '+' {
		if n, err := strconv.ParseUint(cl[0], 10, 63); err == nil {
			return int64(n), nil
		}
	}
	var n int64 = -1
	for _, v := range cl {
		for _, part := range splitTokens(v) {
			m, err := strconv.ParseUint(part, 10, 63)
			if err != nil || part[0] == '+' {
				return 0, &upstreamProtocolError{"invalid Content-Length"}
			}
			if n >= 0 && int64(m) != n {
				return 0, &upstreamProtocolError{"conflicting Content-Length"}
			}
			n = int64(m)
		}
	}
	if n < 0 {
		return 0, &upstreamProtocolError{"invalid Content-Length"}
	}
	return n, nil
}

// splitTokens splits a comma-separated list, trimming spaces, dropping
// empty elements.
func splitTokens(s string) []string {
	var out []string
	for s != "" {
		var part string
		part, s, _ = cutByte(s, ',')
		part = trimOWS(part)
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

func cutByte(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// Body framing of a response.
const (
	bodyNone uint8 = iota
	bodyFixed
	bodyChunked
	bodyUntilClose
)

// upBody reads a response body with its exact framing. Close after the
// clean end returns the connection to the pool (unless it must close; the
// response lives in the connection, so not before Close); Close before
// the end closes the connection, except when the rest of a fixed-length
// body is already buffered.
type upBody struct {
	uc     *upConn
	mode   uint8
	remain int64
	cr     io.Reader
	eof    bool
	clean  bool // eof at the exact end of the body
	closed bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	uc := b.uc
	switch b.mode {
	case bodyFixed:
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err := uc.br.Read(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			b.finish()
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.fail()
		}
		return n, err
	case bodyChunked:
		n, err := b.cr.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				b.fail()
				return n, terr
			}
			b.finish()
			return n, io.EOF
		}
		if err != nil {
			b.fail()
		}
		return n, err
	case bodyUntilClose:
		n, err := uc.br.Read(p)
		if err == io.EOF {
			b.finish()
		} else if err != nil {
			b.fail()
		}
		return n, err
	}
	return 0, io.EOF
}

// readTrailer reads the trailer section after the last chunk into the
// response's Trailer.
func (b *upBody) readTrailer() error {
	h, err := b.uc.readHeader(true)
	if err != nil {
		return err
	}
	if len(h) == 0 {
		return nil
	}
	r := &b.uc.resp
	if r.Trailer == nil {
		r.Trailer = http.Header{}
	}
	for k, vv := range h {
		switch k {
		case "Transfer-Encoding", "Trailer", "Content-Length", "Host":
			continue
		}
		r.Trailer[k] = vv
	}
	return nil
}

func (b *upBody) finish() {
	if b.eof {
		return
	}
	b.eof, b.clean = true, true
	if b.mode == bodyUntilClose {
		b.uc.noReuse = true
	}
}

func (b *upBody) fail() {
	b.eof = true
	b.uc.close()
}

func (b *upBody) Close() error {
	if b.closed {
		return nil
	}
	if !b.eof && b.mode == bodyFixed && b.remain <= int64(b.uc.br.Buffered()) {
		_, _ = b.uc.br.Discard(int(b.remain))
		b.remain = 0
		b.finish()
	}
	b.closed = true
	if b.clean {
		b.uc.done()
		return nil
	}
	if !b.eof {
		b.eof = true
		b.uc.close()
	}
	return nil
}
