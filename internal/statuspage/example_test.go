package statuspage_test

import (
	"fmt"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/statuspage"
)

// counting is a Source with one server whose cumulative counters grow by
// 50 responses (one of them a 5xx, 20 ms each) per call.
type counting struct{ c statuspage.Counters }

func (s *counting) Reload() statuspage.Reload {
	return statuspage.Reload{Hash: "e3b0c44298fc", LastOK: true}
}
func (s *counting) Sites() []statuspage.Site { return nil }
func (s *counting) TokenRequired() bool      { return false }
func (s *counting) Upstreams(now time.Time) []statuspage.Upstream {
	s.c.Responses += 50
	s.c.Errors++
	s.c.Latency += 50 * 20 * time.Millisecond
	return []statuspage.Upstream{{Name: "app", Policy: "round_robin", Servers: []statuspage.Server{
		{Name: "b1", Label: "b1", Addr: "127.0.0.1:8001", State: statuspage.StateUp, Counters: s.c},
	}}}
}

// The page computes recent rates from the cumulative counters of two
// requests: here five seconds apart.
func ExampleNew() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := statuspage.New(statuspage.Options{
		Version: "v1.0.0",
		Source:  &counting{},
		Now:     func() time.Time { return now },
	})
	first := p.Snapshot().Upstreams[0].Servers[0]
	fmt.Printf("first request: window %.0f s (no rates yet)\n", first.WindowSeconds)
	now = now.Add(5 * time.Second)
	s := p.Snapshot().Upstreams[0].Servers[0]
	fmt.Printf("%s is %s: %.0f req/s, %.0f%% 5xx, %.0f ms\n", s.Label, s.State, s.RequestsPerSecond, s.ErrorRate*100, s.LatencyMS)
	// Output:
	// first request: window 0 s (no rates yet)
	// b1 is up: 10 req/s, 2% 5xx, 20 ms
}
