package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upConn is one connection to a backend with its buffers and the state of
// its current exchange.
type upConn struct {
	c         *Client
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

	// Cancellation of the current exchange: stop unregisters the
	// context.AfterFunc that runs abortFn (abort, bound once per
	// connection so registering costs no closure); aborted is set by it.
	stop    func() bool
	abortFn func()
	aborted atomic.Bool
	// bodyTimeout is the current response body's read gap limit.
	bodyTimeout time.Duration

	// The check before reuse (peek, bound by bindPeek): the raw socket
	// (nil: not one, never checked), the callback and its state.
	raw       syscall.RawConn
	peekFn    func(fd uintptr) bool
	peekState int
	peekBuf   [1]byte
}

// aLongTimeAgo is a deadline in the past: it wakes every blocked read and
// write of a connection at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch makes the cancellation of ctx end the exchange: a blocked read or
// write returns at once. A context that can never be cancelled costs
// nothing.
func (uc *upConn) watch(ctx context.Context) {
	uc.aborted.Store(false)
	uc.stop = nil
	if ctx.Done() != nil {
		uc.stop = context.AfterFunc(ctx, uc.abortFn)
	}
}

// abort runs on the goroutine context.AfterFunc starts.
func (uc *upConn) abort() {
	uc.aborted.Store(true)
	_ = uc.conn.SetDeadline(aLongTimeAgo)
}

// unwatch ends the watch of the exchange's context. If the abort has run
// (or is running), the connection's deadlines are no longer the
// exchange's own: it is not reused.
func (uc *upConn) unwatch() {
	if uc.stop != nil {
		if !uc.stop() {
			uc.noReuse = true
		}
		uc.stop = nil
	}
}

// setDeadline and setReadDeadline set a deadline unless the exchange was
// aborted, which keeps it in the past: abort may run between the two
// calls, so the flag is checked after the deadline is set.
func (uc *upConn) setDeadline(t time.Time) {
	_ = uc.conn.SetDeadline(t)
	if uc.aborted.Load() {
		_ = uc.conn.SetDeadline(aLongTimeAgo)
	}
}

func (uc *upConn) setReadDeadline(t time.Time) {
	_ = uc.conn.SetReadDeadline(t)
	if uc.aborted.Load() {
		_ = uc.conn.SetDeadline(aLongTimeAgo)
	}
}

func (uc *upConn) setWriteDeadline(t time.Time) {
	_ = uc.conn.SetWriteDeadline(t)
	if uc.aborted.Load() {
		_ = uc.conn.SetDeadline(aLongTimeAgo)
	}
}

// readErr names a failed read or write: cancelled, timed out (as timeout),
// or err itself.
func (uc *upConn) readErr(err error, timeout error) error {
	if uc.aborted.Load() {
		return ErrCanceled
	}
	if isTimeout(err) {
		return timeout
	}
	return err
}

func (uc *upConn) close() {
	uc.unwatch()
	if !uc.isClosed {
		uc.isClosed = true
		uc.conn.Close()
	}
}

// done ends an exchange whose response was read to its end. The
// connection goes back to the pool only if nothing follows the response:
// a byte already buffered past its end was sent by the backend unasked,
// and would be read as the answer to the next request.
func (uc *upConn) done() {
	uc.unwatch()
	if !uc.noReuse && !uc.isClosed && uc.br.Buffered() > 0 {
		uc.c.unsolicited(uc.addr)
		uc.noReuse = true
	}
	if uc.noReuse || uc.isClosed {
		uc.close()
		return
	}
	uc.resp = http.Response{}
	uc.c.put(uc)
}

// earlyAnswerWait is how long a backend that stopped reading the request
// (it answered early, e.g. 413, and closed) is given to deliver that
// answer.
const earlyAnswerWait = time.Second

// exchange writes the request and reads the response head.
func (uc *upConn) exchange(ctx context.Context, req *Request) (*http.Response, error) {
	uc.noReuse = uc.c.o.MaxIdle <= 0 || req.Close
	uc.watch(ctx)
	var deadline time.Time
	if req.HeaderTimeout > 0 {
		deadline = time.Now().Add(req.HeaderTimeout)
	}
	if req.Body == nil {
		// One deadline for writing the head and the wait: a backend that
		// does not read is as stuck as one that does not answer.
		uc.setDeadline(deadline)
	}
	werr := uc.writeRequest(req)
	if werr != nil {
		var be *BodyError
		if errors.As(werr, &be) {
			return nil, werr
		}
		if uc.aborted.Load() {
			return nil, ErrCanceled
		}
		// The backend may have answered early (413) and closed: read
		// what it sent.
		uc.noReuse = true
		uc.setReadDeadline(time.Now().Add(earlyAnswerWait))
		resp, err := uc.readResponse(req)
		if err != nil {
			werr = uc.readErr(werr, ErrHeaderTimeout)
			if uc.br.Buffered() == 0 && werr != ErrHeaderTimeout && werr != ErrCanceled {
				// Refused before a byte came back: the connection was
				// dead (stale).
				return nil, &staleError{err: werr}
			}
			return nil, werr
		}
		return resp, nil
	}
	if req.Body != nil {
		// The header timeout counts from the end of the request, as
		// http.Transport's ResponseHeaderTimeout.
		if req.HeaderTimeout > 0 {
			deadline = time.Now().Add(req.HeaderTimeout)
		}
		uc.setDeadline(deadline)
	}
	// The deadline stays for every 1xx response up to the final head.
	return uc.readResponse(req)
}

