package wstunnel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

func TestEcho(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	be := newBackend(t, false)
	f := newFront(t, reg, be.addr(), func() Options { return Options{CloseTimeout: waitFor} })
	c, tun := f.dial(t, nil)

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	cases := []struct {
		name string
		typ  int
		msg  []byte
		frag bool // sent as many frames through NextWriter
	}{
		{"text", websocket.TextMessage, []byte("hello, daphne"), false},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff, 0x80}, false},
		{"empty", websocket.TextMessage, nil, false},
		{"fragmented", websocket.TextMessage, bytes.Repeat([]byte("fragment "), 2000), true},
		{"large", websocket.BinaryMessage, big, false},
		{"large fragmented", websocket.BinaryMessage, big, true},
	}
	var sent int64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.frag {
				w, err := c.NextWriter(tc.typ)
				if err != nil {
					t.Fatal(err)
				}
				for p := tc.msg; len(p) > 0; {
					n := min(len(p), 300)
					if _, err := w.Write(p[:n]); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			} else if err := c.WriteMessage(tc.typ, tc.msg); err != nil {
				t.Fatal(err)
			}
			sent += int64(len(tc.msg))
			typ, got, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if typ != tc.typ || !bytes.Equal(got, tc.msg) {
				t.Fatalf("echo: got type %d, %d bytes; want type %d, %d bytes", typ, len(got), tc.typ, len(tc.msg))
			}
		})
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	res := waitDone(t, tun, waitFor)
	if res.Cause != CauseClientClosed || res.Code != CloseNormal {
		t.Errorf("result: cause %q code %d, want %q %d", res.Cause, res.Code, CauseClientClosed, CloseNormal)
	}
	if res.BytesIn < sent || res.BytesOut < sent {
		t.Errorf("bytes in %d out %d, want >= %d each", res.BytesIn, res.BytesOut, sent)
	}
	if got := closeCode(be.end(t)); got != websocket.CloseNormalClosure {
		t.Errorf("backend saw close code %d, want 1000", got)
	}
}

func TestBackendCloses(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	be := newBackend(t, true)
	f := newFront(t, reg, be.addr(), func() Options { return Options{CloseTimeout: waitFor} })
	c, tun := f.dial(t, nil)
	bc := <-be.conns
	bc.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "app"))
	if _, _, err := c.ReadMessage(); closeCode(err) != 4000 {
		t.Fatalf("client read: %v, want close 4000", err)
	}
	res := waitDone(t, tun, waitFor)
	if res.Cause != CauseBackendClosed || res.Code != 4000 {
		t.Errorf("result: cause %q code %d, want %q 4000", res.Cause, res.Code, CauseBackendClosed)
	}
}

func TestCloseSendsCodeBothWays(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	be := newBackend(t, false)
	var ended atomic.Pointer[Result]
	f := newFront(t, reg, be.addr(), func() Options {
		return Options{CloseTimeout: waitFor, OnEnd: func(r Result) { ended.Store(&r) }}
	})
	c, tun := f.dial(t, nil)
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tun.Close(CloseServiceRestart, "service restart", "drain")
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1012 || ce.Text != "service restart" {
		t.Fatalf("client read: %v, want close 1012 \"service restart\"", err)
	}
	// gorilla's server fails a conn on any unmasked client frame, so a 1012
	// here also proves the Close was masked.
	if got := closeCode(be.end(t)); got != 1012 {
		t.Errorf("backend saw close code %d, want 1012", got)
	}
	res := waitDone(t, tun, waitFor)
	if res.Cause != "drain" || res.Code != 1012 {
		t.Errorf("result: cause %q code %d, want drain 1012", res.Cause, res.Code)
	}
	// Both peers answered, so the tunnel did not wait for CloseTimeout.
	if d := time.Since(start); d > waitFor/2 {
		t.Errorf("close took %v: the tunnel waited for the timeout", d)
	}
	if p := ended.Load(); p == nil || *p != res {
		t.Errorf("OnEnd got %+v, want %+v", p, res)
	}
	tun.Close(CloseGoingAway, "", "again") // no effect after the end
}

