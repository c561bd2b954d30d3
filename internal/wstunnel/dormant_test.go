package wstunnel

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dormantTunnel starts a tunnel over loopback TCP and returns the client's
// and the backend's ends. It skips where pipes cannot go dormant.
func dormantTunnel(t *testing.T, reg *Registry, o Options) (client, backend net.Conn, tun *Tunnel) {
	t.Helper()
	a, b := tcpPairs(t, 2)
	tun = reg.Start(b[0], nil, a[1], nil, o)
	if reg.dorm.Load() == nil {
		t.Skip("no dormancy on this platform (Linux epoll only): pipes keep their goroutines")
	}
	client, backend = a[0], b[1]
	client.SetDeadline(time.Now().Add(waitFor))
	backend.SetDeadline(time.Now().Add(waitFor))
	return client, backend, tun
}

// echo sends a frame each way through the tunnel and checks both arrive.
func echo(t *testing.T, client, backend net.Conn, msg string) {
	t.Helper()
	if _, err := client.Write(frame(true, 1, true, []byte(msg+" up"))); err != nil {
		t.Fatal(err)
	}
	if _, _, p, err := readFrame(backend); err != nil || string(p) != msg+" up" {
		t.Fatalf("backend read %q, %v; want %q", p, err, msg+" up")
	}
	if _, err := backend.Write(frame(true, 1, false, []byte(msg+" down"))); err != nil {
		t.Fatal(err)
	}
	if _, _, p, err := readFrame(client); err != nil || string(p) != msg+" down" {
		t.Fatalf("client read %q, %v; want %q", p, err, msg+" down")
	}
}

// TestDormantTunnel: a tunnel over sockets starts without goroutines, gets
// one per direction when data comes, gives them up when the sweeper finds
// it quiet, and is taken up again by data, by Close, by a Ping that falls
// due and by a peer that hangs up.
func TestDormantTunnel(t *testing.T) {
	// The test drives the sweeps.
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	base := runtime.NumGoroutine()
	client, backend, tun := dormantTunnel(t, reg, Options{PingInterval: 100000 * time.Hour, CloseTimeout: waitFor})
	waitDormant(t, reg) // from the start: nothing came yet
	if g := runtime.NumGoroutine() - base; g > 1 {
		t.Errorf("a new, quiet tunnel runs %d goroutines (the registry's dispatcher counts one), want at most 1", g)
	}

	echo(t, client, backend, "first")
	sleepAll(t, reg)
	echo(t, client, backend, "after a sleep")
	sleepAll(t, reg)

	// A Ping falls due for the quiet client: the dormant backend-to-client
	// pipe is woken to send it, and the client's Pong is dropped.
	reg.sweep(time.Unix(0, reg.clock.Load()).Add(200000 * time.Hour))
	op, _, p, err := readFrame(client)
	if err != nil || op != opPing || len(p) != markerLen {
		t.Fatalf("client read op %d payload %q err %v, want our Ping", op, p, err)
	}
	if _, err := client.Write(frame(true, opPong, true, p)); err != nil {
		t.Fatal(err)
	}
	sleepAll(t, reg)
	echo(t, client, backend, "after the Ping")
	sleepAll(t, reg)

	// Close on a dormant tunnel: both peers get the Close frame.
	tun.Close(CloseGoingAway, "bye", "test")
	for _, c := range []net.Conn{client, backend} {
		if op, _, _, err := readFrame(c); err != nil || op != opClose {
			t.Fatalf("read op %d err %v, want Close", op, err)
		}
	}
	client.Write(frame(true, opClose, true, closePayload(CloseGoingAway, "")))
	backend.Write(frame(true, opClose, false, closePayload(CloseGoingAway, "")))
	if res := waitDone(t, tun, waitFor); res.Cause != "test" || res.Code != CloseGoingAway {
		t.Errorf("result: cause %q code %d, want test 1001", res.Cause, res.Code)
	}

	// A peer that hangs up on a dormant tunnel ends it.
	for _, hangUp := range []string{"client", "backend"} {
		client, backend, tun := dormantTunnel(t, reg, Options{CloseTimeout: waitFor})
		echo(t, client, backend, hangUp)
		sleepAll(t, reg)
		want := CauseClientClosed
		if hangUp == "client" {
			client.Close()
		} else {
			backend.Close()
			want = CauseBackendClosed
		}
		if res := waitDone(t, tun, waitFor); res.Cause != want {
			t.Errorf("%s hung up: cause %q, want %q", hangUp, res.Cause, want)
		}
	}

	// Dormant tunnels left for Close (newTestRegistry's cleanup checks
	// that they end and no goroutine stays).
	for range 3 {
		dormantTunnel(t, reg, Options{})
	}
	waitDormant(t, reg)
}