func (uc *upConn) writeRequest(req *Request) error {
	bw := uc.bw
	WriteHead(bw, req.Method, req.Target, req.Host, req.Header)
	if uc.noReuse {
		bw.WriteString("Connection: close\r\n")
	}
	chunked := false
	switch {
	case req.Body == nil:
		if req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH" {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength >= 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(uc.scratch[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
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
	if req.Body != nil {
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

// BodyError wraps a failure reading the request body (the caller's
// source), so it can be told apart from a backend failure. Limit says the
// body grew past a limit the source enforces.
type BodyError struct {
	Limit bool
	Err   error
}

func (e *BodyError) Error() string {
	if e.Limit {
		return "request body too large"
	}
	return "reading request body: " + e.Err.Error()
}
func (e *BodyError) Unwrap() error { return e.Err }

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (uc *upConn) writeBody(req *Request, chunked bool) error {
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
		nr, rerr := req.Body.Read(buf)
		if nr > 0 {
			n += int64(nr)
			if !chunked && n > req.ContentLength {
				return &BodyError{Err: errors.New("request body longer than its Content-Length")}
			}
			if req.HeaderTimeout > 0 {
				// A backend that takes nothing for that long is stuck;
				// the client's own pace is bounded by the body source.
				uc.setWriteDeadline(time.Now().Add(req.HeaderTimeout))
			}
			if _, err := w.Write(buf[:nr]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var be *BodyError
			if !errors.As(rerr, &be) {
				rerr = &BodyError{Err: rerr}
			}
			return rerr
		}
	}
	if !chunked {
		if n != req.ContentLength {
			return &BodyError{Err: io.ErrUnexpectedEOF}
		}
		return nil
	}
	if err := cw.Close(); err != nil {
		return err
	}
	for k, vv := range req.Trailer {
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

// readResponse reads a response head, handing 1xx interim responses to
// req.Interim, and sets up the body.
func (uc *upConn) readResponse(req *Request) (*http.Response, error) {
	first := true
	for range max1xx + 1 {
		code, minor, err := uc.readStatusLine(first)
		if err != nil {
			return nil, uc.headErr(err)
		}
		first = false
		h, err := uc.readHeader(false)
		if err != nil {
			return nil, uc.headErr(err)
		}
		f, err := framing(h, minor)
		if err != nil {
			return nil, err
		}
		if code >= 100 && code < 200 {
			if code == http.StatusSwitchingProtocols {
				return nil, &ProtocolError{"101 to a request that did not ask for an upgrade"}
			}
			if req.Interim != nil {
				delete(h, "Transfer-Encoding")
				if err := req.Interim.Interim(code, h); err != nil {
					return nil, err
				}
			}
			continue
		}
		return uc.setupResponse(req, code, minor, h, f)
	}
	return nil, &ProtocolError{"too many 1xx responses"}
}

func (uc *upConn) headErr(err error) error {
	var se *staleError
	if errors.As(err, &se) {
		if uc.aborted.Load() {
			return ErrCanceled
		}
		return err
	}
	return uc.readErr(err, ErrHeaderTimeout)
}

// setupResponse prepares the body of a final response whose framing f
// was checked.
func (uc *upConn) setupResponse(req *Request, code, minor int, h http.Header, f frame) (*http.Response, error) {
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
	if f.close {
		uc.noReuse = true
	}
	b := &uc.body
	*b = upBody{uc: uc}
	uc.bodyTimeout = req.BodyTimeout
	noBody := req.Method == "HEAD" || code == http.StatusNoContent || code == http.StatusNotModified
	switch {
	case f.chunked:
		delete(h, "Transfer-Encoding")
		if noBody {
			b.mode = bodyNone
			if req.Method == "HEAD" {
				r.ContentLength = -1 // unknown, as net/http has it
			}
			break
		}
		b.mode = bodyChunked
		b.cr = httputil.NewChunkedReader(uc.br)
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
		if tr := h["Trailer"]; len(tr) > 0 {
			r.Trailer = declaredTrailer(tr)
		}
	case f.length >= 0:
		if noBody {
			b.mode = bodyNone
			r.ContentLength = f.length
			if req.Method != "HEAD" {
				r.ContentLength = 0
			}
			break
		}
		b.mode, b.remain = bodyFixed, f.length
		r.ContentLength = f.length
		if f.length == 0 {
			b.mode = bodyNone
		}
	case noBody:
		b.mode = bodyNone
		r.ContentLength = 0
		if req.Method == "HEAD" {
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
	} else {
		uc.armBody()
	}
	r.Body = b
	return r, nil
}

// armBody sets the read deadline before a body read that will reach the
// socket: the body timeout from now, or none.
func (uc *upConn) armBody() {
	if uc.bodyTimeout > 0 {
		uc.setReadDeadline(time.Now().Add(uc.bodyTimeout))
	} else {
		uc.setReadDeadline(time.Time{})
	}
}

var chunkedTE = []string{"chunked"}

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
	if uc.bodyTimeout > 0 && uc.br.Buffered() == 0 {
		// This read waits for the socket: the gap starts now.
		uc.armBody()
	}
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
			return n, b.fail(err)
		}
		return n, nil
	case bodyChunked:
		n, err := b.cr.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, b.fail(terr)
			}
			b.finish()
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	case bodyUntilClose:
		n, err := uc.br.Read(p)
		if err == io.EOF {
			b.finish()
		} else if err != nil {
			return n, b.fail(err)
		}
		return n, err
	}
	return 0, io.EOF
}

// readTrailer reads the trailer section after the last chunk into the
// response's Trailer. Trailer lines must end in CRLF (net/http insists on
// a CRLF CRLF ahead before it reads a trailer).
func (b *upBody) readTrailer() error {
	h, err := b.uc.readTrailerHeader()
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

// fail ends the body with err (named: cancelled, timed out) and closes
// the connection.
func (b *upBody) fail(err error) error {
	b.eof = true
	err = b.uc.readErr(err, ErrBodyTimeout)
	b.uc.close()
	return err
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