// TestCloseWaitsForFrame calls Close while a 1 MiB frame is half way through
// the tunnel: the client must get the whole message, then the Close.
func TestCloseWaitsForFrame(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	addr, conns := rawBackend(t)
	f := newFront(t, reg, addr, func() Options { return Options{CloseTimeout: waitFor} })
	c, tun := f.dial(t, &websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512})
	bc := <-conns

	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	full := frame(true, websocket.BinaryMessage, false, msg)
	half := len(full) / 2
	if _, err := bc.Write(full[:half]); err != nil {
		t.Fatal(err)
	}
	typ, rd, err := c.NextReader()
	if err != nil || typ != websocket.BinaryMessage {
		t.Fatalf("NextReader: %d %v", typ, err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(rd, first); err != nil {
		t.Fatal(err)
	}
	tun.Close(CloseServiceRestart, "", "drain") // mid-frame in the backend→client direction
	// Finish the frame from another goroutine: the client must be reading
	// for the rest to fit through the sockets.
	werr := make(chan error, 1)
	go func() { _, err := bc.Write(full[half:]); werr <- err }()
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("reading the rest of the message: %v", err)
	}
	if got := append(first, rest...); !bytes.Equal(got, msg) {
		t.Fatalf("message damaged: got %d bytes, want %d", len(got), len(msg))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.NextReader(); closeCode(err) != 1012 {
		t.Fatalf("after the message: %v, want close 1012", err)
	}
	// The backend got a masked Close 1012.
	bc.SetReadDeadline(time.Now().Add(waitFor))
	op, masked, payload, err := readFrame(bc)
	if err != nil || op != opClose || !masked || len(payload) < 2 || payload[0] != 0x03 || payload[1] != 0xf4 {
		t.Fatalf("backend got op %d masked %v payload %x err %v; want masked close 1012", op, masked, payload, err)
	}
	bc.Write(frame(true, opClose, false, payload[:2]))
	res := waitDone(t, tun, waitFor)
	if res.Cause != "drain" || res.Code != 1012 {
		t.Errorf("result: %+v", res)
	}
}

func TestIdleTimeout(t *testing.T) {
	// No automatic sweeps: the test drives the clock.
	base := time.Now()
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	reg.sweep(base)
	be := newBackend(t, false)
	const idle = time.Minute
	f := newFront(t, reg, be.addr(), func() Options { return Options{IdleTimeout: idle, CloseTimeout: waitFor} })
	c, tun := f.dial(t, nil)

	reg.sweep(base.Add(idle / 2))
	if err := c.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	reg.sweep(base.Add(idle + idle/4)) // 3/4 idle since the message
	select {
	case <-tun.Done():
		t.Fatal("tunnel closed although data moved within the idle timeout")
	default:
	}
	reg.sweep(base.Add(idle/2 + idle + time.Second))
	if _, _, err := c.ReadMessage(); closeCode(err) != 1001 {
		t.Fatalf("client read: %v, want close 1001", err)
	}
	res := waitDone(t, tun, waitFor)
	if res.Cause != CauseIdleTimeout || res.Code != CloseGoingAway {
		t.Errorf("result: cause %q code %d", res.Cause, res.Code)
	}
}

// TestPingTimeout: over real sockets, a client that never reads (so never
// answers a Ping) is sent Pings, then closed with 1001 for ping_timeout,
// and the backend is told. When that happens is TestPingTimeoutTiming's
// business (on a fake clock): here a loaded machine may take its time.
func TestPingTimeout(t *testing.T) {
	const (
		sweep    = 10 * time.Millisecond
		interval = 100 * time.Millisecond
		timeout  = 150 * time.Millisecond
	)
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: sweep})
	be := newBackend(t, false)
	f := newFront(t, reg, be.addr(), func() Options {
		// A long CloseTimeout: a dead client must not make us wait for it.
		return Options{PingInterval: interval, PingTimeout: timeout, CloseTimeout: time.Hour}
	})
	c, tun := f.dial(t, nil) // never reads, so never answers a Ping
	res := waitDone(t, tun, waitFor)
	if res.Cause != CausePingTimeout || res.Code != CloseGoingAway {
		t.Errorf("result: cause %q code %d", res.Cause, res.Code)
	}
	if n := reg.PingTimeouts(); n != 1 {
		t.Errorf("PingTimeouts = %d, want 1", n)
	}
	if got := closeCode(be.end(t)); got != 1001 {
		t.Errorf("backend saw close %d, want 1001", got)
	}
	// What the client was sent: Pings, then a Close 1001.
	pings := 0
	c.SetPingHandler(func(string) error { pings++; return nil })
	if _, _, err := c.ReadMessage(); closeCode(err) != 1001 || pings == 0 {
		t.Errorf("client read %v after %d pings, want pings then close 1001", err, pings)
	}
}

