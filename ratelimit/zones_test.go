package ratelimit

import (
	"net/netip"
	"testing"
)

// TestZonesReload: a reload with the same mode and size keeps the zone and
// its buckets (retuned to a new rate or burst); another mode or size
// builds a new zone; Keep forgets the zones no longer configured.
func TestZonesReload(t *testing.T) {
	zs := NewZones()
	k := AddrKey(netip.MustParseAddr("192.0.2.1"))
	o := ZoneOptions{Name: "api", Rate: 1, Burst: 2}
	z, err := zs.Get(o, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, _, _ := z.AllowAt(k, t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	o.Burst = 3
	z2, err := zs.Get(o, t0)
	if err != nil {
		t.Fatal(err)
	}
	if z2 != z {
		t.Fatal("a new burst built a new zone; want the live one retuned")
	}
	if _, burst := z.Limits(); burst != 3 {
		t.Errorf("burst after the reload: %d, want 3", burst)
	}
	// The client spent its tokens before the reload and keeps that
	// state: no full bucket of 3.
	if ok, _, _ := z.AllowAt(k, t0); ok {
		t.Fatal("the reload handed the client a full bucket again")
	}
	o.Mode = Delay
	z3, err := zs.Get(o, t0)
	if err != nil {
		t.Fatal(err)
	}
	if z3 == z || z3.Mode() != Delay {
		t.Fatal("another mode kept the old zone")
	}
	if _, err := zs.Get(ZoneOptions{Name: "login", Rate: 1}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := zs.Get(ZoneOptions{Name: "bad", Rate: 0}, t0); err == nil {
		t.Error("a zone with rate 0: no error")
	}
	zs.Keep(func(name string) bool { return name == "login" })
	if l := zs.List(); len(l) != 1 || l[0].Name() != "login" {
		t.Errorf("after Keep(login): %d zones", len(l))
	}
	if zs.Shared() != nil {
		t.Error("NewZones has a shared limiter")
	}
}
