package edgeserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-proxy/gatehouse/internal/h1guard"
	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// Server serves one public listener. It owns the accept loop so that
// every connection passes the same gates before any HTTP parsing: the TLS
// handshake (with a deadline), then either HTTP/2 (negotiated by ALPN,
// served by net/http itself) or HTTP/1.x through the framing guard
// (request smuggling defence) into a net/http server.
type Server struct {
	o     ServerOptions
	h1    *http.Server
	conns *chanListener

	wg sync.WaitGroup // TLS handshakes in progress

	quit     chan struct{} // closed at Shutdown/Close
	quitOnce sync.Once
}

// ServerOptions configure a Server. Connection-level settings (timeouts,
// header size, HTTP/2 streams) are read when the Server is created; a
// reload that changes them takes effect at the next restart.
type ServerOptions struct {
	// Name labels metrics and logs ("http", "https").
	Name     string
	Listener net.Listener
	// TLSConfig, when set, makes this a TLS listener.
	TLSConfig *tls.Config
	Handler   http.Handler
	Logger    *slog.Logger
	// Metrics counts connections; nil: a set registered nowhere.
	Metrics *Metrics

	HandshakeTimeout  time.Duration // TLS handshake; also the header timeout
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds a request head: a head longer than
	// MaxHeaderBytes plus headSlack, request line included, is refused
	// the same way over HTTP/1 and HTTP/2 (ConnInfo.HeadTooLarge: the
	// handler answers 431). Over HTTP/2 the head is measured as it would
	// be written in HTTP/1.1; a header block beyond h2HeadFactor times
	// the limit is a protocol error that closes the connection.
	MaxHeaderBytes  int
	HTTP2           bool
	HTTP2MaxStreams uint32
	// HTTP2MaxResets closes an HTTP/2 connection whose client cancelled
	// more than this many requests beyond those it let complete (rapid
	// reset); 0: never.
	HTTP2MaxResets int
	// SendTimeout bounds the writes to the client socket. On HTTP/1 a
	// write that has to wait (the client takes no byte) with no write
	// deadline set may wait at most this long, then fails and the
	// connection closes (nginx's send_timeout), kept by the connection
	// where it is read and written through internal/sockio. On plaintext
	// that is the handler's bound too (ConnInfo.SendBound); over TLS a
	// socket write is a TLS record, as small as 1.4 KiB, so a handler
	// still bounds each of its writes and this is the backstop for the
	// writes outside them. A hijacked connection's writes are its new
	// owner's business. An HTTP/2
	// connection that takes no byte for that long is closed (net/http's
	// HTTP2Config.WriteByteTimeout): the handler bounds each stream's
	// writes itself; this covers the connection's own frames (a reset
	// stream's RST_STREAM, SETTINGS, GOAWAY) when the whole connection is
	// stuck. 0: none.
	SendTimeout time.Duration
	// OnHandshakeError, if set, is told about failed TLS handshakes.
	OnHandshakeError func(err error)
}

// NewServer prepares a Server; Serve runs it.
func NewServer(o ServerOptions) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	s := &Server{o: o,
		quit: make(chan struct{})}
	s.conns = newChanListener(o.Listener.Addr())
	s.h1 = &http.Server{
		Handler:           o.Handler,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          log.New(slogWriter{o.Logger}, "", 0),
		ConnContext:       s.connContext,
		ConnState:         connState,
	}
	// HTTP/2 is net/http's own: a TLS connection that negotiated h2 is
	// handed over as the *tls.Conn itself, and net/http serves it (graceful
	// GOAWAY on Shutdown included). HTTP/1 connections arrive wrapped by
	// the framing guard, which net/http serves as plain HTTP/1.
	s.h1.Protocols = new(http.Protocols)
	s.h1.Protocols.SetHTTP1(true)
	if o.HTTP2 && o.TLSConfig != nil {
		s.h1.Protocols.SetHTTP2(true)
		// net/http's HTTP/2 server takes its header list limit from
		// MaxHeaderBytes and answers a block slightly over it 431 but
		// one further over with GOAWAY and no response. The limit it
		// enforces is raised; the configured one is checked in
		// ConnInfo.HeadTooLarge, as on HTTP/1. HTTP/1 heads never reach
		// net/http's own limit: the framing guard enforces the
		// configured one first.
		s.h1.MaxHeaderBytes = h2HeadFactor * headLimit(o.MaxHeaderBytes)
		// Reviewed against net/http's defaults: concurrent streams (and so
		// concurrently running handlers, which net/http bounds to the same
		// number even for streams the client reset) from the config; frames
		// at the protocol's 16 KiB; header tables and receive windows at
		// net/http's defaults (4 KiB HPACK tables; 1 MiB of unread request
		// body per stream and per connection); RFC 7540's prohibited TLS 1.2
		// cipher suites refused (Gatehouse offers none); protocol errors
		// counted.
		s.h1.HTTP2 = &http.HTTP2Config{
			MaxConcurrentStreams: int(o.HTTP2MaxStreams),
			MaxReadFrameSize:     h2MaxReadFrameSize,
			WriteByteTimeout:     o.SendTimeout,
			CountError:           s.countH2Error,
		}
	}
	return s
}

