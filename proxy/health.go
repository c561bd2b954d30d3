package proxy

import (
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/internal/healthcheck"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// newHealthChecker builds the active health checker of u (package
// healthcheck). Probes go through a client of the upstream's own kind
// (gatehouse or net/http), so a backend whose answers the proxy's client
// cannot read fails its checks too; it has its own pool of one idle
// connection per server, so probes neither wait behind traffic nor take
// its connections. A probe is not a client's request: it has none of the
// forwarded headers (uhttp.Forward), only a Host the application accepts
// and a User-Agent.
func newHealthChecker(rt *Runtime, u *upstream) *healthcheck.Checker[*balancer.Backend] {
	h := u.cfg.Health
	host := h.Host
	if host == "" {
		// Django's ALLOWED_HOSTS answers 400 to a Host that is the
		// backend's address: probe with a name the app serves.
		host = u.healthHost
	}
	probe := *u.cfg
	probe.ConnectTimeout, probe.KeepaliveTimeout = h.Timeout, 2*h.Interval
	name, m := u.cfg.Name, rt.deps.Metrics
	return healthcheck.New(healthcheck.Options[*balancer.Backend]{
		Servers:   u.pool.Backends,
		Check:     uhttp.Check{Method: h.Method, Path: h.Path, Host: host, Expect: h.Expect, Body: h.Body},
		Interval:  h.Interval,
		Timeout:   h.Timeout,
		Transport: rt.newClient(&probe, 1),
		Observe: func(b *balancer.Backend, ok bool, took time.Duration) {
			m.CheckTime.WithLabelValues(name).Observe(took.Seconds())
			result := "pass"
			if !ok {
				result = "fail"
			}
			m.Checks.WithLabelValues(name, b.Label(), result).Inc()
		},
	})
}