// TestPingTimeoutTiming runs the ping clock on synctest's fake clock, over
// in-memory conns: a client that reads but never answers gets a Ping at
// the first sweep once it has been silent for PingInterval, and is closed
// (1001, the backend told) at the first sweep PingTimeout after that Ping;
// neither a sweep sooner nor later.
func TestPingTimeoutTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			sweep    = 10 * time.Millisecond
			interval = 100 * time.Millisecond
			timeout  = 150 * time.Millisecond
		)
		reg := NewRegistry(RegistryOptions{SweepInterval: sweep})
		defer reg.Close()
		start := time.Now()
		cl, bl, tun := pipeTunnel(t, reg, Options{PingInterval: interval, PingTimeout: timeout, CloseTimeout: time.Hour})
		client := newPipePeer(cl, true, false)
		backend := newPipePeer(bl, false, true)
		<-tun.Done()
		if took := time.Since(start); took != interval+timeout {
			t.Errorf("closed %v after the start, want interval + timeout = %v (sweeps every %v)", took, interval+timeout, sweep)
		}
		res, _ := tun.Result()
		if res.Cause != CausePingTimeout || res.Code != CloseGoingAway {
			t.Errorf("result: cause %q code %d, want %q 1001", res.Cause, res.Code, CausePingTimeout)
		}
		if n := reg.PingTimeouts(); n != 1 {
			t.Errorf("PingTimeouts = %d, want 1", n)
		}
		var got []string
		for f := range client.frames {
			got = append(got, fmt.Sprintf("op %d at +%v", f.op, f.at.Sub(start)))
		}
		if want := []string{fmt.Sprintf("op %d at +%v", opPing, interval), fmt.Sprintf("op %d at +%v", opClose, interval+timeout)}; !slices.Equal(got, want) {
			t.Errorf("client was sent %q, want %q", got, want)
		}
		var closes []uint16
		for f := range backend.frames {
			if f.op == opClose && len(f.payload) >= 2 {
				closes = append(closes, binary.BigEndian.Uint16(f.payload))
			}
		}
		if !slices.Equal(closes, []uint16{CloseGoingAway}) {
			t.Errorf("backend was sent Close codes %v, want [1001]", closes)
		}
	})
}