// TestDormantChurn moves messages both ways through tunnels while the
// sweeper asks their pipes to park without pause, so that parking races
// with data, wakes and Pings; every message must arrive once and in order.
// Run with -race.
func TestDormantChurn(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	const tunnels, msgs = 8, 200
	stop := make(chan struct{})
	var sweeps sync.WaitGroup
	var dormantSeen int // pipes found dormant after a sweep, summed
	sweeps.Add(1)
	go func() {
		defer sweeps.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Each sweep is a sweep interval later than the last: every
			// tunnel is quiet and every client due a Ping.
			reg.sweep(time.Now().Add(time.Duration(i) * time.Hour))
			time.Sleep(100 * time.Microsecond)
			reg.Range(func(tun *Tunnel) bool {
				for _, p := range []*pipe{&tun.c2b, &tun.b2c} {
					if p.state.Load() == pipeDormant {
						dormantSeen++
					}
				}
				return true
			})
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 4*tunnels)
	for i := range tunnels {
		client, backend, _ := dormantTunnel(t, reg, Options{PingInterval: time.Hour, PingTimeout: 1000 * time.Hour})
		send := func(c net.Conn, masked bool, dir string) {
			defer wg.Done()
			for m := range msgs {
				if _, err := c.Write(frame(true, 1, masked, []byte(fmt.Sprintf("%s %d %d", dir, i, m)))); err != nil {
					errs <- err
					return
				}
				if m%16 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
		recv := func(c net.Conn, dir string, answerPings bool) {
			defer wg.Done()
			for m := 0; m < msgs; {
				op, _, p, err := readFrame(c)
				if err != nil {
					errs <- fmt.Errorf("%s %d: message %d: %v", dir, i, m, err)
					return
				}
				if op == opPing {
					if !answerPings {
						errs <- fmt.Errorf("%s %d: a Ping reached the backend", dir, i)
						return
					}
					continue // the Pong would race this tunnel's own writes; the timeout is an hour
				}
				if want := fmt.Sprintf("%s %d %d", dir, i, m); string(p) != want {
					errs <- fmt.Errorf("got %q, want %q", p, want)
					return
				}
				m++
			}
		}
		wg.Add(4)
		go send(client, true, "up")
		go recv(backend, "up", false)
		go send(backend, false, "down")
		go recv(client, "down", true)
	}
	wg.Wait()
	close(stop)
	sweeps.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if dormantSeen == 0 {
		t.Error("no pipe was ever dormant: the churn tested nothing")
	}
	t.Logf("pipes seen dormant after a sweep: %d", dormantSeen)
}

// TestDormantParkRace: data or a Close that arrives while a pipe is
// parking, after its socket is registered and before it is dormant, is not
// lost: the park fails and the pipe goes on.
func TestDormantParkRace(t *testing.T) {
	for _, what := range []string{"data", "close"} {
		t.Run(what, func(t *testing.T) {
			reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
			var armed atomic.Bool
			var client net.Conn
			var tun *Tunnel
			hooked := make(chan error, 1)
			reg.testHookArmed = func(p *pipe) {
				if p.srcSide != sideClient || !armed.CompareAndSwap(true, false) {
					return
				}
				if what == "data" {
					client.Write(frame(true, 1, true, []byte("while parking")))
				} else {
					tun.Close(CloseGoingAway, "bye", "test")
				}
				// Wait until the event or the wake has reached the pipe.
				deadline := time.Now().Add(waitFor)
				for p.state.Load() != pipeWoken {
					if time.Now().After(deadline) {
						hooked <- fmt.Errorf("%s while parking: the pipe was never marked woken", what)
						return
					}
					time.Sleep(time.Millisecond)
				}
				hooked <- nil
			}
			var backend net.Conn
			client, backend, tun = dormantTunnel(t, reg, Options{CloseTimeout: waitFor})
			echo(t, client, backend, "before")
			armed.Store(true)
			var err error
			sweepUntil(t, reg, "the client pipe parks", func() bool {
				select {
				case err = <-hooked:
					return true
				default:
					return false
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			op, _, p, err := readFrame(backend)
			switch {
			case err != nil:
				t.Fatalf("backend read: %v (what came while the pipe parked was lost)", err)
			case what == "data" && string(p) != "while parking":
				t.Fatalf("backend read %q, want %q", p, "while parking")
			case what == "close" && op != opClose:
				t.Fatalf("backend read op %d, want Close", op)
			}
		})
	}
}

// TestBusyTunnelStaysAwake: a tunnel that moved data since the last sweep
// is not asked to park, even though its last data is stamped with that
// sweep's clock, a whole sweep interval before the next one.
func TestBusyTunnelStaysAwake(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	client, backend, tun := dormantTunnel(t, reg, Options{})
	at := time.Unix(0, reg.clock.Load())
	for i := range 4 {
		echo(t, client, backend, fmt.Sprint("message ", i))
		at = at.Add(reg.sweepEvery)
		reg.sweep(at)
		for _, p := range []*pipe{&tun.c2b, &tun.b2c} {
			if p.sleep.Load() || p.state.Load() == pipeDormant {
				t.Fatalf("after sweep %d: a pipe of a busy tunnel was asked to park (state %d)", i, p.state.Load())
			}
		}
	}
}

// TestDormancyLost: if the registry's epoll set goes away under dormant
// tunnels (its dispatcher returns), every dormant pipe gets its goroutine
// back and the tunnels go on, their pipes kept running from then on.
func TestDormancyLost(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	client, backend, _ := dormantTunnel(t, reg, Options{})
	echo(t, client, backend, "before")
	sleepAll(t, reg)
	reg.dorm.Load().close()
	echo(t, client, backend, "after the epoll set closed")
	for range 2 {
		reg.sweep(time.Unix(0, reg.clock.Load()).Add(reg.sweepEvery))
	}
	reg.Range(func(tun *Tunnel) bool {
		for _, p := range []*pipe{&tun.c2b, &tun.b2c} {
			if s := p.state.Load(); s == pipeDormant || p.sleep.Load() {
				t.Errorf("a pipe was asked to park (state %d) with no epoll set to wake it", s)
			}
		}
		return true
	})
	echo(t, client, backend, "after a quiet sweep")
}
