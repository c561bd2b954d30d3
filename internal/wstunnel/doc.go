// Package wstunnel carries an upgraded WebSocket connection between a client
// and a backend once the HTTP handshake is done, and closes it cleanly.
//
// The proxy validates the upgrade, dials the backend, relays the 101
// response and hijacks the client conn (package wsproxy); then
// [Registry.Start] takes both conns and copies each direction until the
// stream ends, on a goroutine of its own while that direction has data to
// move (see Memory). The package imports no net/http and
// no Prometheus: it reports through [Result] (via [Options.OnEnd]) and
// counters on [Registry].
//
// # Frames
//
// Each direction tracks RFC 6455 frame boundaries: it decodes frame headers
// (FIN, opcode, mask bit, 7/16/64-bit length, mask key) and skips payloads
// by arithmetic, copying them unchanged and never unmasking them. Knowing
// where frames end lets the tunnel inject control frames between two
// frames: a Close (unmasked toward the client, masked with a fresh
// crypto/rand key toward the backend) and its own Pings to the client.
// Injection waits only for the current frame, not for the end of a
// fragmented message: RFC 6455 §5.4 allows control frames between
// fragments. A Pong from the client that carries the 8-byte marker of our
// Pings is dropped; every other frame passes through.
//
// # Closing
//
// [Tunnel.Close] sends Close frames both ways, drops any data that follows
// from either peer, and closes the conns when both peers have answered with
// a Close (or hung up), or after [Options.CloseTimeout].
// [Registry.CloseMatching] does this for a set of tunnels, optionally spread
// over a window so thousands of clients do not reconnect in the same second,
// and [Registry.Shutdown] for all of them. A close the peers start
// themselves is forwarded as is; the tunnel closes the conns when both
// Close frames have passed or either side hangs up.
//
// # Timeouts
//
// One sweeper goroutine per Registry wakes every SweepInterval. It advances
// a coarse clock that the copy loops stamp on each chunk (so the hot path
// reads no time and resets no timer), closes tunnels idle for
// [Options.IdleTimeout], sends Pings to clients quiet for
// [Options.PingInterval] and closes those that send nothing within
// [Options.PingTimeout]. Any bytes from the client answer a Ping, so busy
// clients are never pinged; the timeout runs from when the Ping was due,
// so a client that has stopped reading (and blocks our writes to it) is
// caught too. A ping-timed-out tunnel sends Close to both peers but waits
// only for the backend's reply. The tunnel sets no write deadlines: a write
// blocked on a dead peer ends through these timeouts or CloseTimeout.
//
// When either peer hangs up (EOF or error), both conns are closed at once;
// there is no half-close.
//
// # Memory
//
// An idle tunnel holds no read buffer when its source conn is a
// *net.TCPConn or *net.UnixConn (or [Options.ClientSocket] names the socket
// under a wrapped client conn): the pipe waits for the socket to become
// readable and only then borrows a 16 KiB buffer from a pool, reads,
// writes and gives it back. A TLS client named by [Options.ClientTLS] is
// waited for the same way on the socket under the *tls.Conn; once the
// socket is readable the pipe reads one byte through crypto/tls (which
// returns when a whole record is in), then borrows a buffer and takes what
// crypto/tls holds without waiting (and it takes what crypto/tls holds
// before its first wait: bytes of a record that the HTTP server read only
// in part). A source with none of these (a
// net.Pipe, a wrapper that holds bytes) is read through a 2 KiB buffer
// kept by its direction.
//
// On Linux an idle pipe holds no goroutine either ("dormant"): it
// registers its socket for one readiness event in an epoll set of the
// registry's own and its goroutine returns; one goroutine per registry
// waits for that set (through Go's poller, so it holds no thread) and
// starts a fresh goroutine for a pipe whose socket became readable. Every
// other way of reaching a pipe (a Close to inject, a Ping, the conns being
// closed) wakes a dormant pipe the same way, and a pipe that is woken
// while it parks does not park. A new tunnel's pipes start dormant (a
// TLS client's starts running, as crypto/tls may hold bytes read with the
// handshake); a pipe that has run goes dormant when the sweeper finds its
// tunnel quiet for a sweep interval, so a busy tunnel pays nothing for it
// and a quiet one pays one hand-over per quiet spell. The steady state of
// an idle tunnel is about 2.5 KiB of state and no goroutine stack;
// TestIdleMemory and TestDormantTunnel check it.
//
// Elsewhere each pipe keeps a goroutine parked in Go's poller. There
// crypto/tls grows a goroutine's stack past 2 KiB and the runtime never
// shrinks a parked stack back, so once such a tunnel has been quiet for a
// sweep interval the sweeper wakes the pipes that ran through crypto/tls
// (reading or writing that client) and each hands over to a fresh
// goroutine with a small stack.
//
// # System calls
//
// On those sockets the tunnel reads and writes with raw system calls
// (package sockio): a message that reaches an idle proxy does not wake the
// Go runtime's monitor thread on its way through. Waits still go through
// the socket's RawConn, so Close, deadlines and the poller behave as with
// the conn itself.
package wstunnel