// TestPingAnswered: a client that answers every Ping stays open, and only
// our own Pongs are kept from the backend. A Ping goes out only once the
// previous one was answered, so five Pings prove four recognised Pongs.
// PingTimeout is long: a loaded machine that delays an answer must not
// close a responsive client, and a Pong not recognised would stop the
// Pings long before it.
func TestPingAnswered(t *testing.T) {
	const (
		sweep    = 10 * time.Millisecond
		interval = 50 * time.Millisecond
	)
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: sweep})
	be := newBackend(t, false)
	f := newFront(t, reg, be.addr(), func() Options {
		return Options{PingInterval: interval, PingTimeout: waitFor, CloseTimeout: waitFor}
	})
	c, tun := f.dial(t, nil)
	pinged := make(chan struct{}, 64)
	c.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan []byte, 16)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			msgs <- m
		}
	}()
	for i := 0; i < 5; i++ {
		select {
		case <-pinged:
		case <-tun.Done():
			t.Fatalf("tunnel of a responsive client closed after %d pings: %+v", i, must(tun.Result()))
		case <-time.After(waitFor):
			t.Fatalf("client saw %d pings, want 5: our Pong was not recognised", i)
		}
	}
	if n := be.pongs.Load(); n != 0 {
		t.Errorf("backend received %d of our pongs", n)
	}
	// A Pong that is not ours passes, and data still flows.
	if err := c.WriteControl(websocket.PongMessage, []byte("not yours"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteControl(websocket.PongMessage, []byte("8 bytes!"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if string(m) != "hi" {
			t.Errorf("echo %q", m)
		}
	case err := <-readErr:
		t.Fatal(err)
	case <-time.After(waitFor):
		t.Fatal("no echo")
	}
	if n := be.pongs.Load(); n != 2 {
		t.Errorf("backend received %d pongs, want the client's own 2", n)
	}
	if n := reg.PingTimeouts(); n != 0 {
		t.Errorf("PingTimeouts = %d", n)
	}
}

func must(r Result, _ bool) Result { return r }

// TestBuffered checks that bytes buffered during the handshake are
// forwarded first, and that Start works on conns with no RawConn.
func TestBuffered(t *testing.T) {
	for _, name := range []string{"tcp", "pipe"} {
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t, RegistryOptions{})
			var cl, cp, bp, bl net.Conn
			if name == "tcp" {
				a, b := tcpPairs(t, 2)
				cl, cp, bp, bl = a[0], b[0], a[1], b[1]
			} else {
				cl, cp = net.Pipe()
				bp, bl = net.Pipe()
			}
			fromClient := append(frame(true, 1, true, []byte("early")), frame(false, 2, true, []byte("part"))[:3]...)
			fromBackend := frame(true, 1, false, []byte("welcome"))
			tun := reg.Start(cp, fromClient, bp, fromBackend, Options{CloseTimeout: waitFor})
			// The client finishes its half-sent frame.
			go cl.Write(frame(false, 2, true, []byte("part"))[3:])
			bl.SetReadDeadline(time.Now().Add(waitFor))
			cl.SetReadDeadline(time.Now().Add(waitFor))
			for _, want := range []string{"early", "part"} {
				if _, _, p, err := readFrame(bl); err != nil || string(p) != want {
					t.Fatalf("backend read %q %v, want %q", p, err, want)
				}
			}
			if _, _, p, err := readFrame(cl); err != nil || string(p) != "welcome" {
				t.Fatalf("client read %q %v, want welcome", p, err)
			}
			// Close while the client is in the middle of a fragmented message.
			tun.Close(CloseGoingAway, "bye", "test")
			go func() {
				if _, _, p, err := readFrame(bl); err == nil {
					_ = p
					bl.Write(frame(true, opClose, false, []byte{0x03, 0xe9}))
				}
			}()
			op, masked, p, err := readFrame(cl)
			if err != nil || op != opClose || masked || string(p[2:]) != "bye" {
				t.Fatalf("client read op %d masked %v %q %v, want unmasked close", op, masked, p, err)
			}
			cl.Write(frame(true, opClose, true, p[:2]))
			res := waitDone(t, tun, waitFor)
			if res.Cause != "test" || res.Code != 1001 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	be := newBackend(t, false)
	f := newFront(t, reg, be.addr(), func() Options { return Options{CloseTimeout: waitFor} })
	var clients []*websocket.Conn
	for range 5 {
		c, _ := f.dial(t, nil)
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- reg.Shutdown(ctx, CloseGoingAway, "shutting down") }()
	for _, c := range clients {
		// gorilla answers the Close while reading it.
		if _, _, err := c.ReadMessage(); closeCode(err) != 1001 {
			t.Errorf("client read %v, want close 1001", err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := reg.Len(); n != 0 {
		t.Errorf("Len after Shutdown = %d", n)
	}
	// New tunnels during or after Shutdown are closed at once.
	c, tun := f.dial(t, nil)
	if _, _, err := c.ReadMessage(); closeCode(err) != 1001 {
		t.Errorf("late client read %v, want close 1001", err)
	}
	if res := waitDone(t, tun, waitFor); res.Cause != CauseShutdown {
		t.Errorf("late tunnel cause %q", res.Cause)
	}
}

func TestShutdownForced(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	a, b := tcpPairs(t, 2) // peers that never answer
	tun := reg.Start(b[0], nil, a[1], nil, Options{CloseTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := reg.Shutdown(ctx, CloseGoingAway, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	res := waitDone(t, tun, waitFor)
	if res.Cause != CauseShutdown || res.Code != 1001 {
		t.Errorf("result %+v", res)
	}
	// The client saw the Close before the conn went away.
	a[0].SetReadDeadline(time.Now().Add(waitFor))
	if op, _, _, err := readFrame(a[0]); err != nil || op != opClose {
		t.Errorf("client read op %d %v, want close", op, err)
	}
	reg.Close()
	if tun := reg.Start(b[1], nil, a[1], nil, Options{}); tun.done == nil || !isClosed(tun.Done()) {
		t.Errorf("Start after Close returned a live tunnel")
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// bufferedTCP embeds *net.TCPConn, so it has SyscallConn, but returns bytes
// of its own first, like a wrapper that read ahead.
type bufferedTCP struct {
	*net.TCPConn
	pre []byte
}

func (c *bufferedTCP) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.TCPConn.Read(b)
}

// wrapped hides the conn type entirely.
type wrapped struct{ net.Conn }

// TestWrappedClient checks that a wrapper is read through its own Read
// unless ClientSocket names its socket, and that either way the stream
// arrives whole.
func TestWrappedClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wrap    func(net.Conn) net.Conn
		socket  bool
		wantRaw bool
	}{
		{"embedded TCPConn with read-ahead", func(c net.Conn) net.Conn {
			return &bufferedTCP{c.(*net.TCPConn), frame(true, 1, true, []byte("ahead"))}
		}, false, false},
		{"opaque wrapper", func(c net.Conn) net.Conn { return wrapped{c} }, false, false},
		{"opaque wrapper with ClientSocket", func(c net.Conn) net.Conn { return wrapped{c} }, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, RegistryOptions{})
			a, b := tcpPairs(t, 2)
			o := Options{CloseTimeout: waitFor}
			if tc.socket {
				o.ClientSocket = b[0]
			}
			client := tc.wrap(b[0])
			tun := reg.Start(client, nil, a[1], nil, o)
			if got := tun.c2b.raw != nil; got != tc.wantRaw {
				t.Errorf("raw reads = %v, want %v", got, tc.wantRaw)
			}
			if got := isSockio(tun.b2c.w); got != (tc.wantRaw && sockio.Supported) {
				t.Errorf("raw writes to the client = %v, want %v", got, tc.wantRaw && sockio.Supported)
			}
			if isSockio(tun.c2b.w) != sockio.Supported {
				t.Errorf("writes to the backend's *net.TCPConn raw = %v, want %v (sockio.Supported)", !sockio.Supported, sockio.Supported)
			}
			a[0].Write(frame(true, 1, true, []byte("after")))
			b[1].SetReadDeadline(time.Now().Add(waitFor))
			var got []string
			for len(got) < 2 {
				_, _, p, err := readFrame(b[1])
				if err != nil {
					t.Fatalf("backend read: %v (got %q)", err, got)
				}
				got = append(got, string(p))
				if _, ok := client.(*bufferedTCP); !ok {
					break
				}
			}
			if want := "after"; got[len(got)-1] != want || (len(got) == 2 && got[0] != "ahead") {
				t.Errorf("backend got %q", got)
			}
			// The kick that wakes the pipe goes through the socket too.
			tun.Close(CloseGoingAway, "", "test")
			a[0].SetReadDeadline(time.Now().Add(waitFor))
			if op, _, _, err := readFrame(a[0]); err != nil || op != opClose {
				t.Fatalf("client read op %d %v, want close", op, err)
			}
		})
	}
}

// TestBackpressure sends a frame larger than the sockets can buffer to a
// client that is not reading yet: the pipe's raw write must wait for room
// (EAGAIN, then the poller) and deliver every byte once the client reads.
func TestBackpressure(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	a, b := tcpPairs(t, 2)
	tun := reg.Start(b[0], nil, a[1], nil, Options{CloseTimeout: waitFor})
	if !isSockio(tun.b2c.w) {
		t.Skip("no raw socket writes on this platform")
	}
	msg := make([]byte, 32<<20)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	werr := make(chan error, 1)
	go func() { _, err := b[1].Write(frame(true, 2, false, msg)); werr <- err }()
	// The client reads nothing for a while, so the pipe's write fills the
	// socket buffers and blocks. No event marks that moment; should the
	// wait end before it (a loaded machine), the test still passes and
	// only exercises less, so it cannot flake.
	time.Sleep(200 * time.Millisecond)
	// 32 MiB through the tunnel: seconds under the race detector on a
	// loaded machine. The deadline only ends a stuck test.
	a[0].SetReadDeadline(time.Now().Add(6 * waitFor))
	op, _, got, err := readFrame(a[0])
	if err != nil || op != 2 {
		t.Fatalf("client read: op %d, %v", op, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("message damaged: got %d bytes, want %d", len(got), len(msg))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// TestCloseUnblocksWrite: a pipe stuck writing to a client that never
// reads is freed when the close timeout closes the conns.
func TestCloseUnblocksWrite(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	a, b := tcpPairs(t, 2)
	tun := reg.Start(b[0], nil, a[1], nil, Options{CloseTimeout: 200 * time.Millisecond})
	go b[1].Write(frame(true, 2, false, make([]byte, 32<<20))) // fails once the tunnel closes a[1]
	// Let the pipe fill the client's socket buffers and block (as in
	// TestBackpressure, a wait that can only make the test exercise less).
	time.Sleep(200 * time.Millisecond)
	tun.Close(CloseGoingAway, "", "test") // mid-frame and blocked: no Close frame can go out
	res := waitDone(t, tun, waitFor)
	if res.Cause != "test" {
		t.Errorf("result: %+v", res)
	}
}

// isSockio reports whether a pipe writes its destination with raw system
// calls.
func isSockio(c net.Conn) bool {
	_, ok := c.(*sockio.Conn)
	return ok
}
