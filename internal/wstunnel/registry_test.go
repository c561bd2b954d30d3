package wstunnel

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestCloseMatchingSpread: CloseMatching with a spread closes the matching
// tunnels over the window, on synctest's fake clock (so a loaded machine
// cannot bunch them), over in-memory conns.
func TestCloseMatchingSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { testSpread(t, 200, 2*time.Second) })
}

// TestCloseMatchingSpreadLong is the full-size case: 1,000 tunnels over 10 s
// (of fake time).
func TestCloseMatchingSpreadLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { testSpread(t, 1000, 10*time.Second) })
}

func testSpread(t *testing.T, n int, spread time.Duration) {
	const kept = 20
	reg := NewRegistry(RegistryOptions{})
	defer reg.Close()
	var mu sync.Mutex
	var ends []time.Time
	var causes = map[string]int{}
	for i := range n + kept {
		route := "old"
		if i >= n {
			route = "kept"
		}
		// The peers never answer (but read, as sockets would buffer), and
		// CloseTimeout 0 ends each tunnel as soon as its Close frames are
		// written, so the end time is the close time.
		client, backend, _ := pipeTunnel(t, reg, Options{
			Labels: Labels{Route: route},
			OnEnd: func(r Result) {
				mu.Lock()
				ends = append(ends, time.Now())
				causes[r.Cause]++
				mu.Unlock()
			},
		})
		drain(client)
		drain(backend)
	}
	if got := reg.Len(); got != n+kept {
		t.Fatalf("Len = %d, want %d", got, n+kept)
	}
	start := time.Now()
	got := reg.CloseMatching(func(t *Tunnel) bool { return t.Labels().Route == "old" }, CloseServiceRestart, "route removed", "drain", spread)
	if got != n {
		t.Fatalf("CloseMatching matched %d, want %d", got, n)
	}
	time.Sleep(spread) // fake time: the whole window passes
	synctest.Wait()
	if l := reg.Len(); l != kept {
		t.Fatalf("Len = %d after the spread, want %d", l, kept)
	}
	reg.Range(func(tu *Tunnel) bool {
		if tu.Labels().Route != "kept" {
			t.Errorf("tunnel of route %q survived", tu.Labels().Route)
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if causes["drain"] != n {
		t.Errorf("causes %v, want %d drain", causes, n)
	}
	var buckets [10]int
	first, last := ends[0], ends[0]
	for _, e := range ends {
		first, last = minTime(first, e), maxTime(last, e)
		i := int(e.Sub(start) * 10 / spread)
		if i < 0 || i > 9 {
			t.Errorf("a close came %v after CloseMatching, outside the %v window", e.Sub(start), spread)
		}
		buckets[min(max(i, 0), 9)]++
	}
	// By 10 % steps of the window, about that share of the tunnels is
	// closed: each has a random point in its own 1/n slot, so the count
	// after k slots is exact up to the one slot under way.
	share := n / 10
	cum := 0
	for i, c := range buckets {
		cum += c
		if want := (i + 1) * share; cum < want-1 || cum > want+1 {
			t.Errorf("%d closes by %d0%% of the window, want %d (±1): %v", cum, i+1, want, buckets)
		}
	}
	if span := last.Sub(first); span < spread*9/10 {
		t.Errorf("closes span %v, want at least 90%% of %v", span, spread)
	}
	t.Logf("%d closes over %v, per 10%% bucket: %v", n, last.Sub(first).Round(time.Millisecond), buckets)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestCloseMatchingStopsOnClose checks that Close stops a pending spread
// and closes what remains at once.
func TestCloseMatchingStopsOnClose(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	a, b := tcpPairs(t, 20)
	var tuns []*Tunnel
	for i := range 10 {
		tuns = append(tuns, reg.Start(b[2*i], nil, a[2*i+1], nil, Options{CloseTimeout: time.Hour}))
	}
	reg.CloseMatching(nil, CloseServiceRestart, "", "drain", time.Hour)
	start := time.Now()
	reg.Close()
	if d := time.Since(start); d > waitFor/2 {
		t.Errorf("Close took %v", d)
	}
	for _, tu := range tuns {
		if !isClosed(tu.Done()) {
			t.Fatal("tunnel alive after registry Close")
		}
	}
	checkNoPipes(t)
}
