package wstunnel

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// batchConn holds what is written to it while batching, and sends it in
// one write on flush: several TLS records reach the peer's socket at once,
// so crypto/tls on the other side reads them all in one read.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	held     bytes.Buffer
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		return c.held.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *batchConn) hold() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *batchConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	_, err := c.Conn.Write(c.held.Bytes())
	c.held.Reset()
	return err
}

// tlsTunnel starts a tunnel whose client side is TLS over loopback TCP,
// given to the tunnel as Options.ClientTLS (as the proxy does for an HTTPS
// client). It returns the client's TLS conn (over a batchConn), the
// backend's end and the tunnel.
func tlsTunnel(t *testing.T, reg *Registry, o Options) (client *tls.Conn, batch *batchConn, backend net.Conn, tun *Tunnel) {
	t.Helper()
	a, b := tcpPairs(t, 2)
	batch = &batchConn{Conn: a[0]}
	ca, cb := []net.Conn{batch}, []net.Conn{b[0]}
	tlsWrap(t, ca, cb, 1)
	client, srv := ca[0].(*tls.Conn), cb[0].(*tls.Conn)
	o.ClientTLS = srv
	tun = reg.Start(srv, nil, a[1], nil, o)
	return client, batch, b[1], tun
}

// TestTLSClient: with Options.ClientTLS the client side is read through
// crypto/tls after waiting on the socket. Every byte must still arrive:
// several records read by crypto/tls in one socket read (the pipe must take
// the ones it holds without waiting for the socket), messages larger than
// a record and than the pipe's buffer, both directions, and a Close from
// the proxy that must wake the pipe parked on the socket.
func TestTLSClient(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{})
	client, batch, backend, tun := tlsTunnel(t, reg, Options{CloseTimeout: waitFor})
	if hasRawIO && tun.c2b.tls == nil {
		t.Fatal("the client pipe does not read through ClientTLS")
	}
	client.SetDeadline(time.Now().Add(waitFor))
	backend.SetDeadline(time.Now().Add(waitFor))

	var sent int64 // client bytes, frame headers included
	send := func(f []byte) {
		t.Helper()
		if _, err := client.Write(f); err != nil {
			t.Fatal(err)
		}
		sent += int64(len(f))
	}

	// Ten frames, one TLS record each, in one TCP segment.
	batch.hold()
	for i := range 10 {
		send(frame(true, 1, true, fmt.Appendf(nil, "message %d", i)))
	}
	if err := batch.flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		_, _, p, err := readFrame(backend)
		if err != nil {
			t.Fatalf("backend read of frame %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %d", i); string(p) != want {
			t.Fatalf("backend got %q, want %q", p, want)
		}
	}

	// Larger than a record (16 KiB) and than the pipe's buffer, with a
	// small frame in the same batch behind it.
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	batch.hold()
	send(frame(true, 2, true, big))
	send(frame(true, 1, true, []byte("after")))
	flushed := make(chan error, 1)
	go func() { flushed <- batch.flush() }() // larger than the socket buffers
	if _, _, p, err := readFrame(backend); err != nil || !bytes.Equal(p, big) {
		t.Fatalf("backend read of the large frame: %d bytes, %v", len(p), err)
	}
	if _, _, p, err := readFrame(backend); err != nil || string(p) != "after" {
		t.Fatalf("backend read after the large frame: %q, %v", p, err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}

	// Backend to client.
	if _, err := backend.Write(frame(true, 1, false, []byte("from daphne"))); err != nil {
		t.Fatal(err)
	}
	if _, _, p, err := readFrame(client); err != nil || string(p) != "from daphne" {
		t.Fatalf("client read: %q, %v", p, err)
	}

	// Quiet for a sweep interval: both pipes ran crypto/tls and hand over
	// to fresh goroutines; the stream goes on as before.
	handOver(t, reg, tun)
	send(frame(true, 1, true, []byte("after the hand-over")))
	if _, _, p, err := readFrame(backend); err != nil || string(p) != "after the hand-over" {
		t.Fatalf("backend read after the hand-over: %q, %v", p, err)
	}
	if _, err := backend.Write(frame(true, 1, false, []byte("still here"))); err != nil {
		t.Fatal(err)
	}
	if _, _, p, err := readFrame(client); err != nil || string(p) != "still here" {
		t.Fatalf("client read after the hand-over: %q, %v", p, err)
	}
	handOver(t, reg, tun)

	// Idle, then closed by the proxy: both peers get the Close frame.
	tun.Close(CloseGoingAway, "bye", "test")
	if op, _, p, err := readFrame(client); err != nil || op != opClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != int(CloseGoingAway) {
		t.Fatalf("client read op %d payload %q err %v, want Close 1001", op, p, err)
	}
	if op, _, _, err := readFrame(backend); err != nil || op != opClose {
		t.Fatalf("backend read op %d err %v, want Close", op, err)
	}
	send(frame(true, opClose, true, closePayload(CloseGoingAway, "")))
	backend.Write(frame(true, opClose, false, closePayload(CloseGoingAway, "")))
	res := waitDone(t, tun, waitFor)
	if res.Cause != "test" || res.Code != CloseGoingAway {
		t.Errorf("result: cause %q code %d, want test 1001", res.Cause, res.Code)
	}
	if res.BytesIn != sent {
		t.Errorf("BytesIn = %d, want %d (every byte the client sent)", res.BytesIn, sent)
	}
}

