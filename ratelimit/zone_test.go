package ratelimit

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustZone(t testing.TB, o ZoneOptions) *Zone {
	t.Helper()
	z, err := NewZone(o)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func key4(i int) Key {
	return KeyOf(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 0)
}

func near(got, want, tol time.Duration) bool {
	d := got - want
	return d >= -tol && d <= tol
}

func TestZoneLogin(t *testing.T) {
	// nginx: limit_req_zone ... rate=5r/m; here with Burst 5, nodelay.
	z := mustZone(t, ZoneOptions{Name: "login", Rate: 5.0 / 60, Burst: 5})
	k := KeyOf(netip.MustParseAddr("203.0.113.9"), 0)
	for i := range 5 {
		if ok, wait, _ := z.AllowAt(k, t0); !ok || wait != 0 {
			t.Fatalf("request %d: ok=%v wait=%v, want served at once", i+1, ok, wait)
		}
	}
	ok, _, retry := z.AllowAt(k, t0)
	if ok {
		t.Fatal("6th request served, want refused")
	}
	if !near(retry, 12*time.Second, time.Millisecond) {
		t.Errorf("retryAfter = %v, want 12s", retry)
	}
	if ok, _, retry := z.AllowAt(k, t0.Add(6*time.Second)); ok || !near(retry, 6*time.Second, time.Millisecond) {
		t.Errorf("at +6s: ok=%v retryAfter=%v, want refused with 6s", ok, retry)
	}
	if ok, _, _ := z.AllowAt(k, t0.Add(12*time.Second)); !ok {
		t.Error("at +12s: refused, want served (one token back)")
	}
	if ok, _, _ := z.AllowAt(k, t0.Add(12*time.Second)); ok {
		t.Error("second request at +12s served, want refused")
	}
	if st := z.Stats(); st.Allowed != 6 || st.Rejected != 3 || st.Keys != 1 {
		t.Errorf("stats = %+v, want 6 allowed, 3 rejected, 1 key", st)
	}
}

func TestZoneAPIHoldsRate(t *testing.T) {
	// api: 20 r/s burst 10. A client firing 100 r/s for 10 s gets the burst
	// plus 20 per second: 10 + 200 = 210, within ±1 (float rounding).
	z := mustZone(t, ZoneOptions{Name: "api", Rate: 20, Burst: 10})
	k := key4(1)
	served := 0
	for i := range 1000 {
		if ok, _, _ := z.AllowAt(k, t0.Add(time.Duration(i)*10*time.Millisecond)); ok {
			served++
		}
	}
	if served < 209 || served > 211 {
		t.Errorf("served %d of 1000 requests at 100 r/s over 10 s, want 210 ± 1", served)
	}
	// A client at exactly the rate is never refused.
	k2 := key4(2)
	for i := range 400 {
		if ok, _, _ := z.AllowAt(k2, t0.Add(time.Duration(i)*50*time.Millisecond)); !ok {
			t.Fatalf("request %d at 20 r/s refused", i)
		}
	}
}

func TestZoneKeysIndependent(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 2})
	a, b := key4(1), key4(2)
	z.AllowAt(a, t0)
	z.AllowAt(a, t0)
	if ok, _, _ := z.AllowAt(a, t0); ok {
		t.Fatal("a: third request served, want refused")
	}
	for i := range 2 {
		if ok, _, _ := z.AllowAt(b, t0); !ok {
			t.Fatalf("b: request %d refused after a used its bucket", i+1)
		}
	}
}

func TestZoneIPv6Prefix(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 1})
	in1 := KeyOf(netip.MustParseAddr("2001:db8:0:7::1"), 64)
	in2 := KeyOf(netip.MustParseAddr("2001:db8:0:7:dead:beef:0:2"), 64)
	other := KeyOf(netip.MustParseAddr("2001:db8:0:8::1"), 64)
	if ok, _, _ := z.AllowAt(in1, t0); !ok {
		t.Fatal("first request refused")
	}
	if ok, _, _ := z.AllowAt(in2, t0); ok {
		t.Error("another address in the same /64 got a fresh bucket")
	}
	if ok, _, _ := z.AllowAt(other, t0); !ok {
		t.Error("a different /64 shares the bucket")
	}
}

func TestZoneDelayMode(t *testing.T) {
	// nginx `limit_req zone=x burst=3` at 1 r/s: one at once, three queued
	// one second apart, the fifth refused until the queue moves.
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 3, Mode: Delay})
	k := key4(1)
	for i := range 4 {
		ok, wait, _ := z.AllowAt(k, t0)
		if !ok || !near(wait, time.Duration(i)*time.Second, time.Millisecond) {
			t.Fatalf("request %d: ok=%v wait=%v, want ok after %ds", i+1, ok, wait, i)
		}
	}
	ok, wait, retry := z.AllowAt(k, t0)
	if ok || wait != 0 || !near(retry, time.Second, time.Millisecond) {
		t.Fatalf("5th: ok=%v wait=%v retry=%v, want refused, retry 1s", ok, wait, retry)
	}
	// One second later the first queued request has gone: one slot free,
	// and it waits behind the other two.
	ok, wait, _ = z.AllowAt(k, t0.Add(time.Second))
	if !ok || !near(wait, 3*time.Second, time.Millisecond) {
		t.Errorf("at +1s: ok=%v wait=%v, want ok after 3s", ok, wait)
	}
	if st := z.Stats(); st.Allowed != 1 || st.Delayed != 4 || st.Rejected != 1 {
		t.Errorf("stats = %+v, want 1 allowed, 4 delayed, 1 rejected", st)
	}
}

