package proxy

import (
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/proxymetrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. They are created once per
// process with NewMetrics and shared by every Runtime generation, so a
// reload does not reset counters. Label values are bounded: site, route,
// upstream and server names come from the config, methods are folded into
// a fixed set, and no client address or raw path is ever a label. The
// families are package proxymetrics'; the state of the current Runtime
// (servers, zones, bans, tunnels) is read at scrape time.
type Metrics struct {
	*proxymetrics.Set

	edge atomic.Pointer[Edge] // for the state collector
}

// NewMetrics registers the proxy metrics on reg (nil: none). version is
// reported in gatehouse_build_info.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{}
	m.Set = proxymetrics.New(reg, version, &stateCollector{m: m})
	return m
}

// stateCollector reports state that lives in the current Runtime (upstream
// servers, tunnels) at scrape time, so a reload leaves no stale series.
type stateCollector struct{ m *Metrics }

var (
	descServerUp = prometheus.NewDesc("gatehouse_upstream_server_up",
		"1 if the server is available for new requests (healthy, not draining).", []string{"upstream", "server"}, nil)
	descServerDraining = prometheus.NewDesc("gatehouse_upstream_server_draining",
		"1 if the server is draining.", []string{"upstream", "server"}, nil)
	descServerInFlight = prometheus.NewDesc("gatehouse_upstream_server_in_flight",
		"Requests and WebSocket streams in flight to the server.", []string{"upstream", "server"}, nil)
	descServerQueue = prometheus.NewDesc("gatehouse_upstream_server_queue_length",
		"Requests waiting for a slot of the server (max_conns).", []string{"upstream", "server"}, nil)
	descServerPicks = prometheus.NewDesc("gatehouse_upstream_server_picks_total",
		"Times the balancer picked the server.", []string{"upstream", "server"}, nil)
	descServerFailures = prometheus.NewDesc("gatehouse_upstream_server_failures_total",
		"Failures counted against the server (passive health).", []string{"upstream", "server"}, nil)
	descServerQueueTimeouts = prometheus.NewDesc("gatehouse_upstream_server_queue_timeouts_total",
		"Requests that timed out waiting in the server's queue.", []string{"upstream", "server"}, nil)
	descZoneKeys = prometheus.NewDesc("gatehouse_ratelimit_zone_keys",
		"Client keys tracked by a rate-limit zone.", []string{"zone"}, nil)
	descZoneEvictions = prometheus.NewDesc("gatehouse_ratelimit_zone_evictions_total",
		"Keys evicted from a full rate-limit zone (least recently used).", []string{"zone"}, nil)
	descBansActive = prometheus.NewDesc("gatehouse_bans_active",
		"Bans held: addresses and prefixes refused (an ended ban leaves at the next sweep, every 30 s).", nil, nil)
	descWSActive = prometheus.NewDesc("gatehouse_websocket_active",
		"Open WebSocket tunnels per upstream server.", []string{"upstream", "server"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServerUp, descServerDraining, descServerInFlight, descServerQueue,
		descServerPicks, descServerFailures, descServerQueueTimeouts, descWSActive, descZoneKeys, descZoneEvictions, descBansActive} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.m.edge.Load()
	if e == nil {
		return
	}
	rt := e.rt.Load()
	if rt == nil {
		return
	}
	now := time.Now()
	for _, name := range rt.upstreamNames {
		u := rt.upstreams[name]
		for _, b := range u.pool.Backends() {
			l := []string{name, b.Label()} // name@ip:port when a name has several addresses: one series each
			ch <- prometheus.MustNewConstMetric(descServerUp, prometheus.GaugeValue, boolFloat(b.Available(now)), l...)
			ch <- prometheus.MustNewConstMetric(descServerDraining, prometheus.GaugeValue, boolFloat(b.Draining()), l...)
			ch <- prometheus.MustNewConstMetric(descServerInFlight, prometheus.GaugeValue, float64(b.InFlight()), l...)
			ch <- prometheus.MustNewConstMetric(descServerQueue, prometheus.GaugeValue, float64(b.QueueLen()), l...)
			ch <- prometheus.MustNewConstMetric(descServerPicks, prometheus.CounterValue, float64(b.Picks()), l...)
			ch <- prometheus.MustNewConstMetric(descServerFailures, prometheus.CounterValue, float64(b.Failures()), l...)
			ch <- prometheus.MustNewConstMetric(descServerQueueTimeouts, prometheus.CounterValue, float64(b.QueueTimeouts()), l...)
		}
	}
	for _, z := range rt.deps.Zones.List() {
		ch <- prometheus.MustNewConstMetric(descZoneKeys, prometheus.GaugeValue, float64(z.Len()), z.Name())
		ch <- prometheus.MustNewConstMetric(descZoneEvictions, prometheus.CounterValue, float64(z.Evictions()), z.Name())
	}
	if j := rt.deps.Jail; j != nil {
		ch <- prometheus.MustNewConstMetric(descBansActive, prometheus.GaugeValue, float64(j.Len()))
	}
	for key, n := range e.Tunnels.Counts() {
		ch <- prometheus.MustNewConstMetric(descWSActive, prometheus.GaugeValue, float64(n), key.Upstream, key.Server)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
