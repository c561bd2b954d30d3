package wstunnel

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Close status codes (RFC 6455 §7.4.1) the tunnel sends or reports.
const (
	CloseNormal         uint16 = 1000
	CloseGoingAway      uint16 = 1001 // shutdown; also sent on idle and ping timeouts
	CloseNoStatus       uint16 = 1005 // reported: a Close frame arrived without a code
	CloseAbnormal       uint16 = 1006 // reported: the tunnel ended without any Close frame
	CloseServiceRestart uint16 = 1012 // drain, removed route or backend
)

// Causes reported in Result.Cause. The tunnel sets the first four itself;
// callers of Tunnel.Close and Registry.CloseMatching pass their own (for
// example "drain" or "route_removed"), and Registry.Shutdown uses
// CauseShutdown.
const (
	CauseClientClosed  = "client_closed"  // the client sent Close first, or its conn ended
	CauseBackendClosed = "backend_closed" // the backend sent Close first, or its conn ended
	CauseIdleTimeout   = "idle_timeout"   // no data either way for Options.IdleTimeout
	CausePingTimeout   = "ping_timeout"   // the client did not answer a Ping in time
	CauseShutdown      = "shutdown"       // Registry.Shutdown or Registry.Close
)

// Labels are opaque tags the caller attaches to a tunnel, used to select
// tunnels in Registry.CloseMatching and to label metrics.
type Labels struct {
	Upstream string     // upstream (pool) name
	Server   string     // backend server id or address
	Route    string     // route id
	Client   netip.Addr // client address
}

// Options configure one tunnel. Durations have no defaults here: the caller
// passes the configured values (config/defaults.go).
type Options struct {
	// IdleTimeout closes the tunnel (CauseIdleTimeout, code 1001) when no
	// data has been forwarded in either direction for this long. Our own
	// Pings and the Pongs answering them do not count as data. Zero means
	// no idle timeout. The resolution is the Registry's SweepInterval.
	IdleTimeout time.Duration

	// PingInterval makes the tunnel send a Ping to a client that has sent
	// nothing for this long. Zero disables pings.
	PingInterval time.Duration

	// PingTimeout closes the tunnel (CausePingTimeout, code 1001) when the
	// client sends nothing at all (a Pong or any other frame) within this
	// long of a Ping. Zero means PingInterval.
	PingTimeout time.Duration

	// CloseTimeout bounds a graceful close: after Close, the tunnel waits
	// this long for the Close frames to go out and for both peers to answer
	// with their own Close (or hang up), then closes both conns. Zero or
	// negative closes the conns as soon as both Close frames are written.
	CloseTimeout time.Duration

	// Labels tag the tunnel.
	Labels Labels

	// ClientSocket, if not nil, is the *net.TCPConn under a wrapped client
	// conn (for example a rate-limiting listener's conn). The tunnel then
	// waits for, reads and writes client data straight on the socket,
	// holding no buffer while idle, and still closes the wrapper. Set it
	// only when the wrapper's Read and Write add nothing once the handshake
	// is done (no bytes of its own left, no decoding, no counting): never
	// for a *tls.Conn.
	ClientSocket net.Conn

	// ClientTLS, if not nil, is the *tls.Conn under a wrapped client conn,
	// under the same condition as ClientSocket: the wrappers above it add
	// nothing once the handshake is done. The tunnel then reads client
	// data through it and, while the client is quiet, waits on the socket
	// under it (sockio.Socket of its NetConn) instead of inside
	// crypto/tls: an idle TLS client holds no read buffer of the tunnel's
	// and its goroutine parks on a small stack. Without such a socket, or
	// with ClientSocket set, it is not used. Writes still go through the
	// client conn.
	ClientTLS *tls.Conn

	// OnEnd, if not nil, is called once when the tunnel has ended, on one
	// of the tunnel's goroutines, before Done is closed.
	OnEnd func(Result)
}

