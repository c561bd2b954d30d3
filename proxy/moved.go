package proxy

import (
	"net/http"
	"net/netip"

	"github.com/gatehouse-proxy/gatehouse/internal/realip"
	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
)

// Names that outhead.go still calls, forwarding to the packages the code
// moved to (path normalisation: reqpath; trusted proxies: realip). Other
// files call those packages directly; these go once outhead.go does too.

func normalizePath(raw string) (fwd, match, reason string) { return reqpath.Normalize(raw) }

func requestPath(r *http.Request) (path, rest string) { return reqpath.Split(r) }

func wireSafeQuery(q string) string { return reqpath.WireSafeQuery(q) }

func trustedPeer(trusted []netip.Prefix, addr netip.Addr) bool { return realip.Trusted(trusted, addr) }