// closed reports whether Shutdown or Close has begun.
func (s *Server) closed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// Name is the listener's name ("http", "https").
func (s *Server) Name() string { return s.o.Name }

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.o.Listener.Addr() }

// Serve accepts connections until Shutdown or Close. It returns
// http.ErrServerClosed after a shutdown.
func (s *Server) Serve() error {
	errc := make(chan error, 1)
	go func() { errc <- s.h1.Serve(s.conns) }()
	var delay time.Duration
	for {
		c, err := s.o.Listener.Accept()
		if err != nil {
			if s.closed() || errors.Is(err, net.ErrClosed) {
				<-errc
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient error: back off as
				// net/http does, rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.o.Logger.Warn("accept failed; retrying", "listener", s.o.Name, "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			s.conns.Close()
			<-errc
			return err
		}
		delay = 0
		s.o.Metrics.connsTotal.WithLabelValues(s.o.Name).Inc()
		s.o.Metrics.connsOpen.WithLabelValues(s.o.Name).Inc()
		cc := &countedConn{Conn: sockio.Wrap(c), done: s.connClosed}
		if sc, ok := cc.Conn.(*sockio.Conn); ok && s.o.SendTimeout > 0 {
			sc.SetWriteTimeout(s.o.SendTimeout)
			cc.bounded = sc
		}
		if s.o.TLSConfig == nil {
			g := h1guard.Wrap(cc, h1guard.Options{MaxHeadBytes: headLimit(s.o.MaxHeaderBytes)})
			if !s.conns.push(g) {
				g.Close()
			}
			continue
		}
		s.wg.Add(1)
		go s.handshake(cc)
	}
}

func (s *Server) connClosed() {
	s.o.Metrics.connsOpen.WithLabelValues(s.o.Name).Dec()
}

func (s *Server) handshake(c net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(c, s.o.TLSConfig)
	_ = tc.SetDeadline(time.Now().Add(s.o.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		if s.o.OnHandshakeError != nil {
			s.o.OnHandshakeError(err)
		}
		s.o.Logger.Debug("tls handshake failed", "listener", s.o.Name, "remote", c.RemoteAddr(), "err", err)
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "acme-tls/1" {
		// TLS-ALPN-01 challenge: the certificate was the answer.
		tc.Close()
		return
	}
	if state.NegotiatedProtocol == "h2" && s.h1.Protocols.HTTP2() {
		if !s.conns.push(tc) {
			tc.Close()
		}
		return
	}
	g := h1guard.Wrap(tc, h1guard.Options{MaxHeadBytes: headLimit(s.o.MaxHeaderBytes)})
	if !s.conns.push(g) {
		g.Close()
	}
}

func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	ci := &ConnInfo{Listener: s.o.Name, Peer: PeerAddr(c.RemoteAddr())}
	if tc, ok := c.(*tls.Conn); ok { // HTTP/2
		st := tc.ConnectionState()
		ci.TLS = &st
		ci.h2 = &h2Conn{srv: s, raw: tc.NetConn(), budget: int64(s.o.HTTP2MaxResets), maxHead: headLimit(s.o.MaxHeaderBytes)}
	}
	if g, ok := c.(*h1guard.Conn); ok {
		ci.guard = g
		if tc, ok := g.NetConn().(*tls.Conn); ok {
			st := tc.ConnectionState()
			ci.TLS = &st
		}
		if cc := counted(g); cc != nil && cc.bounded != nil && ci.TLS == nil {
			ci.SendBound = s.o.SendTimeout
		}
	}
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// counted returns the countedConn under an HTTP/1 connection's guard
// (and TLS), or nil.
func counted(g *h1guard.Conn) *countedConn {
	c := g.NetConn()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	cc, _ := c.(*countedConn)
	return cc
}

// connState tells the framing guard when net/http hands a connection to
// a handler: only a hijacked connection can switch protocols (101), so
// only then may the guard stop inspecting it. The send timeout is then
// off: the tunnel that takes the connection over owns its deadlines.
func connState(c net.Conn, st http.ConnState) {
	if st == http.StateHijacked {
		if g, ok := c.(*h1guard.Conn); ok {
			g.Hijacked()
			if cc := counted(g); cc != nil && cc.bounded != nil {
				cc.bounded.SetWriteTimeout(0)
			}
		}
	}
}

// Shutdown stops accepting, lets in-flight requests finish (HTTP/2
// connections get GOAWAY), and returns when they have or ctx ends; then
// it closes whatever is left. Hijacked connections (WebSockets) are not
// its business: the Edge's tunnel registry closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.quitOnce.Do(func() { close(s.quit) })
	s.o.Listener.Close()
	err := s.h1.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
	}
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.quitOnce.Do(func() { close(s.quit) })
	s.o.Listener.Close()
	return s.h1.Close()
}

// countedConn decrements the open-connections gauge exactly once when
// closed. It passes SyscallConn through so WebSocket tunnels can wait for
// data on the raw socket, and ReadFrom for sendfile(2).
type countedConn struct {
	net.Conn
	once sync.Once
	done func()
	// bounded is Conn when it is a *sockio.Conn with the send timeout
	// (ServerOptions.SendTimeout) as its write timeout; else nil.
	bounded *sockio.Conn
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

// Unwrap returns the counted conn.
func (c *countedConn) Unwrap() net.Conn { return c.Conn }

// ReadFrom passes r to the counted conn's ReadFrom, so that net/http's
// response.ReadFrom reaches sendfile(2) on a plaintext socket.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// chanListener hands connections accepted (and TLS-terminated) by the
// Server's own loop to http.Server.Serve.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// countH2Error counts an HTTP/2 protocol error net/http saw on a
// connection of this listener (errType is one of net/http's fixed
// lowercase tokens, such as "frame_settings_mod_6").
func (s *Server) countH2Error(errType string) {
	s.o.Metrics.h2Errors.WithLabelValues(s.o.Name, errType).Inc()
}

// slogWriter sends net/http's error log (TLS noise, bad requests) to slog
// at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(trimNewline(p)), "source", "net/http")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// Metrics are the connection-level Prometheus metrics of every Server of
// the process (labelled by listener). Create one set per process with
// NewMetrics.
type Metrics struct {
	connsOpen   *prometheus.GaugeVec
	connsTotal  *prometheus.CounterVec
	connRefused *prometheus.CounterVec
	h2Errors    *prometheus.CounterVec
	h2Resets    *prometheus.CounterVec
	h2Closed    *prometheus.CounterVec
}

// NewMetrics creates the connection metrics and registers them on reg
// (nil: registered nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_connections_open",
			Help: "Open client connections per listener.",
		}, []string{"listener"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_connections_total",
			Help: "Client connections accepted per listener.",
		}, []string{"listener"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_connections_refused_total",
			Help: "Connections refused at accept, by listener and reason (banned, per_key, total, proxy_header, pending).",
		}, []string{"listener", "reason"}),
		h2Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http2_errors_total",
			Help: "HTTP/2 protocol errors by listener and type (net/http's error tokens).",
		}, []string{"listener", "type"}),
		h2Resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http2_resets_total",
			Help: "HTTP/2 requests cancelled before their response was complete (client RST_STREAM, or reset after the send timeout) on connections that stayed open.",
		}, []string{"listener"}),
		h2Closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http2_connections_closed_total",
			Help: "HTTP/2 connections Gatehouse closed for abuse, by listener and reason (resets: limits.http2_max_resets exceeded).",
		}, []string{"listener", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.connsOpen, m.connsTotal, m.connRefused, m.h2Errors, m.h2Resets, m.h2Closed)
	}
	return m
}

// ConnRefused counts a connection refused at accept.
func (m *Metrics) ConnRefused(listener, reason string) {
	m.connRefused.WithLabelValues(listener, reason).Inc()
}

var (
	_ io.Closer     = (*Server)(nil)
	_ io.ReaderFrom = (*countedConn)(nil)
)
