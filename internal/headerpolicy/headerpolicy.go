// Package headerpolicy says which HTTP header fields Gatehouse's
// configuration may name, and in what form: the syntax of field names and
// values (RFC 9110), and the fields Gatehouse writes itself — hop-by-hop
// and framing fields, the forwarding headers, HSTS, the request ID, a
// backend's X-Accel instructions — which a header rule may not change,
// with the reason to give the operator.
//
// Names are compared in canonical form (textproto.CanonicalMIMEHeaderKey).
package headerpolicy

import (
	"fmt"
	"net/textproto"
	"strings"
)

// hopByHop reports whether name is a hop-by-hop field (RFC 9110 §7.6.1,
// and the legacy ones every proxy strips): it describes one connection.
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
		return true
	}
	return false
}

// forwarding reports whether name is a request field Gatehouse writes
// from the connection and trusted_proxies.
func forwarding(name string) bool {
	switch name {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip":
		return true
	}
	return false
}

// isAccelHeader reports whether a response field is an instruction from a
// backend to the proxy (staticfile.IsAccelHeader, which a proxy test keeps
// in step with this through config).
func isAccelHeader(name string) bool {
	return strings.HasPrefix(name, "X-Accel-") || name == "X-Sendfile" || name == "X-Sendfile-Type" || name == "X-Lighttpd-Send-File"
}

// Response says why a header rule may not touch the response field name
// (canonical form), or "" when it may. requestID is the request ID
// header's canonical name, "" when request IDs are off.
func Response(name, requestID string) string {
	switch {
	case hopByHop(name):
		return "is hop-by-hop (it describes one connection); Gatehouse writes it"
	case name == "Content-Length":
		return "frames the body; Gatehouse writes it"
	case name == "Content-Encoding" || name == "Content-Range":
		return "describes the body as it is sent; changing it would make clients misread the bytes"
	case name == "Strict-Transport-Security":
		return "is set with the site's hsts key (and sent over TLS only)"
	case isAccelHeader(name):
		return "is an instruction from a backend to the proxy, removed from every response"
	case requestID != "" && name == requestID:
		return "carries the request ID ([request_id] header); Gatehouse sets it"
	}
	return ""
}

// Request says why a header rule may not touch the request field name
// (canonical form) in the given way (op "set", "add" or "remove"), or ""
// when it may. requestID is as for Response.
func Request(name, op, requestID string) string {
	switch {
	case name == "Host":
		return "is passed as the client sent it (nginx's proxy_set_header Host $host); it cannot be changed"
	case forwarding(name):
		return "is written by Gatehouse from the connection and trusted_proxies; a rule cannot change it"
	case hopByHop(name) || name == "Content-Length" || name == "Expect":
		return "is hop-by-hop or frames the body; Gatehouse writes it"
	case name == "Cookie" && op != "remove":
		return "carries the client's cookies (the sticky cookie taken out); a rule may only remove it"
	case requestID != "" && name == requestID:
		return "carries the request ID ([request_id] header); Gatehouse sets it"
	}
	if strings.IndexByte(name, '_') >= 0 {
		alias := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if alias != name && Request(alias, op, requestID) != "" {
			return fmt.Sprintf("is %s spelled with underscores, which Django reads as the same header", alias)
		}
	}
	return ""
}

// ValidName reports whether s is a field name (an RFC 9110 token).
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// CheckValue says why v cannot be a configured field value (empty, a
// control character, white space at either end), or "" when it can.
func CheckValue(v string) string {
	if v == "" {
		return "is empty (to drop the header, list it in remove)"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Sprintf("contains the control character %q", c)
		}
	}
	if v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return "starts or ends with white space"
	}
	return ""
}

// Reserved reports whether name (canonical form) already has a meaning
// in HTTP or to Gatehouse, so that it cannot carry the request ID: a
// hop-by-hop, framing, forwarding or cookie field, Host, Expect, or a
// response field a rule may not touch.
func Reserved(name string) bool {
	return hopByHop(name) || forwarding(name) || name == "Host" || name == "Content-Length" ||
		name == "Cookie" || name == "Set-Cookie" || name == "Expect" || Response(name, "") != ""
}