func TestZoneRetune(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 10})
	k := key4(1)
	for range 10 {
		z.AllowAt(k, t0)
	}
	if err := z.Retune(10, 20, t0); err != nil {
		t.Fatal(err)
	}
	// The client keeps its empty bucket (no reset on reload), then refills
	// at the new rate: 10 tokens after one second.
	if ok, _, retry := z.AllowAt(k, t0); ok || !near(retry, 100*time.Millisecond, time.Millisecond) {
		t.Errorf("after retune: ok=%v retry=%v, want refused, 100ms", ok, retry)
	}
	n := 0
	for range 30 {
		if ok, _, _ := z.AllowAt(k, t0.Add(time.Second)); ok {
			n++
		}
	}
	if n != 10 {
		t.Errorf("served %d at +1s, want 10", n)
	}
	// A new key gets the new burst.
	n = 0
	for range 30 {
		if ok, _, _ := z.AllowAt(key4(2), t0); ok {
			n++
		}
	}
	if n != 20 {
		t.Errorf("new key served %d, want new burst 20", n)
	}
	if err := z.Retune(0, 1, t0); err == nil {
		t.Error("Retune(0) succeeded, want error")
	}
}

func TestZoneRetuneDelay(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 2, Mode: Delay})
	k := key4(1)
	for range 3 {
		z.AllowAt(k, t0) // waits 0, 1 s, 2 s
	}
	if ok, _, _ := z.AllowAt(k, t0); ok {
		t.Fatal("4th request queued with Burst 2")
	}
	if err := z.Retune(1, 5, t0); err != nil {
		t.Fatal(err)
	}
	if r, b := z.Limits(); r != 1 || b != 5 {
		t.Errorf("Limits = %v, %d; want 1, 5", r, b)
	}
	// The longer queue takes the request behind the three already queued.
	if ok, wait, _ := z.AllowAt(k, t0); !ok || !near(wait, 3*time.Second, time.Millisecond) {
		t.Errorf("after retune: ok=%v wait=%v, want queued for 3s", ok, wait)
	}
}

func TestKeyOfAndAllowAllocs(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1e9, Burst: 1 << 20})
	a := netip.MustParseAddr("2001:db8:1:2:3:4:5:6")
	z.AllowAt(KeyOf(a, 64), t0)
	if n := testing.AllocsPerRun(1000, func() { z.AllowAt(KeyOf(a, 64), t0) }); n != 0 {
		t.Errorf("KeyOf+AllowAt allocates %v times, want 0", n)
	}
}

func TestZoneQueuedAllocs(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 1 << 20, Mode: Delay})
	k := key4(1)
	z.AllowAt(k, t0)
	var wait time.Duration
	if n := testing.AllocsPerRun(1000, func() { _, wait, _ = z.AllowAt(k, t0) }); n != 0 {
		t.Errorf("queued AllowAt allocates %v times, want 0", n)
	}
	if wait < 1000*time.Second {
		t.Errorf("last wait = %v, want the queued path exercised (> 1000 s)", wait)
	}
}

func TestNewZoneErrors(t *testing.T) {
	for _, o := range []ZoneOptions{{Rate: 0}, {Rate: -1}, {Rate: 1, Mode: 7}} {
		if _, err := NewZone(o); err == nil {
			t.Errorf("NewZone(%+v) succeeded, want error", o)
		}
	}
}

func TestZoneLRU(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 1, MaxKeys: 3})
	a, b, c, d := key4(1), key4(2), key4(3), key4(4)
	for _, k := range []Key{a, b, c} {
		z.AllowAt(k, t0) // each bucket now empty
	}
	z.AllowAt(a, t0) // a is the most recently used again (refused)
	z.AllowAt(d, t0) // evicts b, the least recently used
	if z.Len() != 3 || z.Evictions() != 1 {
		t.Fatalf("Len=%d Evictions=%d, want 3 and 1", z.Len(), z.Evictions())
	}
	if ok, _, _ := z.AllowAt(a, t0); ok {
		t.Error("a was forgotten (got a fresh bucket), want it kept as recently used")
	}
	if ok, _, _ := z.AllowAt(b, t0); !ok {
		t.Error("b kept its empty bucket, want it evicted")
	}
}

