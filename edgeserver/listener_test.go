package edgeserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// spyListener counts Read calls on the raw connections it accepts.
type spyListener struct {
	net.Listener
	mu    sync.Mutex
	reads map[string]*atomic.Int64 // by client address
}

type spyConn struct {
	net.Conn
	reads *atomic.Int64
}

func (c *spyConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (l *spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := new(atomic.Int64)
	l.mu.Lock()
	l.reads[c.RemoteAddr().String()] = n
	l.mu.Unlock()
	return &spyConn{Conn: c, reads: n}, nil
}

func (l *spyListener) readsOf(addr string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.reads[addr]; n != nil {
		return n.Load()
	}
	return -1
}

// startGuard runs a guarded listener whose accept loop greets each admitted
// connection with "hi\n" and keeps it open until the test ends.
func startGuard(t *testing.T, o ListenerOptions) (*Listener, *spyListener, <-chan *Conn) {
	t.Helper()
	// No goroutine of the listener outlives Close (checked after the
	// cleanup below).
	leakcheck.Goroutines(t, modulePath)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spy := &spyListener{Listener: inner, reads: map[string]*atomic.Int64{}}
	l := NewListener(spy, o)
	accepted := make(chan *Conn, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi\n"))
			accepted <- c.(*Conn)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for c := range accepted {
			c.Close()
		}
	})
	return l, spy, accepted
}

// modulePath is the module's import path, for leakcheck.
const modulePath = "github.com/gatehouse-proxy/gatehouse"

// waitReading waits until the listener reads from the connection c dialled
// (it has been accepted and waits for its PROXY header).
func waitReading(t *testing.T, spy *spyListener, c net.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for spy.readsOf(c.LocalAddr().String()) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the listener did not read from %v within 10s", c.LocalAddr())
		}
		<-tick.C
	}
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// greeted reports whether the server admitted c (sent "hi\n") or refused
// it (closed or reset it).
func greeted(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 3)
	_, err := io.ReadFull(c, b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("no answer within 10 s: neither admitted nor refused")
	}
	return err == nil && string(b) == "hi\n"
}

func TestListenerConnCap(t *testing.T) {
	var refusals []string
	var mu sync.Mutex
	conns := ratelimit.NewConnLimiter(10, 0) // limit_conn addr 10
	l, _, accepted := startGuard(t, ListenerOptions{
		Conns: conns,
		OnRefuse: func(k ratelimit.Key, reason string) {
			mu.Lock()
			refusals = append(refusals, k.String()+" "+reason)
			mu.Unlock()
		},
	})
	addr := l.Addr().String()
	var mine []net.Conn
	for i := range 10 {
		c := dialFrom(t, "127.0.0.1", addr)
		if !greeted(t, c) {
			t.Fatalf("connection %d from 127.0.0.1 refused", i+1)
		}
		mine = append(mine, c)
	}
	if greeted(t, dialFrom(t, "127.0.0.1", addr)) {
		t.Fatal("11th concurrent connection from 127.0.0.1 admitted")
	}
	if !greeted(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Fatal("connection from 127.0.0.2 refused while 127.0.0.1 is at its cap")
	}
	// Closing one frees its slot (once: the server side closes it twice).
	var first *Conn
	for c := range accepted {
		if c.ClientAddr().Addr() == netip.MustParseAddr("127.0.0.1") {
			first = c
			break
		}
	}
	first.Close()
	first.Close()
	mine[0].Close()
	if !greeted(t, dialFrom(t, "127.0.0.1", addr)) {
		t.Fatal("connection refused after a slot was freed")
	}
	if greeted(t, dialFrom(t, "127.0.0.1", addr)) {
		t.Fatal("a double Close freed two slots")
	}
	st := l.Stats()
	if st.PerKey != 2 || st.Accepted != 12 {
		t.Errorf("stats = %+v, want 2 per-key refusals, 12 accepted", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) != 2 || refusals[0] != "127.0.0.1/32 per_key" {
		t.Errorf("OnRefuse calls = %q, want two for 127.0.0.1/32 per_key", refusals)
	}
}

func TestListenerTotalCap(t *testing.T) {
	l, _, _ := startGuard(t, ListenerOptions{Conns: ratelimit.NewConnLimiter(0, 2)})
	addr := l.Addr().String()
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		if !greeted(t, dialFrom(t, src, addr)) {
			t.Fatalf("connection from %s refused", src)
		}
	}
	if greeted(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("third connection admitted with Total 2")
	}
	if st := l.Stats(); st.Total != 1 {
		t.Errorf("stats = %+v, want 1 total refusal", st)
	}
}

