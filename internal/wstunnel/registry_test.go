package wstunnel

import (
	"os"
	"sync"
	"testing"
	"time"
)

func TestCloseMatchingSpread(t *testing.T) {
	testSpread(t, 200, 2*time.Second)
}

// TestCloseMatchingSpreadLong is the full-size case: 1,000 tunnels over 10 s.
func TestCloseMatchingSpreadLong(t *testing.T) {
	if os.Getenv("GATEHOUSE_LONG") != "1" {
		t.Skip("set GATEHOUSE_LONG=1 to run")
	}
	testSpread(t, 1000, 10*time.Second)
}

func testSpread(t *testing.T, n int, spread time.Duration) {
	const kept = 20
	reg := newTestRegistry(t, RegistryOptions{})
	a, b := tcpPairs(t, 2*(n+kept))
	var mu sync.Mutex
	var ends []time.Time
	var causes = map[string]int{}
	for i := range n + kept {
		route := "old"
		if i >= n {
			route = "kept"
		}
		// The peers (a[2i], b[2i+1]) never answer, and CloseTimeout 0 ends
		// each tunnel as soon as its Close frames are written, so the end
		// time is the close time.
		reg.Start(b[2*i], nil, a[2*i+1], nil, Options{
			Labels: Labels{Route: route},
			OnEnd: func(r Result) {
				mu.Lock()
				ends = append(ends, time.Now())
				causes[r.Cause]++
				mu.Unlock()
			},
		})
	}
	if got := reg.Len(); got != n+kept {
		t.Fatalf("Len = %d, want %d", got, n+kept)
	}
	start := time.Now()
	got := reg.CloseMatching(func(t *Tunnel) bool { return t.Labels().Route == "old" }, CloseServiceRestart, "route removed", "drain", spread)
	if got != n {
		t.Fatalf("CloseMatching matched %d, want %d", got, n)
	}
	deadline := time.Now().Add(spread + waitFor)
	for reg.Len() > kept && time.Now().Before(deadline) {
		time.Sleep(spread / 50)
	}
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
		buckets[min(max(i, 0), 9)]++
	}
	// Closes must not come early: by 10 % steps of the window, at most
	// that share of the tunnels (plus slack) may be closed. Lateness is
	// not held against the spread: a machine starved of CPU delays timers,
	// which bunches closes at the end through no fault of the schedule.
	share := n / 10
	cum := 0
	for i, c := range buckets {
		cum += c
		if limit := (i+1)*share + share; cum > limit {
			t.Errorf("%d closes by %d0%% of the window, want at most %d (closes came early): %v", cum, i+1, limit, buckets)
		}
	}
	if span := last.Sub(first); span < spread*7/10 {
		t.Errorf("closes span %v, want at least 70%% of %v", span, spread)
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
