package wstunnel

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestDormancyAfterEMFILE: when the registry's epoll set cannot be made
// (out of descriptors when the first tunnel starts, as a flood could
// arrange), tunnels keep their goroutines and work; the next tunnel once
// descriptors are back gets the set, and parks.
func TestDormancyAfterEMFILE(t *testing.T) {
	reg := newTestRegistry(t, RegistryOptions{SweepInterval: time.Hour})
	a, b := tcpPairs(t, 4) // every socket the test needs, opened first

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	// The lowest free descriptor number becomes the limit: the next one
	// the process asks for fails with EMFILE.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	low := f.Fd()
	f.Close()
	tight := lim
	tight.Cur = uint64(low)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		t.Skip(err)
	}
	tun := reg.Start(b[0], nil, a[1], nil, Options{})
	restoreErr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if restoreErr != nil {
		t.Fatal(restoreErr)
	}
	if reg.dorm.Load() != nil {
		t.Fatal("the epoll set was made with no descriptor free")
	}
	client, backend := a[0], b[1]
	client.SetDeadline(time.Now().Add(waitFor))
	backend.SetDeadline(time.Now().Add(waitFor))
	echo(t, client, backend, "without an epoll set")
	if tun.c2b.state.Load() == pipeDormant || tun.b2c.state.Load() == pipeDormant {
		t.Fatal("a pipe is dormant with no epoll set")
	}

	// Descriptors are back: the next tunnel makes the set and parks, and
	// so does the first one once quiet.
	reg.Start(b[2], nil, a[3], nil, Options{})
	if reg.dorm.Load() == nil {
		t.Fatal("no epoll set after descriptors were back: the first failure stuck")
	}
	sleepAll(t, reg)
	echo(t, client, backend, "after")
	c2, b2 := a[2], b[3]
	c2.SetDeadline(time.Now().Add(waitFor))
	b2.SetDeadline(time.Now().Add(waitFor))
	echo(t, c2, b2, "second tunnel")
}