func TestListenerBannedClosedBeforeRead(t *testing.T) {
	j := ratelimit.NewJail(ratelimit.JailOptions{})
	if err := j.Ban(ratelimit.KeyOf(netip.MustParseAddr("127.0.0.3"), 0), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	l, spy, _ := startGuard(t, ListenerOptions{Jail: j})
	c := dialFrom(t, "127.0.0.3", l.Addr().String())
	c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05}) // a TLS record header
	if greeted(t, c) {
		t.Fatal("banned client admitted")
	}
	if n := spy.readsOf(c.LocalAddr().String()); n != 0 {
		t.Errorf("server read the banned connection %d times, want 0", n)
	}
	if !greeted(t, dialFrom(t, "127.0.0.4", l.Addr().String())) {
		t.Error("unbanned client refused")
	}
	if st := l.Stats(); st.Banned != 1 {
		t.Errorf("stats = %+v, want 1 banned", st)
	}
}

func TestListenerProxyV1(t *testing.T) {
	l, _, accepted := startGuard(t, ListenerOptions{ProxyProtocol: true})
	c := dialFrom(t, "127.0.0.1", l.Addr().String())
	c.Write([]byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\nhello"))
	if !greeted(t, c) {
		t.Fatal("connection with a valid v1 header refused")
	}
	sc := <-accepted
	if got := ClientAddr(sc); got != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("ClientAddr = %v, want 198.51.100.7", got)
	}
	if got := sc.RemoteAddr().String(); got != "198.51.100.7:51234" {
		t.Errorf("RemoteAddr = %s, want 198.51.100.7:51234", got)
	}
	if got := sc.LocalAddr().String(); got != "192.0.2.1:443" {
		t.Errorf("LocalAddr = %s, want 192.0.2.1:443", got)
	}
	// The bytes read past the header are reported by Buffered (so the
	// raw socket is not handed out under them) and reach the reader
	// intact, first.
	if n := sc.Buffered(); n != len("hello") {
		t.Errorf("Buffered = %d, want %d", n, len("hello"))
	}
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(sc, b); err != nil || string(b) != "hello" {
		t.Errorf("read after header = %q, %v; want hello", b, err)
	}
	if n := sc.Buffered(); n != 0 {
		t.Errorf("Buffered = %d after reading them", n)
	}
	// ClientAddr sees through a *tls.Conn wrapper.
	if got := ClientAddr(tls.Server(sc, &tls.Config{})); got != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("ClientAddr(tls.Server(c)) = %v", got)
	}
}

// TestListenerProxySplitHeader: a header that arrives in two segments is
// taken (the specification recommends tolerating partial headers;
// go-proxyproto alone refuses a v1 header its first read did not bring
// whole), and the deadline still bounds it.
func TestListenerProxySplitHeader(t *testing.T) {
	l, spy, accepted := startGuard(t, ListenerOptions{ProxyProtocol: true})
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\n"),
		v2Header(1, 0x11, v2Addr4("198.51.100.7", "192.0.2.1", 51234, 443), nil),
	} {
		c := dialFrom(t, "127.0.0.1", l.Addr().String())
		c.Write(hdr[:13])
		// Wait for the server's second Read: the first one has returned
		// the first segment alone.
		deadline := time.Now().Add(5 * time.Second)
		for spy.readsOf(c.LocalAddr().String()) < 2 {
			if l.Stats().ProxyHeader != 0 {
				t.Fatalf("header %q refused after its first segment", hdr)
			}
			if time.Now().After(deadline) {
				t.Fatal("the server did not read the first segment")
			}
			time.Sleep(time.Millisecond)
		}
		c.Write(append(hdr[13:], "hello"...))
		if !greeted(t, c) {
			t.Fatalf("header %q in two segments refused", hdr)
		}
		sc := <-accepted
		if got := sc.RemoteAddr().String(); got != "198.51.100.7:51234" {
			t.Errorf("RemoteAddr = %s, want 198.51.100.7:51234", got)
		}
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 5)
		if _, err := io.ReadFull(sc, b); err != nil || string(b) != "hello" {
			t.Errorf("read after header = %q, %v; want hello", b, err)
		}
	}
}

