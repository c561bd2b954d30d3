package edgeserver

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Listener defaults.
const (
	// DefaultProxyHeaderTimeout is how long a connection on a PROXY
	// listener has to send its header. A balancer sends it at once.
	DefaultProxyHeaderTimeout = 5 * time.Second
	// DefaultMaxPending bounds the connections of a PROXY listener that
	// are still sending their header; more are refused (ratelimit.ReasonPending).
	DefaultMaxPending = 1024
)

// ListenerOptions configures [NewListener]. Every field may be left zero.
type ListenerOptions struct {
	// Jail, if set, refuses connections from banned keys.
	Jail *ratelimit.Jail
	// Conns, if set, caps concurrent connections per key and in total.
	Conns *ratelimit.ConnLimiter
	// V6Bits is the IPv6 prefix length keys are made with (see ratelimit.KeyOf);
	// it must match the one used to record strikes in ratelimit.Jail. 0 means /64.
	V6Bits int
	// ProxyProtocol makes every connection start with a PROXY protocol v1
	// or v2 header, whose source address is the client's. Set it only on
	// listeners reached solely through a balancer that sends the header:
	// anyone who can connect directly could otherwise claim any address.
	// Without it nothing is parsed. Headers are parsed by
	// github.com/pires/go-proxyproto; what is taken and what is refused
	// is listed in docs/abuse.md (§6).
	ProxyProtocol bool
	// ProxyHeaderTimeout is how long a connection has to send its PROXY
	// header; 0 means DefaultProxyHeaderTimeout.
	ProxyHeaderTimeout time.Duration
	// MaxPending bounds the connections still sending a PROXY header; 0
	// means DefaultMaxPending.
	MaxPending int
	// Now gives the time for ban checks; nil means time.Now.
	Now func() time.Time
	// OnRefuse, if set, is called (synchronously, on the accept path: keep
	// it cheap) for each refused connection with one of the Reason
	// constants, for example to count strikes toward a ban. For
	// ratelimit.ReasonProxyHeader and ratelimit.ReasonPending the key is the balancer's.
	OnRefuse func(k ratelimit.Key, reason string)
	// Logger receives one Warn line per connection refused for a bad
	// PROXY header (with the error); nil discards.
	Logger *slog.Logger
}

// ListenerStats counts a Listener's decisions since it was created.
type ListenerStats struct {
	Accepted    uint64 // connections handed to the caller
	Banned      uint64 // refused: key banned
	PerKey      uint64 // refused: per-key cap
	Total       uint64 // refused: total cap
	ProxyHeader uint64 // refused: missing, invalid or late PROXY header
	Pending     uint64 // refused: too many PROXY headers outstanding
}

// Listener is the guard returned by [NewListener].
//
// Without ProxyProtocol, Accept accepts from the inner listener, resolves
// the key from the peer address, and closes banned and over-cap connections
// at once, before any byte is read or written, then accepts the next one:
// like nginx's limit_conn for streams and HAProxy's maxconn refusal, this is
// the cheapest answer under a connection flood (no TLS handshake, no
// goroutine, no buffer). Refused connections are reset (SO_LINGER 0), so a
// flood of them leaves no TIME_WAIT state behind.
//
// With ProxyProtocol the client's address is known only after its header
// is read, and a slow sender must not stall Accept. A background goroutine
// accepts from the inner listener and hands each connection to a goroutine
// that reads the header under ProxyHeaderTimeout, applies the same checks,
// and queues the connection for Accept. So Accept still returns only
// admitted connections whose [ClientAddr] is final, which lets http.Server's
// ConnContext use it. Close stops that goroutine, closes connections whose
// header is still pending, and waits for their goroutines. A pending
// header holds at most a 256-byte read buffer and, for a v2 header, the
// up to 4 KiB of addresses and TLVs it declares (go-proxyproto's
// MaxV2HeaderSize): with MaxPending at 1,024, under 5 MiB besides the
// goroutines. Bytes read past the header are returned first by the
// Conn's Read and counted by its Buffered.
//
// Accept never returns an error for a refused connection. Errors from the
// inner listener are returned as they are (http.Server retries temporary
// ones). Connections without an IP address (Unix sockets) are not limited.
type Listener struct {
	inner net.Listener
	o     ListenerOptions

	accepted, banned, perKey, total, proxyHeader, pending atomic.Uint64

	// PROXY mode only.
	ready     chan *Conn
	errc      chan error    // temporary inner Accept errors
	loopDone  chan struct{} // closed when the accept loop stopped on loopErr
	loopErr   error
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	mu        sync.Mutex
	inHeader  map[net.Conn]struct{} // connections whose header is pending
}

