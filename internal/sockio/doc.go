// Package sockio finds the socket under the proxy's connection wrappers
// ([Socket], and the Unwrapper and Bufferer interfaces every wrapper
// implements), and can read and write the sockets of the hot paths (the
// client connections of the public listeners, the upstream client's
// connections and the WebSocket tunnels) with raw system calls.
//
// The raw paths are built only with the build tag gatehouse_rawsockio (on
// Linux): they save the runtime's syscall bookkeeping, a few per cent of
// CPU per request under load, less than the 10 % the project asks of a
// trick tied to runtime internals (docs/performance.md, "Cleverness
// budget"). Without the tag, [Wrap] returns its argument.
//
// A [Conn] behaves as the conn it wraps (deadlines, Close from another
// goroutine, the poller's wake-ups: every wait goes through the wrapped
// conn's syscall.RawConn); only its read(2) and write(2) skip the
// runtime's entersyscall/exitsyscall bookkeeping (see [Read] for why that
// matters on a mostly idle proxy).
//
// A read always tries the socket before it waits. Go's poller forgets a
// readiness event when a read begins (it expects the read to find the
// data), so the nginx habit of waiting first after a short read would
// lose the data that arrived in between.
package sockio
