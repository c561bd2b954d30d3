// Package sockio reads and writes the proxy's TCP sockets with raw system
// calls, for the hot paths: the client connections of the public
// listeners, the upstream client's connections and the WebSocket tunnels.
//
// A [Conn] behaves as the conn it wraps (deadlines, Close from another
// goroutine, the poller's wake-ups: every wait goes through the wrapped
// conn's syscall.RawConn); only its read(2) and write(2) skip the
// runtime's entersyscall/exitsyscall bookkeeping (see [Read] for why that
// matters on a mostly idle proxy). The build tag gatehouse_nosockio
// builds without the raw paths: the A/B that keeps them honest (in the
// harness, WebSocket round trips were 19-32 % faster with them;
// docs/performance.md, "Cleverness budget").
//
// A Conn's deadlines reach the socket when an operation has to wait, not
// when they are set: net/http sets a client connection's read deadline
// six times per request, each a call into the runtime's poller that
// resets a timer (and reads the clock twice), while a request needs the
// one in force when it waits, and on a busy connection its reads find
// their data and its writes buffer space without waiting. An operation
// that starts after the deadline set has passed fails, as on the socket.
// A write timeout (SetWriteTimeout) bounds every write that has to wait
// with no deadline set, as nginx's send_timeout does: the edge server's
// plaintext HTTP/1 connections keep the send timeout that way, instead
// of the proxy setting and clearing a write deadline around every
// response (over TLS it is the backstop beside the response's own).
// A deadline set while an operation runs goes through at once, so a
// blocked Read or Write still ends when it passes; once the wrapped conn
// is handed out (Unwrap, NetConn) every deadline goes through at once.
//
// A read always tries the socket before it waits. Go's poller forgets a
// readiness event when a read begins (it expects the read to find the
// data), so the nginx habit of waiting first after a short read would
// lose the data that arrived in between.
package sockio