// TestListenerProxyV2Limits: a v2 header with 4 KiB of TLVs (room for a
// client certificate) is taken and the bytes after it kept; a longer one,
// and a PROXY command without addresses, are refused with the reason
// logged.
func TestListenerProxyV2Limits(t *testing.T) {
	var logBuf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
	l, _, accepted := startGuard(t, ListenerOptions{ProxyProtocol: true, Logger: logger})
	addr := l.Addr().String()
	big := v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 1, 443), bytes.Repeat([]byte{0xee}, 4096-12))
	c := dialFrom(t, "127.0.0.1", addr)
	c.Write(append(big, "tls..."...))
	if !greeted(t, c) {
		t.Fatal("v2 header with 4 KiB of TLVs refused")
	}
	sc := <-accepted
	if got := ClientAddr(sc); got != netip.MustParseAddr("203.0.113.5") {
		t.Errorf("ClientAddr = %v, want 203.0.113.5", got)
	}
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 6)
	if _, err := io.ReadFull(sc, b); err != nil || string(b) != "tls..." {
		t.Errorf("read after header = %q, %v; want tls...", b, err)
	}
	tooBig := v2Header(0, 0, nil, make([]byte, 4097))
	unspec := v2Header(1, 0, nil, nil)
	for _, hdr := range [][]byte{tooBig, unspec} {
		c := dialFrom(t, "127.0.0.1", addr)
		c.Write(hdr)
		if greeted(t, c) {
			t.Errorf("header %q admitted", hdr[:16])
		}
	}
	if st := l.Stats(); st.ProxyHeader != 2 || st.Accepted != 1 {
		t.Errorf("stats = %+v, want 2 proxy_header refusals, 1 accepted", st)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, why := range []string{"invalid length", "unsupported address family and protocol"} {
		if !strings.Contains(logBuf.String(), why) {
			t.Errorf("log does not say %q:\n%s", why, logBuf.String())
		}
	}
}

