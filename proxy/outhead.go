package proxy

import (
	"net"
	"net/http"
	"strconv"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// forwardHeader is the backend request's header: the proxy's one header
// rewrite (uhttp.Forward), for both upstream clients and the WebSocket
// handshake, with what it needs to know of this request.
func (q *request) forwardHeader() *uhttp.Forward {
	q.fwd = uhttp.Forward{
		In:      q.r.Header,
		Host:    q.r.Host,
		Peer:    q.ci.Peer,
		Client:  q.client,
		Trusted: trustedPeer(q.rt.trusted, q.ci.Peer),
		TLS:     q.ci.TLS != nil,
		Port:    q.localPort(),
		Sticky:  q.sticky,
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

// upstreamTarget is the request target sent to the backend: the client's
// own when it is in origin-form (as nginx passes it), else the URL's.
func upstreamTarget(r *http.Request) string {
	if u := r.RequestURI; len(u) > 0 && u[0] == '/' {
		return u
	}
	return r.URL.RequestURI()
}
