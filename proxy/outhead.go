package proxy

import (
	"net"
	"net/http"
	"strconv"

	"github.com/gatehouse-proxy/gatehouse/internal/realip"
	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// forwardHeader is the backend request's header: the proxy's one header
// rewrite (uhttp.Forward), for both upstream clients and the WebSocket
// handshake, with what it needs to know of this request, the route's
// request header rules and the request ID.
func (q *request) forwardHeader() *uhttp.Forward {
	q.fwd = uhttp.Forward{
		In:      q.r.Header,
		Host:    q.r.Host,
		Peer:    q.ci.Peer,
		Client:  q.client,
		Trusted: realip.Trusted(q.rt.trusted, q.ci.Peer),
		TLS:     q.ci.TLS != nil,
		Port:    q.localPort(),
		Sticky:  q.sticky,
		Omit:    q.route.reqRules.omit,
	}
	if q.id != nil || len(q.route.reqRules.fields) > 0 {
		q.extra.q = q
		q.fwd.Extra = &q.extra
	}
	return &q.fwd
}

// localPort is the port the client connected to: the local address of
// its connection (a PROXY protocol header's destination when there is
// one), or the scheme's default when the server did not say.
func (q *request) localPort() int {
	if a, ok := q.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := a.(*net.TCPAddr); ok {
			return ta.Port
		}
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				return n
			}
		}
	}
	if q.ci.TLS != nil {
		return 443
	}
	return 80
}

// upstreamTarget is the request target sent to the backend, in
// origin-form: the normalised path (internal/reqpath), which is the one the
// route was chosen for, and the query as the client sent it (only bytes
// that cannot appear raw in an HTTP/1.1 request line are escaped). Every
// way of forwarding (plain requests and WebSocket handshakes) takes the
// target from here. A target already in normal form is returned as the
// client sent it, without allocating.
//
// serve answers 400 to a path reqpath.Normalize refuses, so such a request
// never gets here; should one, "/" is returned rather than anything
// un-normalised.
func upstreamTarget(r *http.Request) string {
	raw, rest := reqpath.Split(r)
	fwd, _, reason := reqpath.Normalize(raw)
	if reason != "" {
		return "/"
	}
	if rest != "" {
		rest = reqpath.WireSafeQuery(rest)
	}
	if u := r.RequestURI; len(fwd)+len(rest) == len(u) && u[:len(fwd)] == fwd && u[len(fwd):] == rest {
		return u
	}
	return fwd + rest
}
