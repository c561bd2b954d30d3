package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/stickycookie"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/internal/wsproxy"
	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

// serveWebSocket proxies an HTTP/1.1 WebSocket upgrade: validate, check the
// Origin, pick a backend (sticky cookie honoured), do the handshake with
// it, and on 101 hand both connections to a tunnel that outlives this
// request and this Runtime.
func (q *request) serveWebSocket() {
	r, e := q.r, q.e
	ws := &q.route.cfg.WebSocket
	if !wsproxy.ValidUpgrade(r) {
		e.metrics.WSUpgrades.WithLabelValues("bad_request").Inc()
		q.fail(http.StatusBadRequest, true)
		return
	}
	if !q.route.origins.Allow(headerValue(r.Header, "Origin"), q.ci.TLS != nil) {
		e.metrics.WSUpgrades.WithLabelValues("origin_rejected").Inc()
		e.log.Info("websocket origin rejected", "origin", headerValue(r.Header, "Origin"), "site", q.site.cfg.Name)
		q.fail(http.StatusForbidden, true)
		return
	}
	if ws.MaxPerClient > 0 && !e.Tunnels.AcquireClient(q.client, ws.MaxPerClient) {
		e.metrics.WSUpgrades.WithLabelValues("capped").Inc()
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
			e.Tunnels.ReleaseClient(client)
		}
	}

	u := q.route.upstream
	key := balancer.Key{Client: q.client}
	var stickyName string
	if u.cfg.Sticky != nil {
		stickyName = u.cfg.Sticky.Cookie
		key.Cookie = stickycookie.Value(r.Header, stickyName)
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
		e.metrics.UpstreamErrors.WithLabelValues(u.cfg.Name, "dial").Inc()
		key.Tried.Add(b)
		b = nil
	}
	if conn == nil {
		releaseClient()
		e.metrics.WSUpgrades.WithLabelValues("backend_error").Inc()
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
	resp, br, err := wsproxy.Handshake(conn, &uhttp.Request{Method: r.Method, Target: upstreamTarget(r), Host: r.Host,
		Header: q.forwardHeader()}, e.now().Add(ws.ConnectTimeout))
	if err != nil {
		kind := classify(r.Context(), err)
		if kind.countsAgainstBackend() {
			b.ReportFailure(e.now())
		}
		e.metrics.WSUpgrades.WithLabelValues("backend_error").Inc()
		q.fail(kind.status(err), true)
		return
	}
	b.ReportSuccess() // ends a passive-health exclusion, if any
	q.upstream = b.Addr()
	var cookie *http.Cookie
	if stickyName != "" && !hit {
		cookie = q.stickyCookie(b.ID())
	}
	if !wsproxy.Switched(resp) {
		// The backend refused (Channels answers 403 to a rejected
		// handshake): pass its answer on and close.
		e.metrics.WSUpgrades.WithLabelValues("backend_refused").Inc()
		q.w.Header()["Connection"] = closeValue
		if err := q.copyResponse(resp, cookie); err != nil {
			q.bodyFailed(b, err)
			panic(http.ErrAbortHandler)
		}
		return
	}

	idHeader := q.rt.cfg.RequestID.Header
	var extra []string
	if cookie != nil {
		extra = append(extra, "Set-Cookie: "+cookie.String(), "Cache-Control: private")
	}
	if q.id != nil {
		extra = append(extra, idHeader+": "+q.id[0])
	}
	// The access log line is written when the tunnel closes, with its
	// lifetime, bytes and close code (ServeHTTP skips it at the 101).
	q.status = http.StatusSwitchingProtocols
	var logLine func(res wstunnel.Result)
	if s := q.site; s.log != nil && q.route.cfg.AccessLog {
		le := q.logEntry(s, 0)
		logLine = func(res wstunnel.Result) {
			le.Duration = e.since(le.Start)
			le.Bytes, le.WS, le.WSBytesIn, le.WSCode, le.WSCause = res.BytesOut, true, res.BytesIn, res.Code, res.Cause
			s.log.write(&le)
		}
	}
	start := e.now()
	err = e.Tunnels.Accept(q.w, &wsproxy.Accepted{
		Response: resp,
		Backend:  conn,
		Reader:   br,
		Skip:     func(k string) bool { return accelHeader(k) || q.id != nil && k == idHeader },
		Extra:    extra,
		Server:   wsproxy.Server{Upstream: u.cfg.Name, Server: b.Label()},
		Tunnel: wstunnel.Options{
			IdleTimeout:  ws.IdleTimeout,
			PingInterval: ws.PingInterval,
			PingTimeout:  ws.PingTimeout,
			CloseTimeout: config.WebSocketCloseTimeout,
			Labels: wstunnel.Labels{
				Upstream: u.cfg.Name,
				Server:   b.Label(),
				Route:    q.site.cfg.Name + " " + q.route.cfg.Path,
				Client:   q.client,
			},
			OnEnd: func(res wstunnel.Result) {
				slot.Release()
				releaseClient()
				e.metrics.WSCloses.WithLabelValues(res.Cause, strconv.Itoa(int(res.Code))).Inc()
				e.metrics.WSLifetime.Observe(e.since(start).Seconds())
				e.metrics.WSBytes.WithLabelValues("in").Add(float64(res.BytesIn))
				e.metrics.WSBytes.WithLabelValues("out").Add(float64(res.BytesOut))
				if logLine != nil {
					logLine(res)
				}
			},
		},
	})
	switch {
	case errors.Is(err, wsproxy.ErrClientGone):
		q.status = StatusClientClosed
		return
	case err != nil:
		e.metrics.WSUpgrades.WithLabelValues("backend_error").Inc()
		q.fail(http.StatusInternalServerError, true)
		return
	}
	ok = true
	q.wsLog = logLine != nil
	e.metrics.WSUpgrades.WithLabelValues("ok").Inc()
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
	e.Tunnels.Later(delay, func() {
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
	e.Tunnels.Later(delay, func() {
		n := e.Tunnels.CloseServer(upstream, server, wstunnel.CloseServiceRestart, "service restart", "drain", spread)
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
