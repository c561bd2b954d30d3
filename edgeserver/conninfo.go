package edgeserver

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/h1guard"
)

// ConnInfo is what a Server knows about a client connection. It rides in
// the context of every request served on the connection (one allocation
// per connection, not per request); read it with ConnInfoOf.
type ConnInfo struct {
	// Listener is the Server's name ("http", "https").
	Listener string
	// Peer is the address of the TCP peer (the client, or the PROXY
	// protocol's source address), IPv4-mapped addresses unmapped.
	Peer netip.Addr
	// TLS is the connection's TLS state; nil on a plaintext listener.
	TLS *tls.ConnectionState
	// SendBound is the bound the connection (plaintext HTTP/1) keeps on
	// every write to the client that has to wait
	// (ServerOptions.SendTimeout), so that a handler bounding its writes
	// by the same need not set a write deadline around each. Zero over
	// TLS (a socket write is one TLS record, a fraction of a handler's
	// write, so the connection's bound per socket write would let a slow
	// reader take a handler's write far slower), on HTTP/2 (a handler
	// bounds its stream's writes), and where the socket is not read and
	// written through internal/sockio.
	SendBound time.Duration

	guard *h1guard.Conn // HTTP/1 framing guard; nil on HTTP/2
	h2    *h2Conn       // reset accounting; nil on HTTP/1
}

type connInfoKey struct{}

// WithConnInfo returns ctx carrying ci, as a Server's ConnContext does;
// for handlers served by something else (tests, benchmarks).
func WithConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// ConnInfoOf returns the connection information of a request served by a
// Server. A request served some other way (httptest in tests) gets one
// derived from r.RemoteAddr and r.TLS.
func ConnInfoOf(r *http.Request) *ConnInfo {
	if ci, ok := r.Context().Value(connInfoKey{}).(*ConnInfo); ok {
		return ci
	}
	ci := &ConnInfo{Listener: "direct", TLS: r.TLS}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ci.Peer = ap.Addr().Unmap()
	}
	return ci
}

// FramingRejected reports whether r stands for a request head the HTTP/1
// framing guard refused (request smuggling defence), with the guard's
// reason. The handler must answer such a request 400 (431 when
// HeadTooLarge) and close the connection; nothing of it may reach a
// backend.
func (ci *ConnInfo) FramingRejected(r *http.Request) (reason string, ok bool) {
	if ci.guard == nil || r.URL.Path != h1guard.MarkerPath {
		return "", false
	}
	return ci.guard.Rejected()
}

// HeadTooLarge reports whether r's request head is longer than the
// server accepts (ServerOptions.MaxHeaderBytes plus 4 KiB, request line
// included): on HTTP/1 the framing guard refused it, in place of the
// request; on HTTP/2 it is measured as the same head written in
// HTTP/1.1. The handler must answer 431 and, on HTTP/1, close the
// connection; nothing of it may reach a backend.
func (ci *ConnInfo) HeadTooLarge(r *http.Request) bool {
	if h := ci.h2; h != nil {
		return h.maxHead > 0 && h1HeadSize(r) > h.maxHead
	}
	if ci.guard == nil || r.URL.Path != h1guard.MarkerPath {
		return false
	}
	reason, ok := ci.guard.Rejected()
	return ok && reason == h1guard.ReasonHeadTooLarge
}

// h1HeadSize is the length of r's head written in HTTP/1.1: request line,
// Host, one line per field value, the blank line.
func h1HeadSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(r.Host) + 2
	for k, vv := range r.Header {
		for _, v := range vv {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// PeerAddr parses a net.Addr into an address, IPv4-mapped addresses
// unmapped; the zero Addr when it has none.
func PeerAddr(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return ap.Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
