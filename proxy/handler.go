package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// request is the per-request state of the handler, pooled.
type request struct {
	e      *Edge
	rt     *Runtime
	ci     *edgeserver.ConnInfo
	w      http.ResponseWriter
	r      *http.Request
	start  time.Time
	site   *site
	route  *route
	client netip.Addr

	status   int
	bytes    int64
	upstream string // backend address that answered

	sticky string    // persistence cookie name, stripped from backend requests
	up     upRequest // the backend request of the current try
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// ServeHTTP implements http.Handler.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := e.rt.Load()
	if rt == nil {
		writeError(w, nil, http.StatusServiceUnavailable, false,
			sendBound{send: config.DefaultSendTimeout, now: e.now, h2: r.ProtoMajor == 2})
		return
	}
	q := requestPool.Get().(*request)
	*q = request{e: e, rt: rt, ci: edgeserver.ConnInfoOf(r), w: w, r: r, start: e.now()}
	e.metrics.inFlight.Inc()
	if q.ci.StreamStart() {
		q.serve()
		// HTTP/2 rapid-reset accounting: a request whose context ended
		// while it was served was cancelled (edgeserver.ConnInfo).
		q.ci.StreamEnd(r.Context().Err() != nil)
	} else {
		// The connection spent its reset budget and is being closed:
		// nothing is sent.
		q.status = statusNoResponse
	}
	e.metrics.inFlight.Dec()
	q.finish()
	*q = request{}
	requestPool.Put(q)
}

func (q *request) serve() {
	r := q.r
	if reason, bad := q.ci.FramingRejected(r); bad {
		q.e.metrics.smuggling.Inc()
		q.e.log.Info("request refused: ambiguous framing", "client", q.ci.Peer, "reason", reason)
		q.fail(http.StatusBadRequest, true)
		return
	}
	q.client = clientAddr(q.rt.trusted, q.ci.Peer, r.Header["X-Forwarded-For"], headerValue(r.Header, "X-Real-Ip"))
	if j := q.rt.deps.Jail; j != nil {
		// Bans are enforced at accept on the TCP peer; behind a trusted
		// proxy (or on a keep-alive connection that outlived the ban's
		// start) the client is only known here.
		if banned, _ := j.BannedAt(ratelimit.AddrKey(q.client), q.start); banned {
			q.e.metrics.rejected.WithLabelValues("banned").Inc()
			q.fail(http.StatusForbidden, true)
			return
		}
	}
	host, ok := siteHost(r.Host)
	if !ok {
		q.e.metrics.rejected.WithLabelValues("bad_host").Inc()
		q.fail(http.StatusBadRequest, false)
		return
	}
	s := q.rt.siteFor(host)
	if s == nil {
		q.e.metrics.rejected.WithLabelValues("unknown_host").Inc()
		q.fail(http.StatusMisdirectedRequest, false)
		return
	}
	q.site = s
	if q.ci.TLS == nil && s.cfg.RedirectHTTPS {
		q.redirect(host)
		return
	}
	if !allowed(s.cfg.Allow, s.cfg.Deny, q.client) {
		q.e.metrics.rejected.WithLabelValues("access_denied").Inc()
		q.fail(http.StatusForbidden, false)
		return
	}
	if r.Method == http.MethodConnect {
		// A proxy tunnel (HTTP/2 only: the HTTP/1 guard refuses CONNECT
		// before net/http sees it). Extended CONNECT (RFC 8441,
		// WebSocket over HTTP/2) is not supported either; net/http
		// refuses its :protocol unless GODEBUG=http2xconnect=1.
		q.refuseMethod()
		return
	}
	raw, _ := requestPath(r)
	_, path, reason := normalizePath(raw)
	if reason != "" {
		q.e.metrics.rejected.WithLabelValues("bad_path").Inc()
		q.e.log.Debug("request refused: bad path", "client", q.client, "uri", r.RequestURI, "reason", reason)
		q.fail(http.StatusBadRequest, false)
		return
	}
	rt := s.match(path)
	if rt == nil {
		q.fail(http.StatusNotFound, false)
		return
	}
	q.route = rt
	if !allowed(rt.cfg.Allow, rt.cfg.Deny, q.client) {
		q.e.metrics.rejected.WithLabelValues("access_denied").Inc()
		q.fail(http.StatusForbidden, false)
		return
	}
	if r.Method == http.MethodTrace && !rt.cfg.AllowTrace {
		q.refuseMethod()
		return
	}
	if r.ContentLength > rt.cfg.MaxBody {
		// Refuse before contacting any backend, and close: the body is
		// not read.
		q.e.metrics.bodyLimit.Inc()
		q.fail(http.StatusRequestEntityTooLarge, true)
		return
	}
	if len(rt.zones) > 0 && !q.limit() {
		return
	}
	if isUpgrade(r) {
		if rt.cfg.WebSocket.Enabled && strings.EqualFold(headerValue(r.Header, "Upgrade"), "websocket") {
			q.serveWebSocket()
			return
		}
		// Not a WebSocket route: Upgrade is hop-by-hop and is dropped
		// (h2c is never tunnelled); the request is served as plain HTTP.
	}
	q.forwardShared()
}

