// Package edgeserver is Gatehouse's connection stack: everything between
// a client's TCP connection and an HTTP request handler.
//
// A [Listener] wraps the public net.Listener with the accept gates: banned
// clients and connections over the per-client or total caps (package
// ratelimit decides) are closed right after accept, before a single TLS
// byte is read or written; on listeners behind another L4 balancer the
// PROXY protocol header (v1 or v2) is read first, so bans and caps apply
// to the real client.
//
// A [Server] owns one listener's accept loop. Each connection is TLS
// terminated there (with a handshake deadline), then served as HTTP/2 by net/http when ALPN chose
// h2, or else passed through the HTTP/1 framing guard (package
// internal/h1guard: requests with ambiguous framing never reach the
// handler as they are) into net/http. The guard stays on for the whole
// connection unless the protocol switches: the Server tells it when a
// handler hijacks the connection, and it passes bytes through unchecked
// only once a 101 was written on a hijacked connection. Sockets are read
// and written with raw system calls (internal/sockio).
//
// The handler learns about the connection from [ConnInfoOf]: listener
// name, peer address, TLS state, and whether the framing guard refused a
// request head ([ConnInfo.FramingRejected]), and it reports each request's
// start and end ([ConnInfo.StreamStart], [ConnInfo.StreamEnd]) so an
// HTTP/2 connection whose client cancels far more requests than it lets
// complete (rapid reset) is closed. It never needs the concrete
// connection types: every wrapper implements sockio.Unwrapper (and
// sockio.Bufferer where it may hold bytes), so sockio.Socket finds the
// socket under a hijacked connection.
package edgeserver
