package proxy

import (
	"net"
	"net/http"
	"strconv"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// WriteFields writes the backend request's header fields: the one header
// rewrite of the proxy, used by both upstream clients (the gatehouse
// client writes the fields straight into its connection buffer, the
// net/http one builds a header map from them) and by the WebSocket
// handshake. The inbound request is never modified.
//
//   - Hop-by-hop headers and those the client's Connection header names
//     are dropped; "Te: trailers" is kept. Host and the framing headers
//     are the upstream client's to write.
//   - The persistence cookie is stripped from Cookie.
//   - X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host and
//     X-Forwarded-Port are set by the proxy; from a trusted proxy its
//     X-Forwarded-For chain is extended and its proto, host and port
//     kept.
//   - Headers only a proxy may set (Forwarded, X-Original-URL,
//     True-Client-IP, CF-Connecting-IP, ...: trustOnlyHeaders) pass only
//     from a trusted proxy, and a client's header whose name is one of
//     the proxy's own spelled with underscores is dropped from anyone.
func (q *request) WriteFields(w uhttp.FieldWriter) {
	r := q.r
	trusted := trustedPeer(q.rt.trusted, q.ci.Peer)
	connTokens := r.Header["Connection"]
	for k, vv := range r.Header {
		switch outRule(k) {
		case outDrop:
			continue
		case outTrusted:
			if !trusted {
				continue
			}
		}
		if len(connTokens) > 0 && hasToken(connTokens, k) {
			continue
		}
		if k == "Cookie" && q.sticky != "" {
			if vv = stripCookie(vv, q.sticky); len(vv) == 0 {
				continue
			}
		}
		w.Field(k, vv)
	}
	if te := r.Header["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		w.Field("Te", teTrailers)
	}
	b := q.buf[:0]
	if xff := r.Header["X-Forwarded-For"]; trusted && len(xff) > 0 {
		for _, v := range xff {
			b = append(b, v...)
			b = append(b, ", "...)
		}
	}
	w.FieldBytes("X-Forwarded-For", q.ci.Peer.AppendTo(b))
	w.FieldBytes("X-Real-Ip", q.client.AppendTo(q.buf[:0]))
	proto := "http"
	if q.ci.TLS != nil {
		proto = "https"
	}
	if v := r.Header["X-Forwarded-Proto"]; trusted && len(v) == 1 && (v[0] == "https" || v[0] == "http") {
		proto = v[0]
	}
	w.FieldBytes("X-Forwarded-Proto", append(q.buf[:0], proto...))
	if v := r.Header["X-Forwarded-Host"]; trusted && len(v) > 0 {
		w.Field("X-Forwarded-Host", v[:1])
	} else {
		w.FieldBytes("X-Forwarded-Host", append(q.buf[:0], r.Host...))
	}
	if v := r.Header["X-Forwarded-Port"]; trusted && len(v) > 0 {
		w.Field("X-Forwarded-Port", v[:1])
	} else {
		w.FieldBytes("X-Forwarded-Port", strconv.AppendInt(q.buf[:0], int64(q.localPort()), 10))
	}
}

var teTrailers = []string{"trailers"}

// localPort is the port the client connected to: the local address of
// its connection (a PROXY protocol header's destination when there is
// one), or the scheme's default when the server did not say.
func (q *request) localPort() int {
	if a, ok := q.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		switch a := a.(type) {
		case *net.TCPAddr:
			return a.Port
		default:
			if _, p, err := net.SplitHostPort(a.String()); err == nil {
				if n, err := strconv.Atoi(p); err == nil {
					return n
				}
			}
		}
	}
	if q.ci.TLS != nil {
		return 443
	}
	return 80
}

// What WriteFields does with an inbound header.
const (
	outCopy    = iota // passed on
	outDrop           // never passed on as it is
	outTrusted        // passed on from a trusted proxy only
)

// outRule says what becomes of an inbound header on its way to the
// backend.
func outRule(k string) int {
	switch k {
	case "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
		"Expect", "Host", "Content-Length":
		// Set by the proxy, or the upstream client's to write.
		return outDrop
	}
	if hopHeaders[k] {
		return outDrop
	}
	if trustOnlyHeaders[k] {
		return outTrusted
	}
	for i := 0; i < len(k); i++ {
		if k[i] == '_' {
			// Django, gunicorn, uvicorn and Daphne read "X_Forwarded_For"
			// as X-Forwarded-For (WSGI's HTTP_X_FORWARDED_FOR): a client
			// must not reach the proxy's headers that way (nginx drops
			// every header with an underscore by default).
			if underscoreAliases[canonicalDash(k)] {
				return outDrop
			}
			break
		}
	}
	return outCopy
}

// trustOnlyHeaders are headers a backend may take as the word of a proxy
// in front of it: the client's address or scheme, the original URL. They
// pass only from a trusted proxy (issue 12.11).
var trustOnlyHeaders = map[string]bool{
	"Forwarded":           true, // RFC 7239: for=, proto=, host=
	"X-Original-Url":      true, // IIS/ARR, Symfony: the path routing and access rules saw
	"X-Rewrite-Url":       true,
	"True-Client-Ip":      true, // Akamai, Cloudflare Enterprise
	"X-Client-Ip":         true,
	"Cf-Connecting-Ip":    true, // Cloudflare
	"X-Forwarded-Server":  true,
	"X-Forwarded-Scheme":  true,
	"X-Scheme":            true,
	"X-Cluster-Client-Ip": true,
}

// underscoreAliases are the names a header with underscores must not
// alias: the proxy's own and the trust-only ones.
var underscoreAliases = func() map[string]bool {
	m := map[string]bool{"X-Real-Ip": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true,
		"X-Forwarded-Host": true, "X-Forwarded-Port": true}
	for k := range trustOnlyHeaders {
		m[k] = true
	}
	return m
}()

// canonicalDash is the canonical form of k with underscores read as
// dashes.
func canonicalDash(k string) string {
	b := []byte(k)
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	return http.CanonicalHeaderKey(string(b))
}

// upstreamTarget is the request target sent to the backend: the client's
// own when it is in origin-form (as nginx passes it), else the URL's.
func upstreamTarget(r *http.Request) string {
	if u := r.RequestURI; len(u) > 0 && u[0] == '/' {
		return u
	}
	return r.URL.RequestURI()
}
