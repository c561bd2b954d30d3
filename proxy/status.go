package proxy

// This file holds read-only views for status pages; nothing here is on
// the request path.

// TunnelServer names an upstream server by upstream name and server label
// (balancer.Backend.Label).
type TunnelServer struct {
	Upstream, Server string
}

// OpenTunnels returns how many WebSocket tunnels are open to each upstream
// server (servers with none are absent). The map is a copy.
func (e *Edge) OpenTunnels() map[TunnelServer]int {
	counts := e.tunnelCounts()
	out := make(map[TunnelServer]int, len(counts))
	for k, n := range counts {
		out[TunnelServer{Upstream: k.upstream, Server: k.server}] = n
	}
	return out
}
