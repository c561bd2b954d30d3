package upstream

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Forward is the header of a proxied request as the backend sees it: the
// client's header rewritten. It is the proxy's one header rewrite, used by
// both clients (Client writes its fields straight into the connection
// buffer, NetHTTP builds a header map from them) and by the WebSocket
// handshake. The client's header is never modified.
//
//   - Hop-by-hop headers (HopByHop) and those the client's Connection
//     header names are dropped; "Te: trailers" is kept. Expect is dropped
//     (the proxy's server answers 100-continue itself). Host and the
//     framing headers are the upstream client's to write.
//   - The persistence cookie (Sticky) is stripped from Cookie.
//   - X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host and
//     X-Forwarded-Port are set; from a trusted proxy its X-Forwarded-For
//     chain is extended, and its proto, host and port are kept.
//   - Headers only a proxy may set (Forwarded, X-Original-URL,
//     True-Client-IP, CF-Connecting-IP, ...) pass only from a trusted
//     proxy, and a header whose name is one of those, or of the proxy's
//     own, spelled with underscores is dropped from anyone.
//   - The client's fields named in Omit (the proxy's header rules, its
//     request ID) are dropped, with their underscore spellings; Extra
//     then writes the proxy's own fields, last.
type Forward struct {
	// In is the client's request header.
	In http.Header
	// Host is the client's Host, the default X-Forwarded-Host.
	Host string
	// Peer is the TCP peer (or the PROXY protocol source); Client the
	// client address worked out from trusted proxies (X-Real-IP).
	Peer, Client netip.Addr
	// Trusted says Peer is a trusted proxy.
	Trusted bool
	// TLS says the client connection is TLS (X-Forwarded-Proto https).
	TLS bool
	// Port is the port the client connected to (X-Forwarded-Port).
	Port int
	// Sticky is the persistence cookie's name, removed from Cookie; ""
	// for none.
	Sticky string
	// Omit holds the canonical names of client fields that are not
	// passed on, because the proxy removes them or writes its own (header
	// rules, the request ID); nil: none. A name spelled with underscores
	// for one of them is dropped too. It is never modified.
	Omit map[string]bool
	// Extra writes the proxy's own fields after the forwarding headers;
	// nil: none. It must not write a field the rewrite owns (the
	// forwarding headers, Host, hop-by-hop and framing fields): the
	// proxy's configuration refuses such rules.
	Extra Fields

	buf [64]byte // scratch for the values built per request
}

// WriteFields implements Fields.
func (f *Forward) WriteFields(w FieldWriter) {
	connTokens := f.In["Connection"]
	for k, vv := range f.In {
		switch outRule(k, f.Omit) {
		case outDrop:
			continue
		case outTrusted:
			if !f.Trusted {
				continue
			}
		}
		if len(connTokens) > 0 && hasToken(connTokens, k) {
			continue
		}
		if k == "Cookie" && f.Sticky != "" {
			if vv = StripCookie(vv, f.Sticky); len(vv) == 0 {
				continue
			}
		}
		w.Field(k, vv)
	}
	if te := f.In["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		w.Field("Te", teTrailers)
	}
	b := f.buf[:0]
	if xff := f.In["X-Forwarded-For"]; f.Trusted && len(xff) > 0 {
		for _, v := range xff {
			b = append(b, v...)
			b = append(b, ", "...)
		}
	}
	w.FieldBytes("X-Forwarded-For", f.Peer.AppendTo(b))
	w.FieldBytes("X-Real-Ip", f.Client.AppendTo(f.buf[:0]))
	proto := "http"
	if f.TLS {
		proto = "https"
	}
	if v := f.In["X-Forwarded-Proto"]; f.Trusted && len(v) == 1 && (v[0] == "https" || v[0] == "http") {
		proto = v[0]
	}
	w.FieldBytes("X-Forwarded-Proto", append(f.buf[:0], proto...))
	if v := f.In["X-Forwarded-Host"]; f.Trusted && len(v) > 0 {
		w.Field("X-Forwarded-Host", v[:1])
	} else {
		w.FieldBytes("X-Forwarded-Host", append(f.buf[:0], f.Host...))
	}
	if v := f.In["X-Forwarded-Port"]; f.Trusted && len(v) > 0 {
		w.Field("X-Forwarded-Port", v[:1])
	} else {
		w.FieldBytes("X-Forwarded-Port", strconv.AppendInt(f.buf[:0], int64(f.Port), 10))
	}
	if f.Extra != nil {
		f.Extra.WriteFields(w)
	}
}

var teTrailers = []string{"trailers"}

// What Forward does with a client's header.
const (
	outCopy    = iota // passed on
	outDrop           // never passed on as it is
	outTrusted        // passed on from a trusted proxy only
)

func outRule(k string, omit map[string]bool) int {
	if omit[k] {
		return outDrop
	}
	switch k {
	case "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
		"Expect", "Host", "Content-Length":
		// Set by the proxy, or the upstream client's to write.
		return outDrop
	}
	if hopHeaders[k] {
		return outDrop
	}
	if trustOnly[k] {
		return outTrusted
	}
	if strings.IndexByte(k, '_') >= 0 && dashAlias(k, omit) {
		// Django, gunicorn, uvicorn and Daphne read "X_Forwarded_For" as
		// X-Forwarded-For (WSGI's HTTP_X_FORWARDED_FOR): a client must not
		// reach the proxy's headers that way. nginx drops every header
		// with an underscore by default.
		return outDrop
	}
	return outCopy
}

// dashAlias reports whether k, a name with underscores, reads as one of
// the proxy's own fields or one of omit once its underscores are dashes.
func dashAlias(k string, omit map[string]bool) bool {
	alias := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	return underscoreAliases[alias] || omit[alias]
}

// trustOnly are headers a backend may take as the word of a proxy in
// front of it: the client's address or scheme, the original URL. They
// pass only from a trusted proxy.
var trustOnly = map[string]bool{
	"Forwarded":           true, // RFC 7239: for=, proto=, host=
	"X-Original-Url":      true, // IIS/ARR, Symfony: the path the rules saw
	"X-Rewrite-Url":       true,
	"True-Client-Ip":      true, // Akamai, Cloudflare Enterprise
	"X-Client-Ip":         true,
	"Cf-Connecting-Ip":    true, // Cloudflare
	"X-Cluster-Client-Ip": true,
	"X-Forwarded-Server":  true,
	"X-Forwarded-Scheme":  true,
	"X-Scheme":            true,
}

// underscoreAliases are the names a header with underscores must not
// alias: the proxy's own and the trust-only ones.
var underscoreAliases = func() map[string]bool {
	m := map[string]bool{"X-Real-Ip": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true,
		"X-Forwarded-Host": true, "X-Forwarded-Port": true}
	for k := range trustOnly {
		m[k] = true
	}
	return m
}()

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

// HopByHop reports whether the canonical header name k is hop-by-hop:
// never passed on by a proxy, in either direction.
func HopByHop(k string) bool { return hopHeaders[k] }

// StripCookie removes the named cookie from Cookie header lines (HAProxy's
// indirect: the backend never sees the persistence cookie).
func StripCookie(lines []string, name string) []string {
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
