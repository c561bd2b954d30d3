package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

// serveWebSocket proxies an HTTP/1.1 WebSocket upgrade: validate, check the
// Origin, pick a backend (sticky cookie honoured), do the handshake with
// it, and on 101 hand both connections to a tunnel that outlives this
// request and this Runtime.
func (q *request) serveWebSocket() {
	r, e := q.r, q.e
	ws := &q.route.cfg.WebSocket
	if !validUpgrade(r) {
		e.metrics.wsUpgrades.WithLabelValues("bad_request").Inc()
		q.fail(http.StatusBadRequest, true)
		return
	}
	if !q.originAllowed(headerValue(r.Header, "Origin")) {
		e.metrics.wsUpgrades.WithLabelValues("origin_rejected").Inc()
		e.log.Info("websocket origin rejected", "origin", headerValue(r.Header, "Origin"), "site", q.site.cfg.Name)
		q.fail(http.StatusForbidden, true)
		return
	}
	if ws.MaxPerClient > 0 && !e.wsClientAcquire(q.client, ws.MaxPerClient) {
		e.metrics.wsUpgrades.WithLabelValues("capped").Inc()
		q.w.Header()["Retry-After"] = retryAfter1
		q.fail(http.StatusTooManyRequests, true)
		return
	}
	clientSlot := ws.MaxPerClient > 0
	// q is pooled and zeroed when ServeHTTP returns, long before OnEnd
	// runs: keep the client address in a local.
	client := q.client
	releaseClient := func() {
		if clientSlot {
			e.wsClientRelease(client)
		}
	}

	u := q.route.upstream
	key := balancer.Key{Client: q.client}
	var stickyName string
	if u.cfg.Sticky != nil {
		stickyName = u.cfg.Sticky.Cookie
		key.Cookie = cookieValue(r.Header, stickyName)
	}
	tries := 1 + u.cfg.Retries
	var (
		b        *balancer.Backend
		hit      bool
		slot     balancer.Slot // the backend slot, held until the tunnel ends
		conn     net.Conn
		lastErr  error
		lastKind = errNoServer
	)
	for attempt := 0; attempt < tries; attempt++ {
		b, hit = u.pool.Pick(key)
		if b == nil {
			if attempt == 0 {
				lastErr, lastKind = errNoBackend, errNoServer
			} // else: nothing left to retry on; answer for the last failure
			break
		}
		var err error
		slot, err = b.Acquire(r.Context())
		if err != nil {
			lastErr, lastKind = err, classify(r.Context(), err)
			b = nil
			break
		}
		d := net.Dialer{Timeout: ws.ConnectTimeout}
		conn, err = d.DialContext(r.Context(), "tcp", b.Addr())
		if err == nil {
			break
		}
		slot.Release()
		lastErr, lastKind = &uhttp.DialError{Addr: b.Addr(), Err: err}, errDial
		if r.Context().Err() != nil {
			lastKind = errClientGone
			break
		}
		b.ReportFailure(e.now())
		e.metrics.upstreamErrs.WithLabelValues(u.cfg.Name, "dial").Inc()
		key.Tried.Add(b)
		b = nil
	}
	if conn == nil {
		releaseClient()
		e.metrics.wsUpgrades.WithLabelValues("backend_error").Inc()
		code := lastKind.status(lastErr)
		if lastKind == errClientGone {
			q.status = StatusClientClosed
			return
		}
		e.log.Warn("websocket upstream failed", "upstream", u.cfg.Name, "err", lastErr)
		if code == http.StatusServiceUnavailable {
			q.w.Header()["Retry-After"] = retryAfter1
		}
		q.fail(code, true)
		return
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
			slot.Release()
			releaseClient()
		}
	}()

	// The handshake has the header rewrite of every backend request; the
	// connection is dialled here, not taken from the upstream client's
	// pool: after a 101 it is the tunnel's (see uhttp.Upgrade).
	q.sticky = stickyName
	_ = conn.SetDeadline(e.now().Add(ws.ConnectTimeout))
	resp, br, err := uhttp.Upgrade(conn, &uhttp.Request{Method: r.Method, Target: upstreamTarget(r), Host: r.Host,
		Header: q.forwardHeader()}, "websocket")
	if err != nil {
		kind := classify(r.Context(), err)
		if kind.countsAgainstBackend() {
			b.ReportFailure(e.now())
		}
		e.metrics.wsUpgrades.WithLabelValues("backend_error").Inc()
		q.fail(kind.status(err), true)
		return
	}
	b.ReportSuccess() // ends a passive-health exclusion, if any
	q.upstream = b.Addr()
	var cookie *http.Cookie
	if stickyName != "" && !hit {
		cookie = q.stickyCookie(b.ID())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(headerValue(resp.Header, "Upgrade"), "websocket") {
		// The backend refused (Channels answers 403 to a rejected
		// handshake): pass its answer on and close.
		e.metrics.wsUpgrades.WithLabelValues("backend_refused").Inc()
		q.w.Header()["Connection"] = closeValue
		if err := q.copyResponse(resp, cookie); err != nil {
			q.bodyFailed(b, err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	_ = conn.SetDeadline(time.Time{})

	clientConn, brw, err := http.NewResponseController(q.w).Hijack()
	if err != nil {
		e.metrics.wsUpgrades.WithLabelValues("backend_error").Inc()
		q.fail(http.StatusInternalServerError, true)
		return
	}
	ok = true
	_ = clientConn.SetDeadline(time.Time{})
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 101 Switching Protocols\r\n"...)
	idHeader := q.rt.cfg.RequestID.Header
	for k, vv := range resp.Header {
		if uhttp.HopByHop(k) && k != "Upgrade" && k != "Connection" || accelHeader(k) || q.id != nil && k == idHeader {
			continue
		}
		for _, v := range vv {
			head = append(head, k...)
			head = append(head, ": "...)
			head = append(head, v...)
			head = append(head, "\r\n"...)
		}
	}
	if cookie != nil {
		head = append(head, "Set-Cookie: "...)
		head = append(head, cookie.String()...)
		head = append(head, "\r\nCache-Control: private\r\n"...)
	}
	if q.id != nil {
		head = append(head, idHeader...)
		head = append(head, ": "...)
		head = append(head, q.id[0]...)
		head = append(head, "\r\n"...)
	}
	head = append(head, "\r\n"...)
	// Count the stream before the client can see the 101, so the active
	// gauge never lags behind what clients observe.
	tk := tunnelKey{u.cfg.Name, b.Label()}
	e.wsServerAdd(tk, 1)
	if _, err := clientConn.Write(head); err != nil {
		e.wsServerAdd(tk, -1)
		clientConn.Close()
		conn.Close()
		slot.Release()
		releaseClient()
		q.status = StatusClientClosed
		return
	}
	q.status = http.StatusSwitchingProtocols

	var clientBuf []byte
	if n := brw.Reader.Buffered(); n > 0 {
		clientBuf, _ = brw.Reader.Peek(n)
		clientBuf = append([]byte(nil), clientBuf...)
	}
	var backendBuf []byte
	if n := br.Buffered(); n > 0 {
		backendBuf, _ = br.Peek(n)
		backendBuf = append([]byte(nil), backendBuf...)
	}
	// A plaintext client conn is wrapped (framing guard, accept-gate
	// conn, counter). When none of them holds unread bytes (the usual
	// case: a browser sends nothing before the 101), the tunnel gets the
	// TCP socket underneath and waits for data without holding a buffer.
	// A client that sent its first frame with the handshake leaves it held
	// by the guard; that stream is then read through the wrappers
	// (sockio.Socket returns nil), which costs a buffer, not correctness.
	socket := sockio.Socket(clientConn)
	// Over TLS the same holds for the wrappers above the *tls.Conn: the
	// tunnel reads through it and waits on the socket under it.
	var clientTLS *tls.Conn
	if socket == nil {
		clientTLS = tlsUnder(clientConn)
	}
	e.metrics.wsUpgrades.WithLabelValues("ok").Inc()
	start := e.now()
	// The access log line is written when the tunnel closes, with its
	// lifetime, bytes and close code (ServeHTTP skips it at the 101).
	var logLine func(res wstunnel.Result)
	if s := q.site; s.log != nil && q.route.cfg.AccessLog {
		q.wsLog = true
		le := q.logEntry(s, 0)
		logLine = func(res wstunnel.Result) {
			le.Duration = e.now().Sub(le.Start)
			le.Bytes, le.WS, le.WSBytesIn, le.WSCode, le.WSCause = res.BytesOut, true, res.BytesIn, res.Code, res.Cause
			s.log.write(&le)
		}
	}
	e.Tunnels.Start(clientConn, clientBuf, conn, backendBuf, wstunnel.Options{
		IdleTimeout:  ws.IdleTimeout,
		PingInterval: ws.PingInterval,
		PingTimeout:  ws.PingTimeout,
		CloseTimeout: 5 * time.Second,
		ClientSocket: socket,
		ClientTLS:    clientTLS,
		Labels: wstunnel.Labels{
			Upstream: u.cfg.Name,
			Server:   b.Label(),
			Route:    q.site.cfg.Name + " " + q.route.cfg.Path,
			Client:   q.client,
		},
		OnEnd: func(res wstunnel.Result) {
			slot.Release()
			releaseClient()
			e.wsServerAdd(tk, -1)
			e.metrics.wsCloses.WithLabelValues(res.Cause, strconv.Itoa(int(res.Code))).Inc()
			e.metrics.wsLifetime.Observe(e.now().Sub(start).Seconds())
			e.metrics.wsBytes.WithLabelValues("in").Add(float64(res.BytesIn))
			e.metrics.wsBytes.WithLabelValues("out").Add(float64(res.BytesOut))
			if logLine != nil {
				logLine(res)
			}
		},
	})
}

// tlsUnder returns the *tls.Conn under c's wrappers when every wrapper
// above it can be bypassed (sockio.Unwrapper) and holds no unread bytes
// (sockio.Bufferer), else nil.
func tlsUnder(c net.Conn) *tls.Conn {
	for range 16 { // bounded, against a wrapper that unwraps to itself
		if b, ok := c.(sockio.Bufferer); ok && b.Buffered() != 0 {
			return nil
		}
		if tc, ok := c.(*tls.Conn); ok {
			return tc
		}
		u, ok := c.(sockio.Unwrapper)
		if !ok {
			return nil
		}
		if c = u.Unwrap(); c == nil {
			return nil
		}
	}
	return nil
}

// validUpgrade checks RFC 6455 §4.2.1: GET, a 16-byte base64 key and
// version 13.
func validUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	key := r.Header["Sec-Websocket-Key"]
	if len(key) != 1 {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key[0]))
	if err != nil || len(raw) != 16 {
		return false
	}
	v := r.Header["Sec-Websocket-Version"]
	return len(v) == 1 && strings.TrimSpace(v[0]) == "13"
}

// originAllowed applies the route's origin policy. With no list, the
// origin's host must be one of the site's host names and its scheme https
// (http when the request came over plain HTTP), like Channels'
// AllowedHostsOriginValidator. A missing Origin is refused unless "*" is
// configured: browsers always send it.
func (q *request) originAllowed(origin string) bool {
	rt := q.route
	if rt.anyOrigin {
		return true
	}
	if origin == "" || origin == "null" {
		return false
	}
	o := strings.TrimSuffix(strings.ToLower(origin), "/")
	if rt.origins != nil {
		return rt.origins[o]
	}
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok {
		return false
	}
	if scheme != "https" && !(scheme == "http" && q.ci.TLS == nil) {
		return false
	}
	host := hostOnly(hostport)
	if q.site.defaultOrigins[host] {
		return true
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return q.site.defaultOrigins["*"+host[i:]]
	}
	return false
}

func (e *Edge) wsClientAcquire(a netip.Addr, max int) bool {
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	if e.wsPerClient[a] >= max {
		return false
	}
	e.wsPerClient[a]++
	return true
}

func (e *Edge) wsClientRelease(a netip.Addr) {
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	if n := e.wsPerClient[a] - 1; n > 0 {
		e.wsPerClient[a] = n
	} else {
		delete(e.wsPerClient, a)
	}
}

func (e *Edge) wsServerAdd(k tunnelKey, d int) {
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	if n := e.wsPerServer[k] + d; n > 0 {
		e.wsPerServer[k] = n
	} else {
		delete(e.wsPerServer, k)
	}
}

func (e *Edge) tunnelCounts() map[tunnelKey]int {
	e.wsMu.Lock()
	defer e.wsMu.Unlock()
	out := make(map[tunnelKey]int, len(e.wsPerServer))
	for k, v := range e.wsPerServer {
		out[k] = v
	}
	return out
}

// orphaned reports whether a tunnel's route or backend server no longer
// exists in rt.
func (rt *Runtime) orphaned(l wstunnel.Labels) bool {
	siteName, path, _ := strings.Cut(l.Route, " ")
	found := false
	for _, s := range rt.sites {
		if s.cfg.Name != siteName {
			continue
		}
		for _, r := range s.routes {
			if r.cfg.Path == path && r.cfg.WebSocket.Enabled && r.upstream != nil && r.upstream.cfg.Name == l.Upstream {
				found = true
			}
		}
	}
	if !found {
		return true
	}
	u := rt.upstreams[l.Upstream]
	for _, b := range u.pool.Backends() {
		if b.Label() == l.Server {
			return false
		}
	}
	return true
}

// closeOrphanTunnels schedules the graceful close (1012) of tunnels whose
// route or server is gone in rt, after the close delay and spread over the
// close spread. When the timer fires the check is repeated against the
// Runtime current then, so a reload that brings the route back saves its
// streams.
func (e *Edge) closeOrphanTunnels(rt *Runtime) {
	any := false
	e.Tunnels.Range(func(t *wstunnel.Tunnel) bool {
		if rt.orphaned(t.Labels()) {
			any = true
			return false
		}
		return true
	})
	if !any {
		return
	}
	// The largest close_delay and close_spread of the WebSocket routes in
	// rt (an explicit zero is honoured; routes without websocket.enabled
	// do not count); the defaults when rt has none.
	delay, spread := config.DefaultWebSocketCloseDelay, config.DefaultWebSocketCloseSpread
	seen := false
	for _, s := range rt.cfg.Sites {
		for _, r := range s.Routes {
			if !r.WebSocket.Enabled {
				continue
			}
			if !seen {
				delay, spread, seen = r.WebSocket.CloseDelay, r.WebSocket.CloseSpread, true
			}
			delay = max(delay, r.WebSocket.CloseDelay)
			spread = max(spread, r.WebSocket.CloseSpread)
		}
	}
	e.after(delay, func() {
		cur := e.rt.Load()
		if cur == nil {
			return // shutting down: ShutdownTunnels closes them with 1001
		}
		n := e.Tunnels.CloseMatching(func(t *wstunnel.Tunnel) bool { return cur.orphaned(t.Labels()) },
			wstunnel.CloseServiceRestart, "service restart", "route_removed", spread)
		if n > 0 {
			e.log.Info("closing websocket tunnels whose route or server was removed", "tunnels", n, "code", 1012, "spread", spread)
		}
	})
}

// DrainServer drains a server of an upstream through the current Runtime:
// no new picks; sticky clients keep it until deadline (zero: until
// undrained); its WebSocket tunnels are closed with 1012 at the deadline
// (at once when there is none), spread over spread.
func (e *Edge) DrainServer(upstream, server string, deadline time.Time, spread time.Duration) error {
	rt := e.rt.Load()
	if rt == nil {
		return errNoBackend
	}
	p := rt.Pool(upstream)
	if p == nil {
		return balancer.ErrUnknownServer
	}
	if err := p.Drain(server, deadline); err != nil {
		return err
	}
	delay := time.Until(deadline)
	if deadline.IsZero() || delay < 0 {
		delay = 0
	}
	e.after(delay, func() {
		n := e.Tunnels.CloseMatching(func(t *wstunnel.Tunnel) bool {
			l := t.Labels()
			name, _, _ := strings.Cut(l.Server, "@")
			return l.Upstream == upstream && name == server
		}, wstunnel.CloseServiceRestart, "service restart", "drain", spread)
		if n > 0 {
			e.log.Info("closing websocket tunnels of a drained server", "upstream", upstream, "server", server, "tunnels", n)
		}
	})
	return nil
}

// ShutdownTunnels closes every tunnel with 1001 going away and waits for
// them until ctx ends.
func (e *Edge) ShutdownTunnels(ctx context.Context) error {
	return e.Tunnels.Shutdown(ctx, wstunnel.CloseGoingAway, "going away")
}