// NewListener wraps inner with bans, connection caps and (optionally) the
// PROXY protocol; see [Listener]. The returned Listener owns inner.
func NewListener(inner net.Listener, o ListenerOptions) *Listener {
	o.ProxyHeaderTimeout = cmp.Or(max(o.ProxyHeaderTimeout, 0), DefaultProxyHeaderTimeout)
	o.MaxPending = cmp.Or(max(o.MaxPending, 0), DefaultMaxPending)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{inner: inner, o: o, done: make(chan struct{})}
	if o.ProxyProtocol {
		l.ready = make(chan *Conn)
		l.errc = make(chan error)
		l.loopDone = make(chan struct{})
		l.inHeader = make(map[net.Conn]struct{})
		l.wg.Add(1)
		go l.acceptLoop()
	}
	return l
}

// Accept returns the next admitted connection, a *[Conn].
func (l *Listener) Accept() (net.Conn, error) {
	if l.o.ProxyProtocol {
		select {
		case c := <-l.ready:
			return c, nil
		case err := <-l.errc:
			return nil, err
		case <-l.loopDone:
			return nil, l.loopErr
		case <-l.done:
			return nil, fmt.Errorf("edgeserver: accept: %w", net.ErrClosed)
		}
	}
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		client := addrPortOf(c.RemoteAddr())
		if wc := l.admit(c, client, nil, nil); wc != nil {
			return wc, nil
		}
	}
}

// admit applies the ban and the caps to c from client; it returns the
// wrapped conn, or nil after refusing (closing) c.
func (l *Listener) admit(c net.Conn, client netip.AddrPort, local net.Addr, leftover []byte) *Conn {
	k := ratelimit.KeyOf(client.Addr(), l.o.V6Bits)
	wc := &Conn{Conn: c, key: k, client: client, leftover: leftover, local: local}
	if !k.IsValid() {
		l.accepted.Add(1)
		return wc
	}
	if l.o.Jail != nil {
		if banned, _ := l.o.Jail.BannedAt(ratelimit.AddrKey(client.Addr()), l.o.Now()); banned {
			l.refuse(c, k, ratelimit.ReasonBanned)
			return nil
		}
	}
	if l.o.Conns != nil {
		if reason := l.o.Conns.TakeSlot(k); reason != "" {
			l.refuse(c, k, reason)
			return nil
		}
		wc.lim = l.o.Conns
	}
	if client != addrPortOf(c.RemoteAddr()) {
		wc.remote = net.TCPAddrFromAddrPort(client)
	}
	l.accepted.Add(1)
	return wc
}

func (l *Listener) refuse(c net.Conn, k ratelimit.Key, reason string) {
	switch reason {
	case ratelimit.ReasonBanned:
		l.banned.Add(1)
	case ratelimit.ReasonPerKey:
		l.perKey.Add(1)
	case ratelimit.ReasonTotal:
		l.total.Add(1)
	case ratelimit.ReasonProxyHeader:
		l.proxyHeader.Add(1)
	case ratelimit.ReasonPending:
		l.pending.Add(1)
	}
	// The hook runs before the close, so when a client sees its connection
	// refused the refusal has been counted and reported.
	if l.o.OnRefuse != nil {
		l.o.OnRefuse(k, reason)
	}
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0) // reset: no TIME_WAIT on our side
	}
	c.Close()
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				select {
				case l.errc <- err:
					continue
				case <-l.done:
					return
				}
			}
			l.loopErr = err
			close(l.loopDone)
			return
		}
		l.mu.Lock()
		full := len(l.inHeader) >= l.o.MaxPending
		closed := l.isClosed()
		if !full && !closed {
			l.inHeader[c] = struct{}{}
			l.wg.Add(1)
		}
		l.mu.Unlock()
		switch {
		case closed:
			c.Close()
			return
		case full:
			l.refuse(c, ratelimit.KeyOf(addrPortOf(c.RemoteAddr()).Addr(), l.o.V6Bits), ratelimit.ReasonPending)
		default:
			go l.handshake(c)
		}
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// handshake reads c's PROXY header, admits c and queues it for Accept.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	h, leftover, err := readProxyHeaderBy(c, time.Now().Add(l.o.ProxyHeaderTimeout)) // deadlines are wall-clock
	l.mu.Lock()
	delete(l.inHeader, c)
	l.mu.Unlock()
	transport := addrPortOf(c.RemoteAddr())
	if err != nil {
		if !l.isClosed() {
			l.o.Logger.Warn("refused connection without a valid PROXY protocol header",
				"remote", transport.String(), "err", err)
		}
		l.refuse(c, ratelimit.KeyOf(transport.Addr(), l.o.V6Bits), ratelimit.ReasonProxyHeader)
		return
	}
	client, local := transport, net.Addr(nil)
	if !h.Local {
		client = h.Source
		local = net.TCPAddrFromAddrPort(h.Destination)
	}
	wc := l.admit(c, client, local, leftover)
	if wc == nil {
		return
	}
	wc.proxy = &h
	select {
	case l.ready <- wc:
	case <-l.done:
		wc.Close()
	}
}

