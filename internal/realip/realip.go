// Package realip finds the client behind trusted proxies and applies
// allow/deny address lists, the way nginx's realip and access modules do:
// [Client] walks X-Forwarded-For from the right past the trusted proxies
// (set_real_ip_from, real_ip_recursive on), [Trusted] tells whether a peer
// is one of them, and [Allowed] applies a site's or route's allow and deny
// lists.
package realip

import (
	"net/http"
	"net/netip"
	"strings"
)

// Trusted reports whether addr is in one of the trusted-proxy CIDRs.
func Trusted(trusted []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Client resolves the client address the way nginx does with
// set_real_ip_from and real_ip_recursive on: the inbound X-Forwarded-For
// chain is believed only when the peer is a trusted proxy, and it is
// walked from the right, skipping trusted proxies, to the first address
// that is not one. A chain made only of trusted addresses yields its
// leftmost entry. Anything unparsable stops the walk at the last good
// address. X-Real-IP is used, from a trusted peer, only when there is no
// X-Forwarded-For. h is the request's header; it is not even looked at
// when the peer is not trusted (an edge facing the internet trusts none).
func Client(trusted []netip.Prefix, peer netip.Addr, h http.Header) netip.Addr {
	peer = peer.Unmap()
	if len(trusted) == 0 || !Trusted(trusted, peer) {
		return peer
	}
	xff := h["X-Forwarded-For"]
	if len(xff) == 0 {
		if v := h["X-Real-Ip"]; len(v) > 0 && v[0] != "" {
			if a, err := netip.ParseAddr(strings.TrimSpace(v[0])); err == nil {
				return a.Unmap()
			}
		}
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for {
			j := strings.LastIndexByte(v, ',')
			part := strings.TrimSpace(v[j+1:])
			if part != "" {
				a, err := parseForwardedAddr(part)
				if err != nil {
					return client
				}
				client = a
				if !Trusted(trusted, a) {
					return a
				}
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return client
}

// parseForwardedAddr parses one X-Forwarded-For entry: an address, or an
// address with a port ("1.2.3.4:5678", "[::1]:80") as some proxies send.
func parseForwardedAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// inPrefixes reports whether a is in any of ps.
func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Allowed applies a site's or route's allow/deny lists as nginx does for
// the common case: a denied address is refused, and when an allow list
// exists, only addresses in it are let in.
func Allowed(allow, deny []netip.Prefix, a netip.Addr) bool {
	if len(deny) > 0 && inPrefixes(deny, a) {
		return false
	}
	if len(allow) > 0 && !inPrefixes(allow, a) {
		return false
	}
	return true
}