// Result reports how a tunnel ended.
type Result struct {
	Labels Labels
	// Cause is one of the Cause constants or the cause given to Close.
	Cause string
	// Code is the close code: the one given to Close, or the code of the
	// first Close frame a peer sent, or CloseNoStatus when that frame had
	// none, or CloseAbnormal when no Close frame was seen.
	Code     uint16
	BytesIn  int64 // bytes read from the client (including frame headers)
	BytesOut int64 // bytes read from the backend
	Duration time.Duration
}

// Tunnel is one proxied WebSocket stream between a client and a backend.
// Its methods are safe for concurrent use.
type Tunnel struct {
	r       *Registry
	o       Options
	client  net.Conn
	backend net.Conn
	c2b     pipe // client to backend
	b2c     pipe // backend to client
	start   time.Time
	marker  [markerLen]byte // payload of our Pings
	done    chan struct{}

	last       atomic.Int64 // registry clock when data last moved
	lastClient atomic.Int64 // registry clock when the client last sent bytes
	pingOut    atomic.Bool  // a Ping is unanswered
	closing    atomic.Bool  // Close was called
	pingAt     int64        // registry clock of the last Ping; sweeper only

	mu          sync.Mutex // guards the fields below
	closeReq    bool
	closeCode   uint16
	closeReason string
	cause       string
	code        uint16
	haveCode    bool
	sent        [2]bool // [pipe]: a Close frame was written to the pipe's dst
	heard       [2]bool // [pipe]: the pipe's src sent a Close frame
	timer       *time.Timer
	connsClosed bool
	ended       int // pipes that have returned
	res         Result
	finished    bool
}

// Done is closed when the tunnel has ended and both conns are closed.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Labels returns the tunnel's labels.
func (t *Tunnel) Labels() Labels { return t.o.Labels }

// Result returns how the tunnel ended; ok is false while it is running.
func (t *Tunnel) Result() (r Result, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.res, t.finished
}

// Close closes the tunnel gracefully: at the next frame boundary in each
// direction it sends a Close frame with code and reason (unmasked to the
// client, masked to the backend), drops whatever either peer sends after
// that except its Close reply, and closes both conns once both peers have
// replied or hung up, or after Options.CloseTimeout. cause is reported in
// Result.Cause unless the tunnel was already ending for another reason.
// Close does not block; calls after the first have no effect.
func (t *Tunnel) Close(code uint16, reason, cause string) {
	t.close(code, reason, cause, false)
}

// close is Close; with deadClient it does not wait for the client's reply.
func (t *Tunnel) close(code uint16, reason, cause string, deadClient bool) {
	t.mu.Lock()
	if t.closeReq || t.ended > 0 {
		t.mu.Unlock()
		return
	}
	t.closeReq = true
	t.closeCode, t.closeReason = code, reason
	t.setCause(cause, code)
	if deadClient {
		t.heard[0] = true
	}
	if t.o.CloseTimeout > 0 {
		t.timer = time.AfterFunc(t.o.CloseTimeout, t.closeConns)
	}
	t.mu.Unlock()
	t.closing.Store(true)
	// Ask both pipes before waking either: once one peer has our Close its
	// reply may race through the other pipe, which must already know to
	// send its own Close first and drop the reply.
	t.c2b.pending.Or(injClose)
	t.b2c.pending.Or(injClose)
	t.c2b.wake()
	t.b2c.wake()
}

// abort closes both conns at once, without Close frames.
func (t *Tunnel) abort(cause string) {
	t.mu.Lock()
	t.setCause(cause, CloseAbnormal)
	t.mu.Unlock()
	t.closeConns()
}

// setCause records the first cause; t.mu must be held.
func (t *Tunnel) setCause(cause string, code uint16) {
	if t.cause != "" {
		return
	}
	t.cause = cause
	if code != 0 && code != CloseAbnormal {
		t.code, t.haveCode = code, true
	}
}

