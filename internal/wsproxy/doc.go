// Package wsproxy is the proxy's side of a WebSocket upgrade (RFC 6455),
// between the request handler that picks and dials a backend and package
// wstunnel, which carries the stream once both conns are handed over.
//
// It checks the client's handshake ([ValidUpgrade]) and its Origin
// ([Origins]), runs the handshake with the dialled backend ([Handshake]),
// and, when the backend answers 101, hijacks the client conn, relays the
// 101 and starts the tunnel ([Tunnels.Accept]). [Tunnels] is the registry
// of live tunnels for the whole process: a [wstunnel.Registry] plus the
// counts the proxy caps and reports (tunnels per client address and per
// backend server).
//
// The caller keeps what needs its request: the choice of backend and its
// retries, the header rewrite of the handshake, the error pages, the
// access log and the metrics, which it records in [wstunnel.Options.OnEnd].
// The package imports no Prometheus and no project package outside
// internal/.
package wsproxy
