package proxymetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRouteLabels: a route's children fold methods into the fixed set and
// statuses into classes (an out-of-range status counts as 5xx), and
// Unrouted counts under an empty route and upstream.
func TestRouteLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, "test", nil)
	rm := m.ForRoute("s", "/api/", "app")
	rm.Done("GET", 200, time.Millisecond)
	rm.Done("BREW", 418, time.Millisecond)
	rm.Done("POST", 999, time.Millisecond)
	m.Unrouted("", "HEAD", 421)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"s", "/api/", "app", "GET", "2xx"}, 1},
		{[]string{"s", "/api/", "app", "OTHER", "4xx"}, 1},
		{[]string{"s", "/api/", "app", "POST", "5xx"}, 1},
		{[]string{"", "", "", "HEAD", "4xx"}, 1},
		{[]string{"s", "/api/", "app", "GET", "5xx"}, 0},
	} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(tc.labels...)); got != tc.want {
			t.Errorf("requests%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.Duration, "gatehouse_http_request_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d, want 1 (the route's)", n)
	}
}

// TestReloadResult: a failed reload clears the success gauge and keeps
// the last success time; both results are exported from the start.
func TestReloadResult(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, "test", nil)
	const want0 = `
# HELP gatehouse_config_reloads_total Configuration reloads by result (success, failure).
# TYPE gatehouse_config_reloads_total counter
gatehouse_config_reloads_total{result="failure"} 0
gatehouse_config_reloads_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want0), "gatehouse_config_reloads_total"); err != nil {
		t.Error(err)
	}
	m.ReloadResult(true, time.Unix(1000, 0))
	m.ReloadResult(false, time.Unix(2000, 0))
	if got := testutil.ToFloat64(m.reloadOK); got != 0 {
		t.Errorf("last_reload_successful after a failure = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.reloadTime); got != 1000 {
		t.Errorf("last success time = %v, want 1000 (the failure does not move it)", got)
	}
}

// server is an upstream server's state as a scrape reads it.
type server struct {
	label         string
	up, draining  bool
	inFlight, q   int64
	picks, fails  uint64
	queueTimeouts uint64
}

func (s server) Label() string            { return s.label }
func (s server) Available(time.Time) bool { return s.up }
func (s server) Draining() bool           { return s.draining }
func (s server) InFlight() int64          { return s.inFlight }
func (s server) QueueLen() int64          { return s.q }
func (s server) Picks() uint64            { return s.picks }
func (s server) Failures() uint64         { return s.fails }
func (s server) QueueTimeouts() uint64    { return s.queueTimeouts }

// zone is a rate-limit zone holding that many keys.
type zone int

func (z zone) Name() string      { return "login" }
func (z zone) Len() int          { return int(z) }
func (z zone) Evictions() uint64 { return 7 }

// TestState: what the read function reports at a scrape is exported, and
// what it no longer reports (a removed server) is gone at the next one.
func TestState(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	servers := []server{{label: "b1", up: true, inFlight: 3, picks: 10}, {label: "b2", draining: true, fails: 2}}
	New(reg, "test", func(s *State) {
		for _, b := range servers {
			s.Server("app", b)
		}
		s.Zone(zone(5))
		s.Bans(4)
		s.Tunnels("app", "b1", 2)
	})
	const want = `
# HELP gatehouse_upstream_server_up 1 if the server is available for new requests (healthy, not draining).
# TYPE gatehouse_upstream_server_up gauge
gatehouse_upstream_server_up{server="b1",upstream="app"} 1
gatehouse_upstream_server_up{server="b2",upstream="app"} 0
# HELP gatehouse_upstream_server_in_flight Requests and WebSocket streams in flight to the server.
# TYPE gatehouse_upstream_server_in_flight gauge
gatehouse_upstream_server_in_flight{server="b1",upstream="app"} 3
gatehouse_upstream_server_in_flight{server="b2",upstream="app"} 0
# HELP gatehouse_ratelimit_zone_keys Client keys tracked by a rate-limit zone.
# TYPE gatehouse_ratelimit_zone_keys gauge
gatehouse_ratelimit_zone_keys{zone="login"} 5
# HELP gatehouse_bans_active Bans held: addresses and prefixes refused (an ended ban leaves at the next sweep, every 30 s).
# TYPE gatehouse_bans_active gauge
gatehouse_bans_active 4
# HELP gatehouse_websocket_active Open WebSocket tunnels per upstream server.
# TYPE gatehouse_websocket_active gauge
gatehouse_websocket_active{server="b1",upstream="app"} 2
`
	names := []string{"gatehouse_upstream_server_up", "gatehouse_upstream_server_in_flight", "gatehouse_ratelimit_zone_keys",
		"gatehouse_bans_active", "gatehouse_websocket_active"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	servers = servers[:1]
	if n, err := testutil.GatherAndCount(reg, "gatehouse_upstream_server_up"); err != nil || n != 1 {
		t.Errorf("server_up series after b2 left: %d (%v), want 1", n, err)
	}
}