// TestTLSClientIdleTimeout: the idle timeout closes a tunnel whose TLS
// client pipe is parked on the socket (the sweep's Close must wake it).
func TestTLSClientIdleTimeout(t *testing.T) {
	// No automatic sweeps: the test drives the clock.
	base := time.Now()
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	reg.sweep(base)
	const idle = time.Minute
	client, _, backend, tun := tlsTunnel(t, reg, Options{IdleTimeout: idle, CloseTimeout: waitFor})
	client.SetDeadline(time.Now().Add(waitFor))
	backend.SetDeadline(time.Now().Add(waitFor))
	reg.sweep(base.Add(idle + time.Second))
	if op, _, _, err := readFrame(client); err != nil || op != opClose {
		t.Fatalf("client read op %d err %v, want Close", op, err)
	}
	if op, _, _, err := readFrame(backend); err != nil || op != opClose {
		t.Fatalf("backend read op %d err %v, want Close", op, err)
	}
	client.Close()
	res := waitDone(t, tun, waitFor)
	if res.Cause != CauseIdleTimeout || res.Code != CloseGoingAway {
		t.Errorf("result: cause %q code %d, want %q 1001", res.Cause, res.Code, CauseIdleTimeout)
	}
}

// handOver makes the registry's sweeper see tun quiet for more than a sweep
// interval, and waits until the pipes that ran crypto/tls have handed over
// to fresh goroutines (each resets grown when it starts).
func handOver(t *testing.T, reg *Registry, tun *Tunnel) {
	t.Helper()
	if !hasRawIO {
		return
	}
	if !tun.c2b.grown.Load() || !tun.b2c.grown.Load() {
		t.Fatalf("after TLS traffic both ways: grown c2b %v b2c %v, want both", tun.c2b.grown.Load(), tun.b2c.grown.Load())
	}
	sweepUntil(t, reg, "pipes that ran crypto/tls handed over", func() bool { return grownPipes(reg) == 0 })
}

// grownPipes counts reg's tunnels with a pipe marked grown.
func grownPipes(reg *Registry) int {
	grown := 0
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for tun := range reg.tunnels {
		if tun.c2b.grown.Load() || tun.b2c.grown.Load() {
			grown++
		}
	}
	return grown
}

// TestTLSClientHeldAtStart: bytes crypto/tls already holds when the tunnel
// starts (a client that sent its first frame in the TLS record that also
// carried the end of its upgrade request, read only in part by the HTTP
// server) are forwarded at once, not when the client's next record comes.
func TestTLSClientHeldAtStart(t *testing.T) {
	if !hasRawIO {
		t.Skip("no socket wait on this platform: the tunnel reads through crypto/tls")
	}
	reg := newTestRegistry(t, RegistryOptions{})
	a, b := tcpPairs(t, 2)
	ca, cb := []net.Conn{a[0]}, []net.Conn{b[0]}
	tlsWrap(t, ca, cb, 1)
	client, srv := ca[0].(*tls.Conn), cb[0].(*tls.Conn)
	backend := b[1]
	client.SetDeadline(time.Now().Add(waitFor))
	backend.SetDeadline(time.Now().Add(waitFor))

	f := frame(true, 1, true, []byte("sent with the handshake"))
	if _, err := client.Write(f); err != nil { // one record
		t.Fatal(err)
	}
	// The HTTP server read the first byte of the record; crypto/tls holds
	// the rest, and the socket has nothing more to show.
	first := make([]byte, 1)
	srv.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(srv, first); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Time{})
	reg.Start(srv, first, a[1], nil, Options{ClientTLS: srv, CloseTimeout: waitFor})

	backend.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, p, err := readFrame(backend); err != nil || string(p) != "sent with the handshake" {
		t.Fatalf("backend read %q, %v: the bytes crypto/tls held at the start were not forwarded", p, err)
	}
}
