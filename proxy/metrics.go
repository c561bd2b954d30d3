package proxy

import (
	"sync/atomic"

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
	m.Set = proxymetrics.New(reg, version, m.readState)
	return m
}

// readState reports the state that lives in the current Runtime (upstream
// servers, zones, bans) and on the Edge (tunnels) at scrape time.
func (m *Metrics) readState(s *proxymetrics.State) {
	e := m.edge.Load()
	if e == nil {
		return
	}
	rt := e.rt.Load()
	if rt == nil {
		return
	}
	for _, name := range rt.upstreamNames {
		for _, b := range rt.upstreams[name].pool.Backends() {
			s.Server(name, b)
		}
	}
	for _, z := range rt.deps.Zones.List() {
		s.Zone(z)
	}
	if j := rt.deps.Jail; j != nil {
		s.Bans(j.Len())
	}
	for k, n := range e.Tunnels.Counts() {
		s.Tunnels(k.Upstream, k.Server, n)
	}
}