// redirect answers 301 to the same URL over https; host is in siteHost's
// form.
func (q *request) redirect(host string) {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]" // an IPv6 literal
	}
	target := "https://" + host
	p := q.rt.httpsPort
	if bound := q.e.httpsPort.Load(); bound != nil {
		p = *bound
	}
	if p != "" && p != "443" {
		target += ":" + p
	}
	target += q.r.URL.RequestURI()
	h := q.w.Header()
	h["Location"] = []string{target}
	h["Content-Length"] = []string{"0"}
	q.status = http.StatusMovedPermanently
	q.w.WriteHeader(http.StatusMovedPermanently)
	_ = q.sendBound().end(http.NewResponseController(q.w))
}

// allowedMethods is the Allow header of a 405: the methods Gatehouse
// forwards (the backend may still refuse some of them).
var allowedMethods = []string{"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}

// refuseMethod answers 405 to a method Gatehouse does not forward (TRACE
// unless the route allows it, CONNECT), as nginx does.
func (q *request) refuseMethod() {
	q.e.metrics.rejected.WithLabelValues("method_not_allowed").Inc()
	q.w.Header()["Allow"] = allowedMethods
	q.fail(http.StatusMethodNotAllowed, false)
}

// fail answers with an error page.
func (q *request) fail(code int, close bool) {
	q.status = code
	if q.ci.TLS != nil {
		s := q.site
		if s == nil {
			// No site for the Host (421): the browser applies HSTS to
			// the name it connected to, which is the SNI name.
			if h, ok := siteHost(q.ci.TLS.ServerName); ok {
				s = q.rt.siteFor(h)
			}
		}
		if s != nil && s.hstsValue != nil {
			q.w.Header()["Strict-Transport-Security"] = s.hstsValue
		}
	}
	writeError(q.w, q.site, code, close, q.sendBound())
}

// finish records metrics and the access log line.
func (q *request) finish() {
	d := q.e.now().Sub(q.start)
	q.banStatus()
	if q.route != nil {
		q.route.metrics.requests[methodIndex(q.r.Method)][classIndex(q.status)].Inc()
		q.route.metrics.duration.Observe(d.Seconds())
	} else {
		q.e.metrics.requests.WithLabelValues(siteName(q.site), "", "", methods[methodIndex(q.r.Method)], classes[classIndex(q.status)]).Inc()
	}
	s := q.site
	if s == nil {
		s = q.rt.defaultSite
	}
	if s == nil || s.log == nil || (q.route != nil && !q.route.cfg.AccessLog) {
		return
	}
	e := logEntry{
		start:     q.start,
		duration:  d,
		client:    q.client.String(),
		method:    q.r.Method,
		host:      q.r.Host,
		uri:       q.r.RequestURI,
		proto:     q.r.Proto,
		status:    q.status,
		bytes:     q.bytes,
		referer:   headerValue(q.r.Header, "Referer"),
		userAgent: headerValue(q.r.Header, "User-Agent"),
		upstream:  q.upstream,
		site:      s.cfg.Name,
		tls:       q.ci.TLS != nil,
	}
	if q.route != nil {
		e.route = q.route.cfg.Path
	}
	s.log.write(&e)
}

func siteName(s *site) string {
	if s == nil {
		return ""
	}
	return s.cfg.Name
}

func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && len(r.Header["Upgrade"]) > 0 && hasToken(r.Header["Connection"], "upgrade")
}

