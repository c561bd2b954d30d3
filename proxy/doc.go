// Package proxy is Gatehouse's HTTP edge: it accepts client connections,
// routes requests by Host and longest path prefix to upstream pools, and
// forwards them (HTTP/1.1, HTTP/2 from clients; HTTP/1.1 with keep-alive to
// backends), including WebSocket upgrades.
//
// # Request lifecycle
//
// A Server owns one listener's accept loop. Each connection is TLS
// terminated there (with a handshake deadline), then served as HTTP/2 when
// ALPN chose h2, or else passed through the HTTP/1 framing guard
// (package h1guard: requests with ambiguous framing are answered 400,
// heads over the size limit 431, and the connection closed before a
// backend sees them) into net/http. Every
// request reaches Edge.ServeHTTP, which loads the current Runtime once and
// uses it for the whole request: site by Host (421 for a Host no site
// claims), client address from trusted proxies only, allow/deny lists,
// route by longest prefix, body limit, rate-limit zones, then either the
// route's files (files.go: package staticfile, with a hand-over of missing
// names to the route's upstream when it has one) or the client's share of
// the upstream's slots (clientshare.go) and forwarding with retries or a
// WebSocket tunnel (websocket.go picks and dials the backend; package
// wsproxy checks the handshake, relays the 101 and starts the tunnel). A
// backend response naming a file with
// X-Accel-Redirect is served from the site's internal file route once the
// backend is released. Every request gets a request ID first
// (requestid.go); the header rules of the site and route (headers.go) are
// applied to every response, proxied, file or Gatehouse's own, and to
// every backend request, through the one header rewrite
// (upstream.Forward). A request whose client has gone (an
// HTTP/2 stream it reset) is not forwarded, and an HTTP/2 connection over
// its reset budget gets no answer (edgeserver.ConnInfo.StreamStart).
// Every write of the response is bounded by the send timeout (package
// sendbound).
// Proxied and file responses of routes with compress on are compressed
// (package compress, through compress.go) once their head is complete,
// after the header rules; the encoders in use are capped for the whole
// process (Deps.Encoders).
//
// # Reload lifecycle
//
// Build compiles a config.Config into a complete Runtime (pools, upstream clients,
// access logs) without starting anything; a failure leaves nothing behind.
// Runtime.Start launches its background loops (health checks, DNS
// re-resolution) under the generation's context. Edge.Swap publishes the
// new Runtime with one atomic store; the caller then closes the old one,
// whose in-flight requests finish on it. State that must survive a reload
// lives outside Runtime, in objects created once per process and passed in
// Deps: backend health (balancer.Registry), access log files
// (accesslog.Logs), Metrics, the file servers with their open-file caches
// (staticfile.Servers), the cap on compression encoders
// (compress.EncoderLimit), and the WebSocket tunnels (Edge.Tunnels), which
// a reload keeps unless their route or server disappeared.
package proxy
