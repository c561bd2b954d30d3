package wstunnel

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// recordConn records what is written to it.
type recordConn struct {
	discardConn
	buf bytes.Buffer
}

func (c *recordConn) Write(b []byte) (int, error) { return c.buf.Write(b) }

func testTunnel(t *testing.T, o Options) (*Tunnel, *recordConn, *recordConn) {
	t.Helper()
	reg := NewRegistry(RegistryOptions{SweepInterval: time.Hour})
	t.Cleanup(func() { reg.Close() })
	tun := &Tunnel{r: reg, o: o}
	copy(tun.marker[:], "marker!!")
	toBackend, toClient := &recordConn{}, &recordConn{}
	tun.client, tun.backend = net.Conn(toClient), net.Conn(toBackend)
	tun.c2b.init(tun, discardConn{}, toBackend, nil, nil, nil, sideClient, nil)
	tun.b2c.init(tun, discardConn{}, toClient, nil, nil, nil, sideBackend, nil)
	return tun, toBackend, toClient
}

// TestProcessChunking feeds a client stream in chunks of every size from 1
// to 64 bytes: the backend must receive it byte for byte except the Pongs
// that answer our Pings.
func TestProcessChunking(t *testing.T) {
	var in, want []byte
	add := func(f []byte, forwarded bool) {
		in = append(in, f...)
		if forwarded {
			want = append(want, f...)
		}
	}
	add(frame(true, 1, true, []byte("hello")), true)
	add(frame(true, opPong, true, []byte("marker!!")), false)
	add(frame(false, 1, true, bytes.Repeat([]byte("a"), 200)), true)
	add(frame(true, opPong, true, []byte("marker!?")), true) // same length, other payload
	add(frame(true, opPong, true, []byte("marker!!")), false)
	add(frame(true, opPong, true, []byte("marker")), true) // other length
	add(frame(true, opPong, true, nil), true)
	add(frame(true, opPong, false, []byte("marker!!")), true) // unmasked: not a client pong
	add(frame(true, 0, true, bytes.Repeat([]byte("b"), 70000)), true)
	add(frame(true, opPing, true, []byte("x")), true)

	for step := 1; step <= 64; step++ {
		tun, toBackend, _ := testTunnel(t, Options{PingInterval: time.Minute})
		for i := 0; i < len(in); i += step {
			if err := tun.c2b.process(in[i:min(i+step, len(in))]); err != nil {
				t.Fatal(err)
			}
		}
		if got := toBackend.buf.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("step %d: backend got %d bytes, want %d", step, len(got), len(want))
		}
	}
	// Without pings nothing is held back.
	tun, toBackend, _ := testTunnel(t, Options{})
	tun.c2b.process(in)
	if !bytes.Equal(toBackend.buf.Bytes(), in) {
		t.Fatal("pings off: stream changed")
	}
}

// TestProcessInjectsAtBoundary requests a Close and a Ping in the middle of
// a frame: they must come out right after that frame, and nothing the
// backend sends afterwards may reach the client.
func TestProcessInjectsAtBoundary(t *testing.T) {
	tun, _, toClient := testTunnel(t, Options{CloseTimeout: time.Minute})
	tun.closeCode, tun.closeReason = CloseGoingAway, "bye"
	msg := frame(false, 2, false, bytes.Repeat([]byte("m"), 1000))
	next := frame(true, 0, false, []byte("tail"))
	p := &tun.b2c
	p.process(msg[:500])
	p.pending.Or(injPing)
	p.process(msg[500:700])
	p.pending.Or(injClose)
	p.process(msg[700:])
	p.process(next)
	want := append(bytes.Clone(msg), appendFrame(nil, opClose, closePayload(CloseGoingAway, "bye"), false, [4]byte{})...)
	if got := toClient.buf.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("client got %q\nwant %q", got, want)
	}
	// A Ping requested before the Close was dropped with it, and after the
	// Close the rest of the backend's stream is discarded.
	if !p.discard {
		t.Error("pipe not discarding after Close")
	}
	// The backend's Close reply is recognised.
	p.process(frame(true, opClose, false, []byte{3, 0xe9}))
	if !tun.heard[1] || !tun.sent[1] {
		t.Errorf("sent/heard = %v/%v, want the b2c Close sent and the reply heard", tun.sent, tun.heard)
	}
}