func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// forward proxies a plain HTTP request, retrying on another server where
// that is safe: a connection that failed before anything was sent is
// retried for any method; a timeout or a retryable status (502, 503, 504)
// only for idempotent methods whose body has not been read.
func (q *request) forward() {
	r := q.r
	u := q.route.upstream
	key := balancer.Key{Client: q.client}
	var stickyName string
	if u.cfg.Sticky != nil {
		stickyName = u.cfg.Sticky.Cookie
		key.Cookie = cookieValue(r.Header, stickyName)
	}
	q.sticky = stickyName
	var body *bodyReader
	tries := 1 + u.cfg.Retries
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = newBodyReader(q)
		if tries > 1 && r.ContentLength > 0 && r.ContentLength <= u.cfg.RetryBodyLimit {
			// Small bodies are read first so that a retry can send them
			// again (retry_body_limit).
			if err := body.buffer(); err != nil {
				kind := classify(r.Context(), err)
				if kind == errClientGone {
					q.status = StatusClientClosed
					return
				}
				q.fail(kind.status(err), true)
				return
			}
		}
	}
	// A request may be sent again after the backend saw it only when
	// that is safe: an idempotent method, or a body we kept.
	replayable := body == nil && idempotent(r.Method) || body != nil && body.replay
	deadline := q.start.Add(u.cfg.RetryBudget)
	var lastErr error
	kind := errNoServer
	for attempt := 0; attempt < tries; attempt++ {
		b, stickyHit := u.pool.Pick(key)
		if b == nil {
			if attempt == 0 {
				lastErr, kind = errNoBackend, errNoServer
			} // else: nothing left to retry on; answer for the last failure
			break
		}
		release, err := b.Acquire(r.Context())
		if err != nil {
			lastErr, kind = err, classify(r.Context(), err)
			break
		}
		if body != nil {
			body.rewind()
		}
		q.up = upRequest{
			ctx:           r.Context(),
			addr:          b.Addr(),
			method:        r.Method,
			uri:           upstreamTarget(r),
			host:          r.Host,
			head:          q,
			headerTimeout: q.route.headerTimeout,
			replayable:    replayable,
			start:         q.start,
		}
		if body != nil {
			q.up.body, q.up.contentLength, q.up.trailer = body, r.ContentLength, r.Trailer
		}
		resp, err := u.client.roundTrip(&q.up)
		q.up = upRequest{}
		if err == nil {
			retryable := resp.StatusCode >= 502 && resp.StatusCode <= 504
			if u.failMap[resp.StatusCode] {
				// The clock is read only here and on errors: a clean
				// answer needs no time.
				b.ReportFailure(q.e.now())
				q.e.metrics.upstreamErrs.WithLabelValues(u.cfg.Name, "status").Inc()
			}
			if retryable && u.failMap[resp.StatusCode] && attempt+1 < tries && q.e.now().Before(deadline) && replayable {
				_ = resp.Body.Close()
				release()
				key.Tried.Add(b)
				q.e.metrics.retries.WithLabelValues(u.cfg.Name).Inc()
				continue
			}
			q.upstream = b.Addr()
			var cookie *http.Cookie
			if stickyName != "" && !stickyHit {
				cookie = q.stickyCookie(b.ID())
			}
			q.copyResponse(resp, cookie)
			release()
			return
		}
		release()
		now := q.e.now()
		lastErr, kind = err, classify(r.Context(), err)
		if kind.countsAgainstBackend() {
			b.ReportFailure(now)
		}
		q.e.metrics.upstreamErrs.WithLabelValues(u.cfg.Name, kind.String()).Inc()
		if kind == errClientGone || kind == errBodyLimit || kind == errBodyRead {
			break
		}
		untouched := body == nil || body.n == 0 || body.replay
		retry := attempt+1 < tries && now.Before(deadline) && untouched &&
			(kind == errDial || kind == errTimeout && replayable && idempotent(r.Method))
		if !retry {
			break
		}
		key.Tried.Add(b)
		q.e.metrics.retries.WithLabelValues(u.cfg.Name).Inc()
	}
	code := kind.status(lastErr)
	if kind == errClientGone {
		q.status = StatusClientClosed
		return
	}
	if kind != errBodyLimit && kind != errBodyRead {
		q.e.log.Warn("upstream request failed", "upstream", u.cfg.Name, "kind", kind.String(), "err", lastErr, "status", code)
	}
	if code == http.StatusServiceUnavailable {
		q.w.Header()["Retry-After"] = retryAfter1
	}
	if kind == errBodyLimit {
		q.e.metrics.bodyLimit.Inc()
	}
	q.fail(code, kind == errBodyLimit || kind == errBodyRead)
}

var retryAfter1 = []string{"1"}

// hopHeaders are removed in both directions (RFC 9110 §7.6.1, plus the
// legacy ones every proxy strips).
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Http2-Settings":      true,
}

