package wsproxy

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// ValidUpgrade checks a client's upgrade request against RFC 6455 §4.2.1:
// GET, one 16-byte base64 key and version 13. The Upgrade and Connection
// tokens are the caller's to check.
func ValidUpgrade(r *http.Request) bool {
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

// Origins is the Origin policy of one route. The zero value refuses every
// origin.
type Origins struct {
	any   bool
	list  map[string]bool // nil: hosts decides
	hosts map[string]bool
}

// NewOrigins returns the policy for a route's configured origins (exact
// "scheme://host[:port]" values, compared case-insensitively and without a
// trailing slash; "*" allows any origin, a missing one included). With no
// list, an origin is allowed when its host is one of hosts (the site's
// host names, "*.example.com" wildcards included; the map is kept, not
// copied) and its scheme is https, or http on a plain HTTP request, like
// Channels' AllowedHostsOriginValidator.
func NewOrigins(list []string, hosts map[string]bool) Origins {
	o := Origins{hosts: hosts}
	if len(list) > 0 {
		o.list = make(map[string]bool, len(list))
		for _, v := range list {
			if v == "*" {
				o.any = true
			}
			o.list[strings.TrimSuffix(strings.ToLower(v), "/")] = true
		}
	}
	return o
}

// Allow applies the policy to a request's Origin header value (empty when
// absent); overTLS is whether the request came over HTTPS. A missing or
// "null" Origin is refused unless "*" is configured: browsers always send
// one.
func (p Origins) Allow(origin string, overTLS bool) bool {
	if p.any {
		return true
	}
	if origin == "" || origin == "null" {
		return false
	}
	o := strings.TrimSuffix(strings.ToLower(origin), "/")
	if p.list != nil {
		return p.list[o]
	}
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok {
		return false
	}
	if scheme != "https" && !(scheme == "http" && !overTLS) {
		return false
	}
	host := hostOnly(hostport)
	if p.hosts[host] {
		return true
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return p.hosts["*"+host[i:]]
	}
	return false
}

// hostOnly is the host of an Origin's host[:port] (an IPv6 address without
// its brackets).
func hostOnly(hostport string) string {
	if hostport == "" {
		return ""
	}
	if hostport[0] == '[' {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[1:i]
		}
		return hostport
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && strings.IndexByte(hostport, ':') == i {
		if _, err := strconv.Atoi(hostport[i+1:]); err == nil || i+1 == len(hostport) {
			return hostport[:i]
		}
	}
	return hostport
}

// Handshake sends req (the client's upgrade, rewritten for the backend)
// on the dialled backend conn and reads the answer, all before deadline.
// br holds what was read past the response head (the backend's first
// frames after a 101); conn's deadline is left set: [Tunnels.Accept]
// clears it.
func Handshake(conn net.Conn, req *uhttp.Request, deadline time.Time) (resp *http.Response, br *bufio.Reader, err error) {
	_ = conn.SetDeadline(deadline)
	return uhttp.Upgrade(conn, req, "websocket")
}

// Switched reports whether the backend accepted the upgrade: 101 with
// Upgrade: websocket. Anything else (Channels answers 403 to a rejected
// handshake) is a refusal the caller passes on to the client.
func Switched(resp *http.Response) bool {
	return resp.StatusCode == http.StatusSwitchingProtocols && strings.EqualFold(firstValue(resp.Header, "Upgrade"), "websocket")
}

func firstValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}
