package statuspage

import (
	"sync"
	"time"
)

// window turns cumulative per-server counters into recent rates without
// background work: each request offers the current counters, a sample is
// kept at most once per step, samples older than span are dropped, and
// the rates are the difference between now and the oldest kept sample.
// It holds at most span/step+1 samples. Safe for concurrent use.
type window struct {
	span, step time.Duration

	mu      sync.Mutex
	samples []sample // oldest first
}

type sample struct {
	at time.Time
	c  map[string]Counters
}

// rates fills the rate fields of every server of ups from its counters,
// against the oldest sample of the last span, and records the current
// counters as a sample when the newest is at least step old.
func (w *window) rates(now time.Time, ups []Upstream) {
	cur := make(map[string]Counters)
	for _, u := range ups {
		for _, s := range u.Servers {
			cur[serverKey(u.Name, s)] = s.Counters
		}
	}
	w.mu.Lock()
	drop := 0
	for drop < len(w.samples) && now.Sub(w.samples[drop].at) > w.span {
		drop++
	}
	w.samples = append(w.samples[:0], w.samples[drop:]...)
	var base *sample
	if len(w.samples) > 0 && w.samples[0].at.Before(now) {
		base = &w.samples[0]
	}
	if n := len(w.samples); n == 0 || now.Sub(w.samples[n-1].at) >= w.step {
		w.samples = append(w.samples, sample{at: now, c: cur})
	}
	w.mu.Unlock()
	if base == nil {
		return
	}
	dt := now.Sub(base.at)
	for i := range ups {
		for j := range ups[i].Servers {
			s := &ups[i].Servers[j]
			b, ok := base.c[serverKey(ups[i].Name, *s)]
			c := s.Counters
			if !ok || c.Responses < b.Responses || c.Errors < b.Errors || c.Latency < b.Latency || c.Failures < b.Failures {
				continue // a server new since the sample, or its state was reset
			}
			s.WindowSeconds = dt.Seconds()
			n := c.Responses - b.Responses
			s.RequestsPerSecond = float64(n) / dt.Seconds()
			s.Failures = c.Failures - b.Failures
			if n > 0 {
				s.ErrorRate = float64(c.Errors-b.Errors) / float64(n)
				s.LatencyMS = float64(c.Latency-b.Latency) / float64(n) / float64(time.Millisecond)
			}
		}
	}
}

// serverKey identifies a server across samples.
func serverKey(upstream string, s Server) string {
	return upstream + "\x00" + s.Label + "\x00" + s.Addr
}
