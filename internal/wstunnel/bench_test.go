package wstunnel

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)        { return len(b), nil }
func (discardConn) SetReadDeadline(time.Time) error    { return nil }
func (discardConn) Read([]byte) (int, error)           { return 0, io.EOF }
func (discardConn) Close() error                       { return nil }
func (discardConn) SetDeadline(time.Time) error        { return nil }
func (discardConn) SetWriteDeadline(t time.Time) error { return nil }

// TestProcessAllocs checks that the per-chunk path allocates nothing:
// data frames, a fragmented message, a foreign Pong and our own Pong.
func TestProcessAllocs(t *testing.T) {
	reg := NewRegistry(RegistryOptions{SweepInterval: time.Hour})
	defer reg.Close()
	tun := &Tunnel{r: reg, o: Options{PingInterval: time.Minute}}
	copy(tun.marker[:], "marker!!")
	tun.c2b.init(tun, discardConn{}, discardConn{}, nil, nil, nil, sideClient, nil)
	var chunk []byte
	chunk = append(chunk, frame(true, 1, true, []byte("hello"))...)
	chunk = append(chunk, frame(false, 2, true, bytes.Repeat([]byte{1}, 300))...)
	chunk = append(chunk, frame(true, 0, true, bytes.Repeat([]byte{2}, 70))...)
	chunk = append(chunk, frame(true, opPong, true, []byte("foreign!"))...)
	chunk = append(chunk, frame(true, opPong, true, []byte("marker!!"))...)
	chunk = append(chunk, frame(true, opPing, true, nil)...)
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < len(chunk); i += 7 { // split frames across chunks too
			if e := tun.c2b.process(chunk[i:min(i+7, len(chunk))]); e != nil {
				err = e
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("process allocates %v times per run, want 0", allocs)
	}
	if !tun.c2b.fp.atBoundary() {
		t.Error("not at a frame boundary after whole frames")
	}
}

// benchPair sets up one tunnel (or, with relay, two io.Copy goroutines) and
// returns the client's and backend's ends.
func benchPair(b *testing.B, relay bool) (client, backend net.Conn) {
	a, c := tcpPairs(b, 2)
	if relay {
		go io.Copy(a[1], c[0])
		go io.Copy(c[0], a[1])
		return a[0], c[1]
	}
	reg := NewRegistry(RegistryOptions{})
	b.Cleanup(func() { reg.Close() })
	reg.Start(c[0], nil, a[1], nil, Options{IdleTimeout: time.Hour, PingInterval: time.Hour, CloseTimeout: time.Second})
	return a[0], c[1]
}

// BenchmarkSmallFrames pushes 32-byte masked frames client→backend through
// a tunnel, written one per syscall or 16 per syscall, against a plain
// io.Copy relay as reference.
func BenchmarkSmallFrames(b *testing.B) {
	fr := frame(true, 1, true, bytes.Repeat([]byte("x"), 32))
	for _, bc := range []struct {
		name  string
		relay bool
		batch int
	}{
		{"tunnel/batch1", false, 1}, {"tunnel/batch16", false, 16},
		{"iocopy/batch1", true, 1}, {"iocopy/batch16", true, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			client, backend := benchPair(b, bc.relay)
			batch := bytes.Repeat(fr, bc.batch)
			b.SetBytes(int64(len(fr)))
			b.ReportAllocs()
			done := make(chan error, 1)
			total := int64(b.N) * int64(len(fr))
			go func() {
				_, err := io.CopyN(io.Discard, backend, total)
				done <- err
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i += bc.batch {
				w := batch
				if rest := b.N - i; rest < bc.batch {
					w = batch[:rest*len(fr)]
				}
				if _, err := client.Write(w); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkTLSEcho measures one round trip of a 64-byte message between a
// TLS client and a TCP backend through a tunnel, with the pipes going idle
// in between (as for a chat message): "fallback" reads the client through
// the TLS conn with a small buffer of its own, "ClientTLS" waits on the
// socket and borrows a pooled buffer (Options.ClientTLS; no hand-over to a
// fresh goroutine: the sweeper does that only after a quiet sweep
// interval). cpu-µs/op is the process's CPU time per round trip (client,
// tunnel and backend together).
func BenchmarkTLSEcho(b *testing.B) {
	for _, useTLSOption := range []bool{false, true} {
		name := "fallback"
		if useTLSOption {
			name = "ClientTLS"
		}
		b.Run(name, func(b *testing.B) {
			reg := NewRegistry(RegistryOptions{})
			b.Cleanup(func() { reg.Close() })
			a, c := tcpPairs(b, 2)
			ca, cc := []net.Conn{a[0]}, []net.Conn{c[0]}
			tlsWrap(b, ca, cc, 1)
			o := Options{IdleTimeout: time.Hour, CloseTimeout: time.Second}
			if useTLSOption {
				o.ClientTLS = cc[0].(*tls.Conn)
			}
			reg.Start(cc[0], nil, a[1], nil, o)
			client, backend := ca[0], c[1]
			payload := bytes.Repeat([]byte("x"), 64)
			up, down := frame(true, 2, true, payload), frame(true, 2, false, payload)
			go func() { // the backend: answer each message
				buf := make([]byte, len(up))
				for {
					if _, err := io.ReadFull(backend, buf); err != nil {
						return
					}
					if _, err := backend.Write(down); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, len(down))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				if _, err := client.Write(up); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, buf); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the whole process (client, tunnel and backend)
			// per round trip: wall time is mostly waiting on loopback.
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