func TestZoneSweep(t *testing.T) {
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 2, MaxKeys: 1000}) // one shard
	for i := range 100 {
		z.AllowAt(key4(i), t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	// Key i used one token at i·10ms; it is full again one second later.
	if n := z.SweepAt(t0.Add(500 * time.Millisecond)); n != 0 {
		t.Errorf("sweep at +0.5s dropped %d, want 0", n)
	}
	if n := z.SweepAt(t0.Add(1500 * time.Millisecond)); n != 51 {
		t.Errorf("sweep at +1.5s dropped %d, want 51 (keys 0..50)", n)
	}
	if n := z.SweepAt(t0.Add(time.Hour)); n != 49 || z.Len() != 0 {
		t.Errorf("sweep at +1h dropped %d, Len %d; want 49 and 0", n, z.Len())
	}
	if st := z.Stats(); st.Expired != 100 || st.Evictions != 0 {
		t.Errorf("stats = %+v, want 100 expired, 0 evictions", st)
	}
	// Insertion recycles a refilled tail too.
	z.AllowAt(key4(1), t0)
	z.AllowAt(key4(2), t0.Add(time.Hour))
	if z.Len() != 1 || z.Stats().Expired != 101 {
		t.Errorf("Len=%d Expired=%d, want 1 and 101", z.Len(), z.Stats().Expired)
	}
}

func TestZoneMillionKeysBounded(t *testing.T) {
	const maxKeys, total = 100_000, 1_000_000
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 10, MaxKeys: maxKeys})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range total {
		z.AllowAt(key4(i), t0)
		if i%250_000 == 0 && z.Len() > maxKeys {
			t.Fatalf("after %d keys Len = %d > %d", i+1, z.Len(), maxKeys)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if z.Len() != maxKeys {
		t.Errorf("Len = %d, want %d", z.Len(), maxKeys)
	}
	if got := z.Evictions(); got != total-maxKeys {
		t.Errorf("Evictions = %d, want %d", got, total-maxKeys)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after 1M keys into MaxKeys=100k: %.1f MiB", float64(heap)/(1<<20))
	if heap > 40<<20 {
		t.Errorf("heap grew %d MiB for 100k tracked keys, want < 40 MiB", heap>>20)
	}
	runtime.KeepAlive(z)
}

func TestZoneBytesPerKey(t *testing.T) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	z := mustZone(t, ZoneOptions{Rate: 1, Burst: 10, MaxKeys: n})
	for i := range n {
		z.AllowAt(key4(i), t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(z.Len())
	t.Logf("zone: %.0f bytes per tracked key (%d keys)", per, z.Len())
	if per > 400 {
		t.Errorf("%.0f bytes per key, want < 400", per)
	}
	runtime.KeepAlive(z)
}

func TestZoneAllowAllocs(t *testing.T) {
	for _, mode := range []Mode{NoDelay, Delay} {
		z := mustZone(t, ZoneOptions{Rate: 1e9, Burst: 1000, Mode: mode})
		k := key4(7)
		z.AllowAt(k, t0)
		now := t0
		if n := testing.AllocsPerRun(1000, func() {
			now = now.Add(time.Nanosecond)
			z.AllowAt(k, now)
		}); n != 0 {
			t.Errorf("%v: AllowAt on a known key allocates %v times, want 0", mode, n)
		}
		// The refused and queued paths too.
		z2 := mustZone(t, ZoneOptions{Rate: 1e-6, Burst: 1, Mode: mode})
		z2.AllowAt(k, t0)
		if n := testing.AllocsPerRun(1000, func() { z2.AllowAt(k, t0) }); n != 0 {
			t.Errorf("%v: refused AllowAt allocates %v times, want 0", mode, n)
		}
	}
}

func TestZoneConcurrent(t *testing.T) {
	// 4 goroutines × 500 requests on 8 keys, Burst 100 and no refill: each
	// key serves exactly 100, whatever the interleaving.
	z := mustZone(t, ZoneOptions{Rate: 1e-9, Burst: 100, MaxKeys: 64})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				z.AllowAt(key4((i+g)%8), t0)
			}
		}()
	}
	wg.Wait()
	if st := z.Stats(); st.Allowed != 800 || st.Rejected != 1200 {
		t.Errorf("stats = %+v, want 800 allowed, 1200 rejected", st)
	}
}

func BenchmarkZoneAllow(b *testing.B) {
	z := mustZone(b, ZoneOptions{Rate: 1e9, Burst: 1 << 30, MaxKeys: 100_000})
	const keys = 1024
	for i := range keys {
		z.AllowAt(key4(i), t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			z.AllowAt(key4(i%keys), t0)
			i += 7
		}
	})
}

func BenchmarkZoneBytesPerKey(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		z := mustZone(b, ZoneOptions{Rate: 1, Burst: 10, MaxKeys: 100_000})
		for i := range 100_000 {
			z.AllowAt(key4(i), t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(z.Len()), "bytes/key")
		runtime.KeepAlive(z)
	}
}
