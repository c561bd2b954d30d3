package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/gatehouse-proxy/gatehouse/internal/errorpage"
	"github.com/gatehouse-proxy/gatehouse/internal/hostname"
	"github.com/gatehouse-proxy/gatehouse/internal/realip"
	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
	"github.com/gatehouse-proxy/gatehouse/internal/sendbound"
	"github.com/gatehouse-proxy/gatehouse/internal/stickycookie"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
	"github.com/gatehouse-proxy/gatehouse/staticfile"
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
	upstream string            // backend address that answered
	backend  *balancer.Backend // the server that answered; nil: none did

	id    []string  // request ID (the response header's value); nil when off
	host  string    // the request's host name (hostname.Canonical's form)
	rules respRules // response header rules of the route (or site) answering

	sticky string        // persistence cookie name, stripped from backend requests
	up     uhttp.Request // the backend request of the current try
	fwd    uhttp.Forward // its header
	extra  requestFields // the proxy's own fields of it (fwd.Extra)

	fw    fileWriter // the response writer of file responses
	accel accel      // an X-Accel-Redirect to serve once the backend is released

	// sent is the writer under a compressed response: w, counting the
	// bytes sent (compress.go).
	sent sendbound.Counter

	// wsLog is set when a WebSocket tunnel writes the access log line
	// when it closes, instead of ServeHTTP at the 101.
	wsLog bool
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// ServeHTTP implements http.Handler.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := e.rt.Load()
	if rt == nil {
		writeError(w, errorpage.Builtin(http.StatusServiceUnavailable), nil, "", http.StatusServiceUnavailable, false,
			sendbound.Bound{Send: config.DefaultSendTimeout, Now: e.now, H2: r.ProtoMajor == 2})
		return
	}
	// Field by field: the pool hands out zeroed state (end), and a
	// composite literal would be built in ServeHTTP's stack frame first,
	// doubling the request state's size in the frame of every handler
	// goroutine (which then grows its stack sooner).
	q := requestPool.Get().(*request)
	q.e, q.rt, q.ci, q.w, q.r, q.start = e, rt, edgeserver.ConnInfoOf(r), w, r, e.now()
	e.metrics.InFlight.Inc()
	// Deferred, so that a response aborted with panic(http.ErrAbortHandler)
	// is still counted and logged, and the gauge comes back.
	defer q.end()
	if !q.ci.StreamStart() {
		// The connection spent its reset budget and is being closed:
		// nothing is sent.
		q.status = statusNoResponse
		return
	}
	q.serve()
	// HTTP/2 rapid-reset accounting: a request whose context ended while
	// it was served was cancelled (edgeserver.ConnInfo).
	q.ci.StreamEnd(r.Context().Err() != nil)
}

// end closes the request's books: the in-flight gauge, metrics and access
// log line, then the request state goes back to the pool.
func (q *request) end() {
	// A file response cut off by a panic gives its encoder back.
	q.fw.abort()
	q.e.metrics.InFlight.Dec()
	q.finish()
	*q = request{}
	requestPool.Put(q)
}

