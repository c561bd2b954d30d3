package wsproxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

// Server names a backend server by upstream name and server label; the
// tunnels to it are counted under it.
type Server struct {
	Upstream, Server string
}

// Tunnels owns the live WebSocket tunnels of a process. It embeds the
// wstunnel.Registry that runs them (Len, Range, CloseMatching, Shutdown),
// keeps the counts per client address (for a per-client cap) and per
// backend server (for the status page and metrics), and owns the timers
// of delayed closes (Later). Create it with NewTunnels and Close it when
// done; it is safe for concurrent use.
type Tunnels struct {
	*wstunnel.Registry

	mu        sync.Mutex // guards perClient and perServer
	perClient map[netip.Addr]int
	perServer map[Server]int

	timerMu sync.Mutex // guards timers and closed
	timers  map[*time.Timer]struct{}
	closed  bool
}

// NewTunnels returns an empty registry; o configures its sweeper.
func NewTunnels(o wstunnel.RegistryOptions) *Tunnels {
	return &Tunnels{
		Registry:  wstunnel.NewRegistry(o),
		perClient: map[netip.Addr]int{},
		perServer: map[Server]int{},
		timers:    map[*time.Timer]struct{}{},
	}
}

// Later runs f (a close of some tunnels: a drain's deadline, a reload's
// close delay) once d has passed, unless Close comes first.
func (t *Tunnels) Later(d time.Duration, f func()) {
	t.timerMu.Lock()
	defer t.timerMu.Unlock()
	if t.closed {
		return
	}
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		t.timerMu.Lock()
		_, live := t.timers[tm]
		delete(t.timers, tm)
		t.timerMu.Unlock()
		if live {
			f()
		}
	})
	t.timers[tm] = struct{}{}
}

// Close stops the pending Later calls, then closes every remaining tunnel
// at once (wstunnel.Registry.Close) and stops the sweeper.
func (t *Tunnels) Close() error {
	t.timerMu.Lock()
	t.closed = true
	for tm := range t.timers {
		tm.Stop()
	}
	t.timers = nil
	t.timerMu.Unlock()
	return t.Registry.Close()
}

// AcquireClient takes one of max tunnel slots of client a, and reports
// false when all are taken. Give it back with ReleaseClient when the
// tunnel ends (or the upgrade fails).
func (t *Tunnels) AcquireClient(a netip.Addr, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perClient[a] >= max {
		return false
	}
	t.perClient[a]++
	return true
}

// ReleaseClient gives back a slot taken with AcquireClient.
func (t *Tunnels) ReleaseClient(a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.perClient[a] - 1; n > 0 {
		t.perClient[a] = n
	} else {
		delete(t.perClient, a)
	}
}

func (t *Tunnels) addServer(k Server, d int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.perServer[k] + d; n > 0 {
		t.perServer[k] = n
	} else {
		delete(t.perServer, k)
	}
}

// Counts returns how many tunnels are open to each backend server
// (servers with none are absent). The map is a copy.
func (t *Tunnels) Counts() map[Server]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[Server]int, len(t.perServer))
	for k, v := range t.perServer {
		out[k] = v
	}
	return out
}

// CloseServer closes the tunnels to a server of upstream (all its
// addresses: a label "name@ip:port" matches name) with code and reason,
// spread over spread, and returns how many it closes. cause is reported
// in their Result.
func (t *Tunnels) CloseServer(upstream, server string, code uint16, reason, cause string, spread time.Duration) int {
	return t.CloseMatching(func(tn *wstunnel.Tunnel) bool {
		l := tn.Labels()
		name, _, _ := strings.Cut(l.Server, "@")
		return l.Upstream == upstream && name == server
	}, code, reason, cause, spread)
}

// ErrClientGone is returned by Accept when the client conn failed while
// the 101 was written to it.
var ErrClientGone = errors.New("websocket client gone before the 101 was sent")