func TestListenerProxyV2AndBans(t *testing.T) {
	j := ratelimit.NewJail(ratelimit.JailOptions{})
	if err := j.Ban(ratelimit.KeyOf(netip.MustParseAddr("2001:db8:66::1"), 64), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	conns := ratelimit.NewConnLimiter(1, 0)
	l, _, accepted := startGuard(t, ListenerOptions{ProxyProtocol: true, Jail: j, Conns: conns})
	addr := l.Addr().String()

	hdr := v2Header(1, 0x21, v2Addr6("2001:db8:5::9", "2001:db8::1", 7, 443), []byte{0x04, 0, 1, 0})
	c := dialFrom(t, "127.0.0.1", addr)
	c.Write(append(hdr, "tls..."...))
	if !greeted(t, c) {
		t.Fatal("connection with a valid v2 header refused")
	}
	sc := <-accepted
	if got := ClientAddr(sc); got != netip.MustParseAddr("2001:db8:5::9") {
		t.Errorf("ClientAddr = %v, want 2001:db8:5::9", got)
	}
	if got := sc.Key().String(); got != "2001:db8:5::/64" {
		t.Errorf("ratelimit.Key = %s, want 2001:db8:5::/64", got)
	}
	if h, ok := sc.ProxyHeader(); !ok || h.Version != 2 {
		t.Errorf("ProxyHeader = %+v, %v", h, ok)
	}
	// The cap applies to the client in the header, not the balancer: a
	// second client of the same /64 is refused, another client is not.
	c2 := dialFrom(t, "127.0.0.1", addr)
	c2.Write(v2Header(1, 0x21, v2Addr6("2001:db8:5::10", "2001:db8::1", 8, 443), nil))
	if greeted(t, c2) {
		t.Error("second connection of 2001:db8:5::/64 admitted with PerKey 1")
	}
	c3 := dialFrom(t, "127.0.0.1", addr)
	c3.Write(v2Header(1, 0x11, v2Addr4("203.0.113.8", "192.0.2.1", 9, 443), nil))
	if !greeted(t, c3) {
		t.Error("IPv4 client through the same balancer refused")
	}
	// Bans apply to the proxied address.
	c4 := dialFrom(t, "127.0.0.1", addr)
	c4.Write(v2Header(1, 0x21, v2Addr6("2001:db8:66::abcd", "2001:db8::1", 9, 443), nil))
	if greeted(t, c4) {
		t.Error("banned /64 admitted through the balancer")
	}
	// A LOCAL header (balancer health check) uses the balancer's address.
	c5 := dialFrom(t, "127.0.0.5", addr)
	c5.Write(v2Header(0, 0, nil, nil))
	if !greeted(t, c5) {
		t.Fatal("LOCAL header refused")
	}
	<-accepted // c3
	if got := ClientAddr(<-accepted); got != netip.MustParseAddr("127.0.0.5") {
		t.Errorf("LOCAL: ClientAddr = %v, want the balancer's 127.0.0.5", got)
	}
	if st := l.Stats(); st.PerKey != 1 || st.Banned != 1 || st.Accepted != 3 {
		t.Errorf("stats = %+v, want 1 per-key, 1 banned, 3 accepted", st)
	}
}

func TestListenerProxyMissingHeader(t *testing.T) {
	var logBuf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
	var reasons atomic.Value
	l, spy, _ := startGuard(t, ListenerOptions{
		ProxyProtocol:      true,
		ProxyHeaderTimeout: 300 * time.Millisecond,
		Logger:             logger,
		OnRefuse:           func(k ratelimit.Key, reason string) { reasons.Store(reason) },
	})
	addr := l.Addr().String()
	// A client that talks HTTP (or TLS) straight to a PROXY listener.
	c := dialFrom(t, "127.0.0.1", addr)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if greeted(t, c) {
		t.Fatal("connection without a PROXY header admitted")
	}
	if r, _ := reasons.Load().(string); r != ratelimit.ReasonProxyHeader {
		t.Errorf("OnRefuse reason = %q, want %q", r, ratelimit.ReasonProxyHeader)
	}
	// A silent client is cut at the timeout, and does not hold up others.
	start := time.Now() // its timer starts after this
	silent := dialFrom(t, "127.0.0.2", addr)
	waitReading(t, spy, silent) // accepted first, waiting for its header
	fast := dialFrom(t, "127.0.0.3", addr)
	fast.Write([]byte("PROXY TCP4 198.51.100.1 192.0.2.1 1 443\r\n"))
	if !greeted(t, fast) {
		t.Fatal("a valid client was held up by a silent one")
	}
	if greeted(t, silent) {
		t.Fatal("silent client admitted")
	}
	// Not before the 300 ms timeout; and well before the default (5 s)
	// that would apply were the option ignored.
	if d := time.Since(start); d < 300*time.Millisecond || d >= DefaultProxyHeaderTimeout {
		t.Errorf("silent client cut after %v, want the 300ms timeout (not the %v default)", d, DefaultProxyHeaderTimeout)
	}
	if st := l.Stats(); st.ProxyHeader != 2 || st.Accepted != 1 {
		t.Errorf("stats = %+v, want 2 proxy_header refusals, 1 accepted", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logBuf.String(), "not a PROXY protocol header") || !strings.Contains(logBuf.String(), "timeout") {
		t.Errorf("log does not explain the refusals:\n%s", logBuf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestListenerPlainIgnoresProxyHeader(t *testing.T) {
	l, _, accepted := startGuard(t, ListenerOptions{})
	c := dialFrom(t, "127.0.0.1", l.Addr().String())
	c.Write([]byte("PROXY TCP4 198.51.100.7 192.0.2.1 1 2\r\n"))
	if !greeted(t, c) {
		t.Fatal("refused")
	}
	sc := <-accepted
	if got := ClientAddr(sc); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ClientAddr = %v on a plain listener, want the peer 127.0.0.1", got)
	}
	b := make([]byte, 6)
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, b); err != nil || string(b) != "PROXY " {
		t.Errorf("plain listener consumed the header: %q %v", b, err)
	}
}

func TestListenerCloseWithPendingHeaders(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leakcheck.Goroutines(t, modulePath) // none of the listener's outlives Close
	spy := &spyListener{Listener: inner, reads: map[string]*atomic.Int64{}}
	l := NewListener(spy, ListenerOptions{ProxyProtocol: true, ProxyHeaderTimeout: time.Minute})
	for range 3 {
		c := dialFrom(t, "127.0.0.1", l.Addr().String()) // never sends a header
		waitReading(t, spy, c)
	}
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on connections still sending their header")
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}