func (q *request) serve() {
	r := q.r
	q.assignRequestID()
	if q.ci.HeadTooLarge(r) {
		// Too large rather than malformed: 431 (RFC 6585), on HTTP/1
		// and HTTP/2 alike, with the connection closed on HTTP/1 (the
		// rest of the head was never read).
		q.e.metrics.Rejected.WithLabelValues("head_too_large").Inc()
		q.e.log.Info("request refused: head too large", "client", q.ci.Peer, "proto", r.Proto)
		q.fail(http.StatusRequestHeaderFieldsTooLarge, r.ProtoMajor == 1)
		return
	}
	if reason, bad := q.ci.FramingRejected(r); bad {
		q.e.metrics.Smuggling.Inc()
		q.e.log.Info("request refused: ambiguous framing", "client", q.ci.Peer, "reason", reason)
		q.fail(http.StatusBadRequest, true)
		return
	}
	q.client = realip.Client(q.rt.trusted, q.ci.Peer, r.Header)
	if j := q.rt.deps.Jail; j != nil {
		// Bans are enforced at accept on the TCP peer; behind a trusted
		// proxy (or on a keep-alive connection that outlived the ban's
		// start) the client is only known here.
		if banned, _ := j.BannedAt(ratelimit.AddrKey(q.client), q.start); banned {
			q.e.metrics.Rejected.WithLabelValues("banned").Inc()
			q.fail(http.StatusForbidden, true)
			return
		}
	}
	host, ok := hostname.Canonical(r.Host)
	if !ok {
		q.e.metrics.Rejected.WithLabelValues("bad_host").Inc()
		q.fail(http.StatusBadRequest, false)
		return
	}
	s := q.rt.siteFor(host)
	if s == nil {
		q.e.metrics.Rejected.WithLabelValues("unknown_host").Inc()
		q.fail(http.StatusMisdirectedRequest, false)
		return
	}
	q.site, q.host, q.rules = s, host, s.respRules
	if q.ci.TLS == nil && s.cfg.RedirectHTTPS {
		q.redirect(host)
		return
	}
	if !realip.Allowed(s.cfg.Allow, s.cfg.Deny, q.client) {
		q.e.metrics.Rejected.WithLabelValues("access_denied").Inc()
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
	raw, _ := reqpath.Split(r)
	_, path, reason := reqpath.Normalize(raw)
	if reason != "" {
		q.e.metrics.Rejected.WithLabelValues("bad_path").Inc()
		q.e.log.Debug("request refused: bad path", "client", q.client, "uri", r.RequestURI, "reason", reason)
		q.fail(http.StatusBadRequest, false)
		return
	}
	rt := s.match(path)
	if rt == nil {
		q.fail(http.StatusNotFound, false)
		return
	}
	q.route, q.rules = rt, rt.respRules
	if !realip.Allowed(rt.cfg.Allow, rt.cfg.Deny, q.client) {
		q.e.metrics.Rejected.WithLabelValues("access_denied").Inc()
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
		q.e.metrics.BodyLimit.Inc()
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
	if rt.files != nil {
		q.serveFile(path)
		return
	}
	q.proxy()
}

// proxy forwards the request to the route's upstream, then serves the
// file a backend named with X-Accel-Redirect, if it did: only after the
// backend's slot, connection and the client's share are given back, as
// nginx releases the upstream before it sends the file.
func (q *request) proxy() {
	q.forwardShared()
	if q.accel.pending {
		q.serveAccel()
	}
}

// redirect answers 301 to the same URL over https; host is in
// hostname.Canonical's form.
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
	q.rules.Apply(h)
	q.status = http.StatusMovedPermanently
	q.w.WriteHeader(http.StatusMovedPermanently)
	_ = q.sendBound().End(http.NewResponseController(q.w), false)
}

// allowedMethods is the Allow header of a 405: the methods Gatehouse
// forwards (the backend may still refuse some of them).
var allowedMethods = []string{"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"}

// refuseMethod answers 405 to a method Gatehouse does not forward (TRACE
// unless the route allows it, CONNECT), as nginx does.
func (q *request) refuseMethod() {
	q.e.metrics.Rejected.WithLabelValues("method_not_allowed").Inc()
	q.w.Header()["Allow"] = allowedMethods
	q.fail(http.StatusMethodNotAllowed, false)
}

// fail answers with an error page: the site's, or the built-in one, with
// the request ID, under the header rules of the route (or site)
// answering.
func (q *request) fail(code int, close bool) {
	q.status = code
	rules := q.rules
	if q.site == nil && q.ci.TLS != nil {
		// No site for the Host (421): the browser applies HSTS to the
		// name it connected to, which is the SNI name; that site's
		// rules apply too.
		if h, ok := hostname.Canonical(q.ci.TLS.ServerName); ok {
			if s := q.rt.siteFor(h); s != nil {
				rules = s.respRules
				if s.hstsValue != nil {
					q.w.Header()["Strict-Transport-Security"] = s.hstsValue
				}
			}
		}
	} else if q.ci.TLS != nil && q.site.hstsValue != nil {
		q.w.Header()["Strict-Transport-Security"] = q.site.hstsValue
	}
	writeError(q.w, pageFor(q.site, code), rules, q.requestID(), code, close, q.sendBound())
}

// finish records metrics and the access log line.
func (q *request) finish() {
	d := q.e.since(q.start)
	q.banStatus()
	if q.backend != nil {
		q.backend.ObserveResponse(q.status, d) // the status page's per-server rates
	}
	if q.route != nil {
		q.route.metrics.Done(q.r.Method, q.status, d)
	} else {
		q.e.metrics.Unrouted(siteName(q.site), q.r.Method, q.status)
	}
	s := q.site
	if s == nil {
		s = q.rt.hosts.Default()
	}
	if s == nil || s.log == nil || (q.route != nil && !q.route.cfg.AccessLog) || q.wsLog {
		return
	}
	e := q.logEntry(s, d)
	s.log.write(&e)
}

// logEntry is q's access log line for site s, the request having taken d.
func (q *request) logEntry(s *site, d time.Duration) accesslog.Entry {
	e := accesslog.Entry{
		Start:     q.start,
		Duration:  d,
		Client:    q.client.String(),
		Method:    q.r.Method,
		Host:      q.r.Host,
		URI:       q.r.RequestURI,
		Proto:     q.r.Proto,
		Status:    q.status,
		Bytes:     q.bytes,
		Referer:   headerValue(q.r.Header, "Referer"),
		UserAgent: headerValue(q.r.Header, "User-Agent"),
		Upstream:  q.upstream,
		Site:      s.cfg.Name,
		TLS:       q.ci.TLS != nil,
		RequestID: q.requestID(),
	}
	if q.route != nil {
		e.Route = q.route.cfg.Path
	}
	return e
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
	if u.cfg.Sticky != nil {
		q.sticky = u.cfg.Sticky.Cookie
		key.Cookie = stickycookie.Value(r.Header, q.sticky)
	}
	var body *uhttp.BodyGuard
	tries := 1 + u.cfg.Retries
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		t := q.rt.cfg.Timeouts
		body = &uhttp.BodyGuard{Src: r.Body, Deadline: http.NewResponseController(q.w), Now: q.e.now,
			Limit: q.route.cfg.MaxBody, Gap: t.ClientBody, Total: q.start.Add(t.ClientBodyTotal)}
		if tries > 1 && r.ContentLength > 0 && r.ContentLength <= u.cfg.RetryBodyLimit {
			// Small bodies are read first so that a retry can send them
			// again (retry_body_limit).
			if err := body.Buffer(r.ContentLength); err != nil {
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
	replayable := body == nil && idempotent(r.Method) || body != nil && body.Kept()
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
		more := attempt+1 < tries
		served, err, k := q.attempt(b, stickyHit, body, replayable, more, deadline)
		if served {
			return
		}
		if err == nil {
			// A retryable status, not passed on: next server.
			key.Tried.Add(b)
			q.e.metrics.Retries.WithLabelValues(u.cfg.Name).Inc()
			q.logRetry(b, "status", nil)
			continue
		}
		lastErr, kind = err, k
		if kind == errClientGone || kind == errBodyLimit || kind == errBodyRead {
			break
		}
		untouched := body == nil || body.Untouched()
		// Another server after: a failed connect; no response head in
		// time, or a server that dropped the request twice before any
		// byte of a response (the upstream client sends it once more on
		// a new connection first), for a request that may be sent again.
		again := kind == errTimeout || kind == errProtocol && errors.Is(err, uhttp.ErrNoResponse)
		retry := more && q.e.now().Before(deadline) && untouched &&
			(kind == errDial || again && replayable && idempotent(r.Method))
		if !retry {
			break
		}
		key.Tried.Add(b)
		q.e.metrics.Retries.WithLabelValues(u.cfg.Name).Inc()
		q.logRetry(b, kind.String(), err)
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
		q.e.metrics.BodyLimit.Inc()
	}
	q.fail(code, kind == errBodyLimit || kind == errBodyRead)
}

// logRetry logs, at debug level, that the request failed on server b
// (kind: "status" for a retryable status, else the error kind) and is
// sent to another server: the client sees one response, the operator can
// see why it was slow.
func (q *request) logRetry(b *balancer.Backend, kind string, err error) {
	if !q.e.log.Enabled(q.r.Context(), slog.LevelDebug) {
		return
	}
	q.e.log.Debug("upstream request retried on another server", "upstream", q.route.upstream.cfg.Name,
		"server", b.Label(), "kind", kind, "err", err, "method", q.r.Method, "uri", q.r.RequestURI, "request_id", q.requestID())
}

// attempt sends the request to server b once and, when b's answer is
// final, passes it to the client (served). A retryable status that may
// be tried elsewhere (more tries left, before deadline) is not passed on:
// attempt returns neither served nor an error. A failure returns its
// error and kind.
//
// The attempt owns what it holds and releases it with defer, however it
// ends — an error, a retry, the end of the response, or a response the
// backend broke off, which is aborted with panic(http.ErrAbortHandler)
// (propagated to net/http, which drops the client connection): b's
// max_conns slot and in-flight count, and the backend connection with
// the response body. ServeHTTP's own defer then counts and logs the
// request.
func (q *request) attempt(b *balancer.Backend, stickyHit bool, body *uhttp.BodyGuard, replayable, more bool, deadline time.Time) (served bool, err error, kind errorKind) {
	r := q.r
	u := q.route.upstream
	slot, err := b.Acquire(r.Context())
	if err != nil {
		return false, err, classify(r.Context(), err)
	}
	defer slot.Release()
	if body != nil {
		body.Rewind()
	}
	// Field by field into the zeroed q.up (zeroed again after each try),
	// not built in this frame first (see ServeHTTP).
	up := &q.up
	up.Addr, up.Method, up.Target, up.Host = b.Addr(), r.Method, upstreamTarget(r), r.Host
	up.Header = q.forwardHeader()
	up.HeaderTimeout, up.BodyTimeout = q.route.headerTimeout, q.route.readTimeout
	up.Replayable, up.Interim, up.Start = replayable, q, q.start
	if body != nil {
		q.up.Body, q.up.ContentLength, q.up.Trailer = body, r.ContentLength, r.Trailer
	}
	resp, err := u.client.Do(r.Context(), &q.up)
	q.up = uhttp.Request{}
	if err != nil {
		kind = classify(r.Context(), err)
		if kind.countsAgainstBackend() {
			b.ReportFailure(q.e.now())
		}
		q.e.metrics.UpstreamErrors.WithLabelValues(u.cfg.Name, kind.String()).Inc()
		return false, err, kind
	}
	defer resp.Body.Close()
	if u.failMap[resp.StatusCode] {
		// The clock is read only here and on errors: a clean answer
		// needs no time.
		now := q.e.now()
		b.ReportFailure(now)
		q.e.metrics.UpstreamErrors.WithLabelValues(u.cfg.Name, "status").Inc()
		if resp.StatusCode >= 502 && resp.StatusCode <= 504 && more && now.Before(deadline) && replayable {
			return false, nil, 0
		}
	} else {
		b.ReportSuccess() // ends a passive-health exclusion, if any
	}
	q.upstream, q.backend = b.Addr(), b
	var cookie *http.Cookie
	if q.sticky != "" && !stickyHit {
		cookie = q.stickyCookie(b.ID())
	}
	if len(resp.Header[staticfile.RedirectHeader]) > 0 {
		// Served by proxy once this attempt has released the backend.
		q.takeAccel(resp, cookie)
		return true, nil, 0
	}
	if err := q.copyResponse(resp, cookie); err != nil {
		q.bodyFailed(b, err)
		panic(http.ErrAbortHandler)
	}
	return true, nil, 0
}

// bodyFailed counts and logs a response body the backend broke off or
// let stall past read_timeout. As in nginx, it is not a failure of the
// server for passive health (max_fails): the response had begun.
func (q *request) bodyFailed(b *balancer.Backend, err error) {
	name := q.route.upstream.cfg.Name
	kind := "body"
	if errors.Is(err, uhttp.ErrBodyTimeout) {
		kind = "body_timeout"
	}
	q.e.metrics.UpstreamErrors.WithLabelValues(name, kind).Inc()
	q.e.log.Warn("upstream response body failed; aborting the response", "upstream", name, "server", b.Label(), "err", err)
}

var retryAfter1 = []string{"1"}

// copyResponse sends the backend's response to the client, flushing as
// data arrives when the length is unknown (SSE, chunked streams). It
// returns the backend's error when the body broke off (or stalled past
// read_timeout): the caller must then abort the response, so the client
// does not take a truncated response for a whole one. A client that went
// away is logged as 499.
func (q *request) copyResponse(resp *http.Response, cookie *http.Cookie) error {
	defer resp.Body.Close()
	w := q.w
	h := w.Header()
	connTokens := resp.Header["Connection"]
	// X-Accel-Buffering: no asks for every chunk to be sent on as it
	// comes (nginx proxy_buffering off for this response).
	unbuffered := strings.EqualFold(headerValue(resp.Header, "X-Accel-Buffering"), "no")
	for k, vv := range resp.Header {
		if uhttp.HopByHop(k) || len(connTokens) > 0 && hasToken(connTokens, k) || accelHeader(k) {
			continue
		}
		h[k] = vv
	}
	q.rules.Apply(h)
	if _, ok := h["Content-Type"]; !ok {
		// Passed through as it is: without the key net/http would sniff
		// the body and add one; a nil value suppresses that.
		h["Content-Type"] = nil
	}
	// Gatehouse's own fields, after the rules: no rule removes them.
	if cookie != nil {
		h["Set-Cookie"] = append(h["Set-Cookie"], cookie.String())
		h["Cache-Control"] = []string{stickycookie.MergePrivate(h["Cache-Control"])}
	}
	q.ownHeaders(h)
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	q.status = resp.StatusCode
	// Compressed (compress.go), the response goes through cw, which
	// leaves no valid coded ending when it is aborted: by a return with
	// the backend's error, after which attempt panics.
	out := w
	cw := q.compressWriter(q.route.comp, h, resp.StatusCode, resp.ContentLength, noMaxLength, len(resp.Trailer) > 0)
	if cw != nil {
		defer cw.Abort()
		out = cw
	}
	// The head goes out with the first body write, or at End: both
	// bounded by the send timeout (package sendbound).
	out.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength == -1 || unbuffered || strings.HasPrefix(headerValue(resp.Header, "Content-Type"), "text/event-stream")
	bp := copyBufPool.Get().(*[]byte)
	n, armed, err := q.sendBound().Copy(out, resp.Body, *bp, streaming, resp.ContentLength)
	copyBufPool.Put(bp)
	q.bytes = n
	if err == nil && cw != nil {
		// The coded stream's last block, under the send bound.
		q.sendBound().Arm(http.NewResponseController(w))
		armed = true
		if cw.Close() != nil {
			err = sendbound.ErrClientWrite
		}
	}
	if cw != nil {
		q.bytes = q.sent.N
	}
	if err != nil {
		if errors.Is(err, sendbound.ErrClientWrite) || q.r.Context().Err() != nil {
			q.status = StatusClientClosed
			return nil
		}
		return err
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	if q.sendBound().End(http.NewResponseController(w), armed) != nil {
		q.status = StatusClientClosed
	}
	return nil
}

// Interim forwards a backend's 1xx interim response (103 Early Hints,
// 100 Continue, 102 Processing; never 101) to the client, as
// httputil.ReverseProxy does, over HTTP/1.1 and HTTP/2: its headers but
// the hop-by-hop ones, after which the response header map is as it was.
// Nothing is sent to an HTTP/1.0 client (RFC 9110 §15.2). The write is
// bounded by timeouts.send like every write to the client.
func (q *request) Interim(code int, h http.Header) error {
	if !q.r.ProtoAtLeast(1, 1) {
		return nil
	}
	wh := q.w.Header()
	var saved http.Header
	if len(wh) > 0 {
		saved = wh.Clone()
		clear(wh)
	}
	connTokens := h["Connection"]
	for k, vv := range h {
		if uhttp.HopByHop(k) || len(connTokens) > 0 && hasToken(connTokens, k) || accelHeader(k) {
			continue
		}
		wh[k] = vv
	}
	rc := http.NewResponseController(q.w)
	sb := q.sendBound()
	sb.Arm(rc)
	q.w.WriteHeader(code)
	sb.Idle(rc)
	clear(wh)
	for k, vv := range saved {
		wh[k] = vv
	}
	return nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// sendBound is the bound of q's response (package sendbound).
func (q *request) sendBound() sendbound.Bound {
	send := q.rt.cfg.Timeouts.Send
	// The connection keeps the bound itself on plaintext HTTP/1
	// (SendBound is zero over TLS and HTTP/2), unless a reload changed
	// timeouts.send since it was accepted.
	return sendbound.Bound{Send: send, Now: q.e.now, H2: q.r.ProtoMajor == 2, Conn: q.ci.SendBound == send}
}

// ownHeaders sets the fields Gatehouse owns on a response: HSTS over TLS
// and the request ID (which a backend's header of the same name may have
// replaced).
func (q *request) ownHeaders(h http.Header) {
	if q.ci.TLS != nil && q.site.hstsValue != nil {
		h["Strict-Transport-Security"] = q.site.hstsValue
	}
	if q.id != nil {
		h[q.rt.cfg.RequestID.Header] = q.id
	}
}

// stickyCookie is the persistence cookie for a backend id.
func (q *request) stickyCookie(id string) *http.Cookie {
	st := q.route.upstream.cfg.Sticky
	c := stickycookie.Cookie{Name: st.Cookie, Domain: st.Domain, SameSite: st.SameSite, MaxAge: st.MaxAge}
	return c.For(id, q.ci.TLS != nil)
}