// outRequest builds the backend request. The inbound request is never
// modified.
func (q *request) outRequest(addr string, body *bodyReader, stickyName string) *http.Request {
	r := q.r
	h := make(http.Header, len(r.Header)+5)
	connTokens := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopHeaders[k] || k == "X-Real-Ip" || k == "X-Forwarded-For" || k == "X-Forwarded-Proto" ||
			k == "X-Forwarded-Host" || k == "Expect" {
			continue
		}
		if len(connTokens) > 0 && hasToken(connTokens, k) {
			continue
		}
		h[k] = vv
	}
	if te := r.Header["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		h["Te"] = teTrailers
	}
	if stickyName != "" {
		if c := h["Cookie"]; len(c) > 0 {
			h["Cookie"] = stripCookie(c, stickyName)
			if len(h["Cookie"]) == 0 {
				delete(h, "Cookie")
			}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue // keep Go's transport from adding its own
	}
	trustedPeer := trustedPeer(q.rt.trusted, q.ci.Peer)
	peer := q.ci.Peer.String()
	if xff := r.Header["X-Forwarded-For"]; trustedPeer && len(xff) > 0 {
		h["X-Forwarded-For"] = []string{strings.Join(xff, ", ") + ", " + peer}
	} else {
		h["X-Forwarded-For"] = []string{peer}
	}
	h["X-Real-Ip"] = []string{q.client.String()}
	proto := "http"
	if q.ci.TLS != nil {
		proto = "https"
	}
	if v := r.Header["X-Forwarded-Proto"]; trustedPeer && len(v) == 1 && (v[0] == "https" || v[0] == "http") {
		proto = v[0]
	}
	h["X-Forwarded-Proto"] = []string{proto}
	if v := r.Header["X-Forwarded-Host"]; trustedPeer && len(v) > 0 {
		h["X-Forwarded-Host"] = v[:1]
	} else {
		h["X-Forwarded-Host"] = []string{r.Host}
	}
	out := &http.Request{
		Method: r.Method,
		// Opaque: the normalised target of upstreamTarget, which
		// URL.RequestURI (and so Request.Write) sends as it is.
		URL:           &url.URL{Scheme: "http", Host: addr, Opaque: upstreamTarget(r)},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: r.ContentLength,
		Host:          r.Host,
	}
	if body != nil {
		out.Body = body
		if r.ContentLength < 0 {
			out.ContentLength = -1
		}
	} else {
		out.Body = http.NoBody
		out.ContentLength = 0
	}
	if len(r.Trailer) > 0 {
		out.Trailer = r.Trailer
	}
	return out.WithContext(r.Context())
}

var (
	teTrailers = []string{"trailers"}
	emptyValue = []string{""}
)

