package wsproxy

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

// TestCountsCopy: Counts reports the per-server tunnel counts and hands
// out a copy; a server whose tunnels all ended is absent.
func TestCountsCopy(t *testing.T) {
	tu := NewTunnels(wstunnel.RegistryOptions{})
	defer tu.Close()
	tu.addServer(Server{"app", "b1"}, 2)
	got := tu.Counts()
	if got[Server{"app", "b1"}] != 2 || len(got) != 1 {
		t.Errorf("Counts = %v, want app/b1: 2", got)
	}
	got[Server{"app", "b1"}] = 7
	tu.addServer(Server{"app", "b1"}, -2)
	if got := tu.Counts(); len(got) != 0 {
		t.Errorf("Counts after the tunnels ended = %v, want none", got)
	}
}

// TestClientSlots: AcquireClient caps each client address on its own, and
// ReleaseClient gives a slot back.
func TestClientSlots(t *testing.T) {
	tu := NewTunnels(wstunnel.RegistryOptions{})
	defer tu.Close()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if !tu.AcquireClient(a, 2) || !tu.AcquireClient(a, 2) {
		t.Fatal("first two slots of a refused, want both taken")
	}
	if tu.AcquireClient(a, 2) {
		t.Error("third slot of a taken, want refused at max 2")
	}
	if !tu.AcquireClient(b, 2) {
		t.Error("b refused while only a is at its cap")
	}
	tu.ReleaseClient(a)
	if !tu.AcquireClient(a, 2) {
		t.Error("a refused after releasing a slot")
	}
}

// TestLaterStoppedByClose: a delayed close runs after its delay; Close
// stops the pending ones, and a Later after Close never runs.
func TestLaterStoppedByClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tu := NewTunnels(wstunnel.RegistryOptions{})
		var ran []string
		tu.Later(time.Second, func() { ran = append(ran, "first") })
		tu.Later(time.Minute, func() { ran = append(ran, "pending at Close") })
		time.Sleep(2 * time.Second)
		synctest.Wait()
		tu.Close()
		tu.Later(0, func() { ran = append(ran, "after Close") })
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if len(ran) != 1 || ran[0] != "first" {
			t.Errorf("ran %v, want only [first]", ran)
		}
	})
}
