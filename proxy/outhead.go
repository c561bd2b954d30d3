package proxy

import (
	"bufio"
	"net/http"
)

// writeHeaders writes the backend request's header lines for the
// upstream client: the same rewrite as outRequest (hop-by-hop and
// Connection-listed headers dropped, X-Forwarded-* and X-Real-IP set, the
// persistence cookie stripped) but straight into the connection's
// buffer, with no header map built. Host and the framing headers are the
// client's.
func (q *request) writeHeaders(w *bufio.Writer) {
	r := q.r
	connTokens := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipOutHeader(k) || len(connTokens) > 0 && hasToken(connTokens, k) {
			continue
		}
		if k == "Cookie" && q.sticky != "" {
			vv = stripCookie(vv, q.sticky)
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	trusted := trustedPeer(q.rt.trusted, q.ci.Peer)
	w.WriteString("X-Forwarded-For: ")
	if xff := r.Header["X-Forwarded-For"]; trusted && len(xff) > 0 {
		for _, v := range xff {
			w.WriteString(v)
			w.WriteString(", ")
		}
	}
	w.Write(q.ci.Peer.AppendTo(w.AvailableBuffer()))
	w.WriteString("\r\nX-Real-Ip: ")
	w.Write(q.client.AppendTo(w.AvailableBuffer()))
	proto := "http"
	if q.ci.TLS != nil {
		proto = "https"
	}
	if v := r.Header["X-Forwarded-Proto"]; trusted && len(v) == 1 && (v[0] == "https" || v[0] == "http") {
		proto = v[0]
	}
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(proto)
	w.WriteString("\r\nX-Forwarded-Host: ")
	if v := r.Header["X-Forwarded-Host"]; trusted && len(v) > 0 {
		w.WriteString(v[0])
	} else {
		w.WriteString(r.Host)
	}
	w.WriteString("\r\n")
}

// skipOutHeader reports the inbound headers never copied to the backend
// request as they are: hop-by-hop ones, the ones the proxy sets itself,
// and the framing the client writes.
func skipOutHeader(k string) bool {
	switch k {
	case "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Expect",
		"Host", "Content-Length":
		return true
	}
	return hopHeaders[k]
}

// upstreamTarget is the request target sent to the backend, in
// origin-form: the normalised path (see path.go), which is the one the
// route was chosen for, and the query as the client sent it (only bytes
// that cannot appear raw in an HTTP/1.1 request line are escaped). Every
// way of forwarding (plain requests and WebSocket handshakes) takes the
// target from here. A target already in normal form is returned as the
// client sent it, without allocating.
//
// serve answers 400 to a path normalizePath refuses, so such a request
// never gets here; should one, "/" is returned rather than anything
// un-normalised.
func upstreamTarget(r *http.Request) string {
	raw, rest := requestPath(r)
	fwd, _, reason := normalizePath(raw)
	if reason != "" {
		return "/"
	}
	if rest != "" {
		rest = wireSafeQuery(rest)
	}
	if u := r.RequestURI; len(fwd)+len(rest) == len(u) && u[:len(fwd)] == fwd && u[len(fwd):] == rest {
		return u
	}
	return fwd + rest
}
