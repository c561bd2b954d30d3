package statuspage

import (
	"math"
	"testing"
	"time"
)

// oneServer is an upstream "app" with one server s1 at the given counters.
func oneServer(c Counters) []Upstream {
	return []Upstream{{Name: "app", Servers: []Server{{Name: "s1", Label: "s1", Addr: "10.0.0.1:80", Counters: c}}}}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestWindowRates: rates are the difference to the oldest sample of the
// span; the first request has none; samples are kept once per step and
// dropped after span, so the ring stays bounded.
func TestWindowRates(t *testing.T) {
	w := window{span: time.Minute, step: 5 * time.Second}
	ups := oneServer(Counters{Responses: 100, Errors: 1, Latency: 100 * time.Millisecond, Failures: 2})
	w.rates(t0, ups)
	if s := ups[0].Servers[0]; s.WindowSeconds != 0 || s.RequestsPerSecond != 0 {
		t.Fatalf("first request: %+v, want no rates", s)
	}
	// 2 s later (within a step): 20 more responses, 5 of them 5xx, 400 ms
	// in all; 3 more failures.
	ups = oneServer(Counters{Responses: 120, Errors: 6, Latency: 500 * time.Millisecond, Failures: 5})
	w.rates(t0.Add(2*time.Second), ups)
	s := ups[0].Servers[0]
	if s.WindowSeconds != 2 || !near(s.RequestsPerSecond, 10) || !near(s.ErrorRate, 0.25) || !near(s.LatencyMS, 20) || s.Failures != 3 {
		t.Errorf("after 2 s: %+v, want 2 s window, 10 req/s, 25%% 5xx, 20 ms, 3 failures", s)
	}
	if len(w.samples) != 1 {
		t.Errorf("%d samples after a request within the step, want 1", len(w.samples))
	}
	// Polls every 2 s for 5 minutes: the window settles at the span and
	// the ring at span/step+1 samples.
	var c Counters
	for i := 1; i <= 150; i++ {
		c.Responses += 10
		w.rates(t0.Add(time.Duration(i)*2*time.Second), oneServer(c))
	}
	if len(w.samples) > 13 {
		t.Errorf("%d samples kept, want at most span/step+1 = 13", len(w.samples))
	}
	ups = oneServer(c)
	now := t0.Add(302 * time.Second)
	w.rates(now, ups)
	s = ups[0].Servers[0]
	if s.WindowSeconds < 55 || s.WindowSeconds > 60 || !near(s.RequestsPerSecond, 5*(s.WindowSeconds-2)/s.WindowSeconds) {
		t.Errorf("steady state: window %v s, %v req/s; want about 60 s and about 5 req/s", s.WindowSeconds, s.RequestsPerSecond)
	}
	if s.LatencyMS != 0 || s.ErrorRate != 0 {
		t.Errorf("no latency or errors counted, got %+v", s)
	}

	// Nobody polled for ten minutes: every sample is stale, no rates.
	ups = oneServer(c)
	w.rates(now.Add(10*time.Minute), ups)
	if ups[0].Servers[0].WindowSeconds != 0 {
		t.Errorf("after ten idle minutes: window %v, want no rates", ups[0].Servers[0].WindowSeconds)
	}
}

// TestWindowNewOrReset: a server absent from the baseline, or whose
// counters went backwards (its state was recreated), has no rates rather
// than wrong ones.
func TestWindowNewOrReset(t *testing.T) {
	w := window{span: time.Minute, step: 5 * time.Second}
	w.rates(t0, oneServer(Counters{Responses: 50}))
	ups := []Upstream{{Name: "app", Servers: []Server{
		{Label: "s1", Addr: "10.0.0.1:80", Counters: Counters{Responses: 10}},
		{Label: "s2", Addr: "10.0.0.2:80", Counters: Counters{Responses: 10}},
	}}}
	w.rates(t0.Add(5*time.Second), ups)
	for _, s := range ups[0].Servers {
		if s.WindowSeconds != 0 {
			t.Errorf("%s: window %v, want no rates", s.Label, s.WindowSeconds)
		}
	}
}