// copyResponse sends the backend's response to the client, flushing as
// data arrives when the length is unknown (SSE, chunked streams).
func (q *request) copyResponse(resp *http.Response, cookie *http.Cookie) {
	defer resp.Body.Close()
	w := q.w
	h := w.Header()
	connTokens := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopHeaders[k] || len(connTokens) > 0 && hasToken(connTokens, k) {
			continue
		}
		h[k] = vv
	}
	if cookie != nil {
		h["Set-Cookie"] = append(h["Set-Cookie"], cookie.String())
		h["Cache-Control"] = []string{mergePrivate(h["Cache-Control"])}
	}
	if q.ci.TLS != nil && q.site.hstsValue != nil {
		h["Strict-Transport-Security"] = q.site.hstsValue
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	q.status = resp.StatusCode
	// The head goes out with the first body write, or at sb.end: both
	// bounded by the send timeout (send.go).
	w.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength == -1 || strings.HasPrefix(headerValue(resp.Header, "Content-Type"), "text/event-stream")
	n, err := q.copyBody(resp.Body, streaming)
	q.bytes = n
	if err != nil {
		if errors.Is(err, errClientWrite) {
			q.status = StatusClientClosed
			return
		}
		// The backend failed mid-body: the client must not take a
		// truncated response for a whole one.
		q.e.log.Warn("upstream response body failed", "upstream", q.route.upstream.cfg.Name, "err", err)
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	if q.sendBound().end(http.NewResponseController(w)) != nil {
		q.status = StatusClientClosed
	}
}

var errClientWrite = errors.New("client write failed")

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies with an idle-based send timeout: each write may block
// at most timeouts.send, so a slow client is cut but a long download or
// event stream that keeps moving is not. The first write is bounded like
// every other (send.go); copyResponse ends the bound.
func (q *request) copyBody(src io.Reader, flush bool) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(q.w)
	sb := q.sendBound()
	var written int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			sb.arm(rc)
			nw, werr := q.w.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, errClientWrite
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return written, errClientWrite
				}
			}
			sb.idle(rc)
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// mergePrivate adds "private" to a Cache-Control value (HAProxy's
// nocache), dropping "public" so no shared cache stores a response that
// sets a server cookie.
func mergePrivate(vv []string) string {
	var parts []string
	for _, v := range vv {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" || strings.EqualFold(p, "public") || strings.EqualFold(p, "private") {
				continue
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(append([]string{"private"}, parts...), ", ")
}

// cookieValue returns the value of the named cookie, without parsing every
// cookie into objects.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// stripCookie removes the named cookie from Cookie header lines (HAProxy's
// indirect: the backend never sees the persistence cookie).
func stripCookie(lines []string, name string) []string {
	var out []string
	for _, line := range lines {
		if !strings.Contains(line, name) {
			out = append(out, line)
			continue
		}
		var kept []string
		for _, part := range strings.Split(line, ";") {
			p := strings.TrimSpace(part)
			if k, _, _ := strings.Cut(p, "="); k == name || p == "" {
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	return out
}

// stickyCookie is the persistence cookie for a backend id.
func (q *request) stickyCookie(id string) *http.Cookie {
	st := q.route.upstream.cfg.Sticky
	c := &http.Cookie{Name: st.Cookie, Value: id, Path: "/", HttpOnly: true, Secure: q.ci.TLS != nil, Domain: st.Domain}
	switch st.SameSite {
	case "strict":
		c.SameSite = http.SameSiteStrictMode
	case "none":
		c.SameSite = http.SameSiteNoneMode
		c.Secure = true
	default:
		c.SameSite = http.SameSiteLaxMode
	}
	if st.MaxAge > 0 {
		c.MaxAge = int(st.MaxAge / time.Second)
	}
	return c
}

// bodyReader guards a request body on its way to the backend: it enforces
// the route's body limit on bodies without a declared length, an idle
// deadline between reads (timeouts.client_body, nginx's
// client_body_timeout) and a total deadline (timeouts.client_body_total,
// which nginx lacks), and remembers how much was read so a retry knows
// whether the body is untouched. Close is a no-op: the server owns the
// inbound body, and the transport closing it must not stop a retry.
type bodyReader struct {
	q     *request
	src   io.ReadCloser
	rc    *http.ResponseController
	limit int64
	n     int64
	gap   time.Duration
	total time.Time
	// replay: the body was read into buf and is served from there.
	replay bool
	buf    []byte
	off    int
}

func newBodyReader(q *request) *bodyReader {
	t := q.rt.cfg.Timeouts
	return &bodyReader{
		q:     q,
		src:   q.r.Body,
		rc:    http.NewResponseController(q.w),
		limit: q.route.cfg.MaxBody,
		gap:   t.ClientBody,
		total: q.start.Add(t.ClientBodyTotal),
	}
}

// buffer reads the whole (small, declared-length) body now, so it can be
// sent again on a retry.
func (b *bodyReader) buffer() error {
	buf := make([]byte, 0, b.q.r.ContentLength)
	for {
		if len(buf) == cap(buf) {
			// Read one more byte to see EOF (or a body longer than
			// declared, which net/http reports as an error).
			var one [1]byte
			n, err := b.Read(one[:])
			if n > 0 {
				return &bodyError{err: io.ErrUnexpectedEOF}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			continue
		}
		n, err := b.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	b.replay, b.buf = true, buf
	return nil
}

// rewind starts a kept body over for the next try.
func (b *bodyReader) rewind() { b.off = 0 }

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.replay {
		if b.off >= len(b.buf) {
			return 0, io.EOF
		}
		n := copy(p, b.buf[b.off:])
		b.off += n
		return n, nil
	}
	if b.n > b.limit {
		return 0, &bodyError{limit: true}
	}
	d := b.q.e.now().Add(b.gap)
	if b.total.Before(d) {
		d = b.total
	}
	_ = b.rc.SetReadDeadline(d)
	if rem := b.limit - b.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.src.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		// Forward nothing past the limit.
		return n - int(b.n-b.limit), &bodyError{limit: true}
	}
	if err == io.EOF {
		// Clear the deadline: the server's background read that watches
		// for the client going away must not time out while the backend
		// thinks.
		_ = b.rc.SetReadDeadline(time.Time{})
	} else if err != nil {
		return n, &bodyError{err: err}
	}
	return n, err
}

func (b *bodyReader) Close() error { return nil }