func (t *Tunnel) idx(p *pipe) int {
	if p == &t.c2b {
		return 0
	}
	return 1
}

func (t *Tunnel) closeFrame() (uint16, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closeCode, t.closeReason
}

// needCloseTo reports whether p's dst still needs a Close frame.
func (t *Tunnel) needCloseTo(p *pipe) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.sent[t.idx(p)]
}

// injectedClose records that p's dst has been sent a Close.
func (t *Tunnel) injectedClose(p *pipe) {
	t.mu.Lock()
	i := t.idx(p)
	t.sent[i] = true
	if t.o.CloseTimeout <= 0 {
		// Don't wait for replies.
		t.heard[0], t.heard[1] = true, true
	}
	done := t.handshakeDone()
	t.mu.Unlock()
	if done {
		t.closeConns()
	}
}

// peerClosing records that p's src sent a Close frame with code.
func (t *Tunnel) peerClosing(p *pipe, code uint16) {
	cause := CauseBackendClosed
	if p.srcSide == sideClient {
		cause = CauseClientClosed
	}
	t.mu.Lock()
	t.setCause(cause, code)
	t.mu.Unlock()
}

// forwardedClose records that p has forwarded its src's Close frame.
func (t *Tunnel) forwardedClose(p *pipe) {
	t.mu.Lock()
	i := t.idx(p)
	t.sent[i], t.heard[i] = true, true
	done := t.handshakeDone()
	t.mu.Unlock()
	if done {
		t.closeConns()
	}
}

// srcClosed records a Close frame from p's src that p dropped (a reply to
// our Close).
func (t *Tunnel) srcClosed(p *pipe) {
	t.mu.Lock()
	t.heard[t.idx(p)] = true
	done := t.handshakeDone()
	t.mu.Unlock()
	if done {
		t.closeConns()
	}
}

// handshakeDone reports whether both peers have sent and received a Close;
// t.mu must be held.
func (t *Tunnel) handshakeDone() bool {
	return t.sent[0] && t.sent[1] && t.heard[0] && t.heard[1]
}

// touchSrc records bytes from p's src.
func (t *Tunnel) touchSrc(p *pipe) {
	if p.srcSide != sideClient {
		return
	}
	t.lastClient.Store(t.r.clock.Load())
	if t.pingOut.Load() {
		t.pingOut.Store(false)
	}
}

// closeConns closes both conns once. It is not called with t.mu held:
// closing a *tls.Conn may write an alert.
func (t *Tunnel) closeConns() {
	t.mu.Lock()
	if t.connsClosed {
		t.mu.Unlock()
		return
	}
	t.connsClosed = true
	t.mu.Unlock()
	t.client.Close()
	t.backend.Close()
	// A dormant pipe learns of it from a read of its own.
	t.c2b.revive()
	t.b2c.revive()
}

// pipeEnded is called by each pipe when it returns.
func (t *Tunnel) pipeEnded(failed side, err error) {
	t.mu.Lock()
	if failed == sideClient {
		t.setCause(CauseClientClosed, 0)
	} else {
		t.setCause(CauseBackendClosed, 0)
	}
	t.ended++
	last := t.ended == 2
	t.mu.Unlock()
	t.closeConns()
	if last {
		t.finish()
	}
}

// finish publishes the result, unregisters the tunnel and closes Done.
func (t *Tunnel) finish() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	code := t.code
	if !t.haveCode {
		code = CloseAbnormal
	}
	t.res = Result{
		Labels:   t.o.Labels,
		Cause:    t.cause,
		Code:     code,
		BytesIn:  t.c2b.bytes,
		BytesOut: t.b2c.bytes,
		Duration: t.r.now().Sub(t.start),
	}
	t.finished = true
	res := t.res
	t.mu.Unlock()
	t.r.remove(t)
	if t.o.OnEnd != nil {
		t.o.OnEnd(res)
	}
	close(t.done)
}
