package proxy

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. They are created once per
// process with NewMetrics and shared by every Runtime generation, so a
// reload does not reset counters. Label values are bounded: site, route,
// upstream and server names come from the config, methods are folded into
// a fixed set, and no client address or raw path is ever a label.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	upstreamErrs *prometheus.CounterVec
	retries      *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	reloadOK     prometheus.Gauge
	reloadTime   prometheus.Gauge
	rejected     *prometheus.CounterVec
	wsUpgrades   *prometheus.CounterVec
	wsCloses     *prometheus.CounterVec
	wsLifetime   prometheus.Histogram
	wsBytes      *prometheus.CounterVec
	limited      *prometheus.CounterVec
	bans         *prometheus.CounterVec
	bodyLimit    prometheus.Counter
	smuggling    prometheus.Counter
	checks       *prometheus.CounterVec
	checkTime    *prometheus.HistogramVec
	unsolicited  *prometheus.CounterVec
	loopPanics   *prometheus.CounterVec

	edge atomic.Pointer[Edge] // for the state collector
}

// methods are the method label values; anything else is "OTHER".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	}
	return 7
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	i := status/100 - 1
	if i < 0 || i > 4 {
		return 4
	}
	return i
}

// NewMetrics registers the proxy metrics on reg. version is reported in
// gatehouse_build_info.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests answered, by site, route, upstream, method and status class.",
		}, []string{"site", "route", "upstream", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time from the request head to the end of the response, by site and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_errors_total",
			Help: "Failed upstream attempts by upstream and kind (dial, timeout, status, protocol, client_gone; body and body_timeout: the backend broke off or stalled mid-body).",
		}, []string{"upstream", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_retries_total",
			Help: "Requests retried on another server, by upstream.",
		}, []string{"upstream"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded, 0 if it failed (the previous configuration is still serving).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_rejected_total",
			Help: "Requests refused before reaching a backend, by reason.",
		}, []string{"reason"}),
		wsUpgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_upgrades_total",
			Help: "WebSocket upgrade attempts by result (ok, bad_request, origin_rejected, capped, backend_refused, backend_error).",
		}, []string{"result"}),
		wsCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_closes_total",
			Help: "Ended WebSocket tunnels by cause and close code.",
		}, []string{"cause", "code"}),
		wsLifetime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_websocket_lifetime_seconds",
			Help:    "Lifetime of ended WebSocket tunnels.",
			Buckets: []float64{1, 10, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600},
		}),
		wsBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_bytes_total",
			Help: "Bytes carried by ended WebSocket tunnels, by direction (in: from clients, out: to clients).",
		}, []string{"direction"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_requests_total",
			Help: "Requests over a rate-limit zone, by zone and result (rejected, dry_run, delayed).",
		}, []string{"zone", "result"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_bans_total",
			Help: "Ban events by kind (ban, unban, expire, evict).",
		}, []string{"kind"}),
		bodyLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_request_body_too_large_total",
			Help: "Requests refused with 413.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_health_checks_total",
			Help: "Active health checks by upstream, server and result (pass, fail).",
		}, []string{"upstream", "server", "result"}),
		checkTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_health_check_duration_seconds",
			Help:    "Duration of active health checks, by upstream.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"upstream"}),
		unsolicited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_unsolicited_responses_total",
			Help: "Backend connections closed instead of reused because the backend sent bytes after the end of a response, by upstream (gatehouse client only).",
		}, []string{"upstream"}),
		loopPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_background_panics_total",
			Help: "Panics of background loops (health, resolve, reap), which are then restarted, by loop and upstream.",
		}, []string{"loop", "upstream"}),
		smuggling: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_request_framing_rejected_total",
			Help: "HTTP/1 requests refused for ambiguous framing (request smuggling defence).",
		}),
	}
	goVersion, rev := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "revision": rev},
	})
	build.Set(1)
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inFlight, m.upstreamErrs,
			m.retries, m.reloads, m.reloadOK, m.reloadTime, m.rejected, m.wsUpgrades, m.wsCloses,
			m.wsLifetime, m.wsBytes, m.limited, m.bans, m.bodyLimit, m.smuggling, m.checks, m.checkTime, m.unsolicited, m.loopPanics, build, &stateCollector{m: m})
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// BanEvent counts a ban, unban or expiry.
func (m *Metrics) BanEvent(kind string) { m.bans.WithLabelValues(kind).Inc() }

// ReloadResult records the outcome of a configuration load.
func (m *Metrics) ReloadResult(ok bool, now time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(now.Unix()))
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.reloadOK.Set(0)
}

// routeMetrics are the label children of one route, resolved at Build so
// the request path does no label lookups.
type routeMetrics struct {
	requests [len(methods)][len(classes)]prometheus.Counter
	duration prometheus.Observer
}

func (m *Metrics) forRoute(site, route, upstream string) *routeMetrics {
	rm := &routeMetrics{duration: m.duration.WithLabelValues(site, route)}
	for i, meth := range methods {
		for j, cl := range classes {
			rm.requests[i][j] = m.requests.WithLabelValues(site, route, upstream, meth, cl)
		}
	}
	return rm
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
