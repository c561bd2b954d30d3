package proxy

import "github.com/gatehouse-proxy/gatehouse/internal/wsproxy"

// This file holds read-only views for status pages; nothing here is on
// the request path.

// TunnelServer names an upstream server by upstream name and server label
// (balancer.Backend.Label).
type TunnelServer = wsproxy.Server

// OpenTunnels returns how many WebSocket tunnels are open to each upstream
// server (servers with none are absent). The map is a copy.
func (e *Edge) OpenTunnels() map[TunnelServer]int { return e.Tunnels.Counts() }