// readProxyHeaderBy reads c's PROXY header (see readProxyHeader) under a
// read deadline, and clears the deadline once the header is read.
func readProxyHeaderBy(c net.Conn, deadline time.Time) (ProxyHeader, []byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return ProxyHeader{}, nil, fmt.Errorf("edgeserver: proxy header: %w", err)
	}
	h, leftover, err := readProxyHeader(c)
	if err != nil {
		return ProxyHeader{}, nil, err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return ProxyHeader{}, nil, fmt.Errorf("edgeserver: proxy header: %w", err)
	}
	return h, leftover, nil
}

// Close closes the inner listener; in PROXY mode it also closes the
// connections still sending their header and waits for its goroutines.
// Connections already accepted are not affected.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.inner.Close()
		if l.o.ProxyProtocol {
			l.mu.Lock()
			for c := range l.inHeader {
				c.Close()
			}
			l.mu.Unlock()
			l.wg.Wait()
		}
	})
	return l.closeErr
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{
		Accepted:    l.accepted.Load(),
		Banned:      l.banned.Load(),
		PerKey:      l.perKey.Load(),
		Total:       l.total.Load(),
		ProxyHeader: l.proxyHeader.Load(),
		Pending:     l.pending.Load(),
	}
}

// Conn is a connection accepted by a [Listener]. Close releases its
// connection slot exactly once. RemoteAddr is the client's address (from
// the PROXY header when there was one) and LocalAddr the address the
// client connected to.
type Conn struct {
	net.Conn
	key      ratelimit.Key
	client   netip.AddrPort
	remote   net.Addr // set when it differs from Conn.RemoteAddr()
	local    net.Addr // the PROXY header's destination, if any
	leftover []byte   // read past the PROXY header; returned first
	proxy    *ProxyHeader
	lim      *ratelimit.ConnLimiter // nil: no slot held
	closed   atomic.Bool
}

// Key returns the client's key.
func (c *Conn) Key() ratelimit.Key { return c.key }

// ClientAddr returns the client's address and port.
func (c *Conn) ClientAddr() netip.AddrPort { return c.client }

// ProxyHeader returns the PROXY header the connection started with, if any.
func (c *Conn) ProxyHeader() (ProxyHeader, bool) {
	if c.proxy == nil {
		return ProxyHeader{}, false
	}
	return *c.proxy, true
}

// Read reads the bytes that came after the PROXY header first.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.leftover) > 0 {
		n := copy(p, c.leftover)
		c.leftover = c.leftover[n:]
		if len(c.leftover) == 0 {
			c.leftover = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// SyscallConn exposes the socket of the underlying connection, so a
// WebSocket tunnel can wait for data without holding a buffer. It fails
// while bytes read past a PROXY header are still waiting to be returned
// by Read.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if len(c.leftover) > 0 {
		return nil, errors.New("edgeserver: conn has buffered bytes")
	}
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// Unwrap returns the accepted connection underneath (for sockio.Socket).
// Bytes read past a PROXY header and not yet returned are reported by
// Buffered.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// Buffered returns the number of bytes read past the PROXY header and not
// yet returned by Read.
func (c *Conn) Buffered() int { return len(c.leftover) }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the address the client connected to.
func (c *Conn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

// Close closes the connection and frees its slot (once, however often
// Close is called).
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.lim != nil {
		c.lim.FreeSlot(c.key)
	}
	return c.Conn.Close()
}

// CloseWrite shuts down the writing side when the inner conn supports it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom lets io.Copy use the inner conn's ReadFrom (sendfile, splice).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// ClientAddr returns the client address of a connection accepted by a
// [Listener], looking through wrappers that have a NetConn method (such as
// *tls.Conn). For other connections it returns the peer's IP address, and
// the zero Addr when there is none.
func ClientAddr(c net.Conn) netip.Addr {
	for range 8 {
		switch x := c.(type) {
		case *Conn:
			return x.client.Addr()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
			continue
		}
		break
	}
	if c == nil {
		return netip.Addr{}
	}
	return addrPortOf(c.RemoteAddr()).Addr()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
		return ap
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

var (
	_ net.Listener  = (*Listener)(nil)
	_ net.Conn      = (*Conn)(nil)
	_ io.ReaderFrom = (*Conn)(nil)
)
