package wstunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"runtime"
	"testing"
	"time"
)

// memInUse returns heap and stack bytes in use after collecting a few times
// (the second collection empties sync.Pool victims; collections also shrink
// the stacks of parked goroutines, as they do in a running server).
func memInUse() memUse {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return memUse{int64(m.HeapInuse), int64(m.StackInuse)}
}

type memUse struct{ heap, stack int64 }

func (m memUse) total() int64 { return m.heap + m.stack }

// TestIdleMemory opens 500 tunnels over loopback, moves one frame each way
// through each (so every pipe has borrowed a buffer and grown its stack as
// in real use), lets them go idle and reports the heap+stack cost per
// tunnel, excluding the sockets (and TLS conns), which the proxy holds
// anyway. "tls" terminates TLS on the client side, as for an HTTPS client,
// passed as Options.ClientTLS as the proxy does: once quiet for a sweep
// interval, an idle TLS tunnel must cost about what a TCP one does (issue
// 17.4: it held a 2 KiB read buffer and goroutines parked on the 4-8 KiB
// stacks crypto/tls had grown, about 5 KiB more).
func TestIdleMemory(t *testing.T) {
	per := map[bool]float64{}
	for _, useTLS := range []bool{false, true} {
		name := "tcp"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			n := 500
			if raceEnabled && useTLS {
				n = 100
			}
			reg := newTestRegistry(t, RegistryOptions{})
			base := memInUse()
			a, b := tcpPairs(t, 2*n)
			if useTLS {
				tlsWrap(t, a, b, n)
			}
			withConns := memInUse()
			goroutines := runtime.NumGoroutine()

			up := frame(true, 1, true, []byte("hello from the client"))
			down := frame(true, 1, false, []byte("hello from daphne"))
			buf := make([]byte, 64)
			for i := range n {
				o := Options{IdleTimeout: time.Hour, PingInterval: time.Hour, CloseTimeout: time.Second}
				if useTLS {
					o.ClientTLS = b[2*i].(*tls.Conn)
				}
				reg.Start(b[2*i], nil, a[2*i+1], nil, o)
			}
			for i := range n {
				client, backend := a[2*i], b[2*i+1]
				client.SetDeadline(time.Now().Add(waitFor))
				backend.SetDeadline(time.Now().Add(waitFor))
				if _, err := client.Write(up); err != nil {
					t.Fatal(err)
				}
				if _, err := readFull(backend, buf[:len(up)]); err != nil {
					t.Fatal(err)
				}
				if _, err := backend.Write(down); err != nil {
					t.Fatal(err)
				}
				if _, err := readFull(client, buf[:len(down)]); err != nil {
					t.Fatal(err)
				}
			}
			// Quiet for a sweep interval: the pipes give up their
			// goroutines (dormancy), or where there is none, those that
			// ran crypto/tls park again on fresh, small stacks.
			if reg.dorm.Load() != nil {
				sleepAll(t, reg)
			} else if useTLS {
				sweepUntil(t, reg, "TLS pipes handed over", func() bool { return grownPipes(reg) == 0 })
			}
			withTunnels := memInUse()
			perTunnel := float64(withTunnels.total()-withConns.total()) / float64(n)
			perConns := float64(withConns.total()-base.total()) / float64(n)
			t.Logf("idle tunnel (%s client): %.0f B heap+stack each (heap %.0f, stack %.0f); its sockets/conns: %.0f B",
				name, perTunnel, float64(withTunnels.heap-withConns.heap)/float64(n), float64(withTunnels.stack-withConns.stack)/float64(n), perConns)
			if got := reg.Len(); got != n {
				t.Fatalf("Len = %d, want %d", got, n)
			}
			if limit := 24 << 10; !raceEnabled && perTunnel > float64(limit) {
				t.Errorf("idle tunnel costs %.0f B, want < %d", perTunnel, limit)
			}
			// A dormant tunnel has no goroutine: its pipes' stacks (4 KiB
			// for the two, more after crypto/tls) are freed. (Freed stacks
			// are not all returned at once: a 32 KiB stack span stays
			// while one stack in it is in use or cached by the runtime's
			// free lists, so the stack figure above falls by less.)
			if g := runtime.NumGoroutine() - goroutines; reg.dorm.Load() != nil && g > 4 {
				t.Errorf("%d idle tunnels run %d more goroutines, want none (dormant)", n, g)
			}
			per[useTLS] = perTunnel
		})
	}
	// About what a TCP tunnel costs (5-7 KB); 11.7 KB before ClientTLS,
	// 9.8 KB with it but without the hand-over to small stacks.
	if tls := per[true]; !raceEnabled && hasRawIO && tls > 8<<10 {
		t.Errorf("an idle tunnel with a TLS client costs %.0f B (one with a TCP client %.0f B), want at most 8 KiB", tls, per[false])
	}
}

// tlsWrap replaces the client pairs (a[2i], b[2i]) of n tunnels by TLS
// conns with completed handshakes.
func tlsWrap(t testing.TB, a, b []net.Conn, n int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.test"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	cliCfg := &tls.Config{InsecureSkipVerify: true}
	for i := range n {
		cli, srv := tls.Client(a[2*i], cliCfg), tls.Server(b[2*i], srvCfg)
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake() }()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		a[2*i], b[2*i] = cli, srv
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