// Accepted is a backend's 101 for Tunnels.Accept to relay.
type Accepted struct {
	// Response is the backend's 101 (see Switched) and Backend, Reader
	// the conn it came on and the reader Handshake returned.
	Response *http.Response
	Backend  net.Conn
	Reader   *bufio.Reader
	// Skip reports header fields of Response not to relay, besides the
	// hop-by-hop ones other than Upgrade and Connection; nil: none.
	Skip func(canonicalKey string) bool
	// Extra are header lines appended to the relayed 101, each
	// "Name: value" without CRLF.
	Extra []string
	// Server is the key the tunnel is counted under (Counts) from just
	// before the client can see the 101 until the tunnel ends.
	Server Server
	// Tunnel configures the tunnel. Its ClientSocket and ClientTLS are
	// set by Accept; OnEnd runs after the tunnel is uncounted.
	Tunnel wstunnel.Options
}

// Accept hijacks the client's conn from w, writes the relayed 101 to it
// and hands it and a.Backend to a new tunnel, which owns both from then
// on. On an error the tunnel is not started and a.Backend stays the
// caller's to close: a failed hijack is returned as is (nothing was sent,
// w can still answer), a failed write of the 101 as ErrClientGone (the
// client conn is closed).
func (t *Tunnels) Accept(w http.ResponseWriter, a *Accepted) error {
	_ = a.Backend.SetDeadline(time.Time{})
	clientConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("hijack: %w", err)
	}
	_ = clientConn.SetDeadline(time.Time{})
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 101 Switching Protocols\r\n"...)
	for k, vv := range a.Response.Header {
		if uhttp.HopByHop(k) && k != "Upgrade" && k != "Connection" || a.Skip != nil && a.Skip(k) {
			continue
		}
		for _, v := range vv {
			head = append(head, k...)
			head = append(head, ": "...)
			head = append(head, v...)
			head = append(head, "\r\n"...)
		}
	}
	for _, l := range a.Extra {
		head = append(head, l...)
		head = append(head, "\r\n"...)
	}
	head = append(head, "\r\n"...)
	// Count the stream before the client can see the 101, so the active
	// gauge never lags behind what clients observe.
	t.addServer(a.Server, 1)
	if _, err := clientConn.Write(head); err != nil {
		t.addServer(a.Server, -1)
		clientConn.Close()
		return fmt.Errorf("%w: %w", ErrClientGone, err)
	}

	var clientBuf []byte
	if n := brw.Reader.Buffered(); n > 0 {
		clientBuf, _ = brw.Reader.Peek(n)
		clientBuf = append([]byte(nil), clientBuf...)
	}
	var backendBuf []byte
	if n := a.Reader.Buffered(); n > 0 {
		backendBuf, _ = a.Reader.Peek(n)
		backendBuf = append([]byte(nil), backendBuf...)
	}
	o := a.Tunnel
	// A plaintext client conn is wrapped (framing guard, accept-gate
	// conn, counter). When none of them holds unread bytes (the usual
	// case: a browser sends nothing before the 101), the tunnel gets the
	// TCP socket underneath and waits for data without holding a buffer.
	// A client that sent its first frame with the handshake leaves it held
	// by the guard; that stream is then read through the wrappers
	// (sockio.Socket returns nil), which costs a buffer, not correctness.
	o.ClientSocket = sockio.Socket(clientConn)
	// Over TLS the same holds for the wrappers above the *tls.Conn: the
	// tunnel reads through it and waits on the socket under it.
	o.ClientTLS = nil
	if o.ClientSocket == nil {
		o.ClientTLS = tlsUnder(clientConn)
	}
	onEnd, key := o.OnEnd, a.Server
	o.OnEnd = func(res wstunnel.Result) {
		t.addServer(key, -1)
		if onEnd != nil {
			onEnd(res)
		}
	}
	t.Start(clientConn, clientBuf, a.Backend, backendBuf, o)
	return nil
}

// tlsUnder returns the *tls.Conn under c's wrappers when every wrapper
// above it can be bypassed (sockio.Unwrapper) and holds no unread bytes
// (sockio.Bufferer), else nil.
func tlsUnder(c net.Conn) *tls.Conn {
	for range 16 { // bounded, against a wrapper that unwraps to itself
		if b, ok := c.(sockio.Bufferer); ok && b.Buffered() != 0 {
			return nil
		}
		if tc, ok := c.(*tls.Conn); ok {
			return tc
		}
		u, ok := c.(sockio.Unwrapper)
		if !ok {
			return nil
		}
		if c = u.Unwrap(); c == nil {
			return nil
		}
	}
	return nil
}
