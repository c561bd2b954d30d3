package proxymetrics

import (
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Set is the proxy's metric families. Create it once per process with New
// and share it across Runtime generations, so a reload does not reset
// counters. Fields are the families the proxy counts into directly; the
// label values it passes are bounded (config names, folded methods, fixed
// kinds), never a client address or a raw path.
type Set struct {
	// Requests counts answered requests by site, route, upstream, method
	// and status class; Duration times them by site and route. A route's
	// children are resolved once, by ForRoute.
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
	// InFlight is the requests being served.
	InFlight prometheus.Gauge
	// UpstreamErrors counts failed upstream attempts by upstream and
	// kind; Retries requests retried on another server, by upstream.
	UpstreamErrors *prometheus.CounterVec
	Retries        *prometheus.CounterVec
	// Rejected counts requests refused before a backend, by reason.
	Rejected *prometheus.CounterVec
	// WSUpgrades counts WebSocket upgrade attempts by result; WSCloses,
	// WSLifetime and WSBytes describe ended tunnels.
	WSUpgrades *prometheus.CounterVec
	WSCloses   *prometheus.CounterVec
	WSLifetime prometheus.Histogram
	WSBytes    *prometheus.CounterVec
	// Limited counts requests over a rate-limit zone, by zone and result.
	Limited *prometheus.CounterVec
	// BodyLimit counts 413s; Smuggling HTTP/1 requests refused for
	// ambiguous framing.
	BodyLimit prometheus.Counter
	Smuggling prometheus.Counter
	// Checks and CheckTime are the active health checks.
	Checks    *prometheus.CounterVec
	CheckTime *prometheus.HistogramVec
	// Unsolicited counts backend conns closed for bytes sent after a
	// response; LoopPanics restarted background loops.
	Unsolicited *prometheus.CounterVec
	LoopPanics  *prometheus.CounterVec

	reloads    *prometheus.CounterVec
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	bans       *prometheus.CounterVec
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

// New creates the families and, when reg is not nil, registers them, a
// gatehouse_build_info gauge reporting version, and the state metrics:
// at each scrape, read (nil: none) reports the state of the current
// generation into a State.
func New(reg prometheus.Registerer, version string, read func(*State)) *Set {
	m := &Set{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests answered, by site, route, upstream, method and status class.",
		}, []string{"site", "route", "upstream", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time from the request head to the end of the response, by site and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site", "route"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_errors_total",
			Help: "Failed upstream attempts by upstream and kind (dial, timeout, status, protocol, client_gone; body and body_timeout: the backend broke off or stalled mid-body).",
		}, []string{"upstream", "kind"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
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
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_rejected_total",
			Help: "Requests refused before reaching a backend, by reason.",
		}, []string{"reason"}),
		WSUpgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_upgrades_total",
			Help: "WebSocket upgrade attempts by result (ok, bad_request, origin_rejected, capped, backend_refused, backend_error).",
		}, []string{"result"}),
		WSCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_closes_total",
			Help: "Ended WebSocket tunnels by cause and close code.",
		}, []string{"cause", "code"}),
		WSLifetime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_websocket_lifetime_seconds",
			Help:    "Lifetime of ended WebSocket tunnels.",
			Buckets: []float64{1, 10, 60, 300, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600},
		}),
		WSBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_websocket_bytes_total",
			Help: "Bytes carried by ended WebSocket tunnels, by direction (in: from clients, out: to clients).",
		}, []string{"direction"}),
		Limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_requests_total",
			Help: "Requests over a rate-limit zone, by zone and result (rejected, dry_run, delayed).",
		}, []string{"zone", "result"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_bans_total",
			Help: "Ban events by kind (ban, unban, expire, evict).",
		}, []string{"kind"}),
		BodyLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_request_body_too_large_total",
			Help: "Requests refused with 413.",
		}),
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_health_checks_total",
			Help: "Active health checks by upstream, server and result (pass, fail).",
		}, []string{"upstream", "server", "result"}),
		CheckTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_health_check_duration_seconds",
			Help:    "Duration of active health checks, by upstream.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"upstream"}),
		Unsolicited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_unsolicited_responses_total",
			Help: "Backend connections closed instead of reused because the backend sent bytes after the end of a response, by upstream (gatehouse client only).",
		}, []string{"upstream"}),
		LoopPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_background_panics_total",
			Help: "Panics of background loops (health, resolve, reap), which are then restarted, by loop and upstream.",
		}, []string{"loop", "upstream"}),
		Smuggling: prometheus.NewCounter(prometheus.CounterOpts{
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
		reg.MustRegister(m.Requests, m.Duration, m.InFlight, m.UpstreamErrors,
			m.Retries, m.reloads, m.reloadOK, m.reloadTime, m.Rejected, m.WSUpgrades, m.WSCloses,
			m.WSLifetime, m.WSBytes, m.Limited, m.bans, m.BodyLimit, m.Smuggling, m.Checks, m.CheckTime, m.Unsolicited, m.LoopPanics, build)
		if read != nil {
			reg.MustRegister(stateCollector{read})
		}
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// BanEvent counts a ban, unban or expiry.
func (m *Set) BanEvent(kind string) { m.bans.WithLabelValues(kind).Inc() }

// ReloadResult records the outcome of a configuration load.
func (m *Set) ReloadResult(ok bool, now time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(now.Unix()))
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.reloadOK.Set(0)
}

// Route is the label children of one route, resolved once (at Build) so
// the request path does no label lookups.
type Route struct {
	requests [len(methods)][len(classes)]prometheus.Counter
	duration prometheus.Observer
}

// ForRoute resolves the children of a route of site, proxying to upstream
// ("" for none).
func (m *Set) ForRoute(site, route, upstream string) *Route {
	rm := &Route{duration: m.Duration.WithLabelValues(site, route)}
	for i, meth := range methods {
		for j, cl := range classes {
			rm.requests[i][j] = m.Requests.WithLabelValues(site, route, upstream, meth, cl)
		}
	}
	return rm
}

// Done counts a request with method answered with status after d.
func (rm *Route) Done(method string, status int, d time.Duration) {
	rm.requests[methodIndex(method)][classIndex(status)].Inc()
	rm.duration.Observe(d.Seconds())
}

// Unrouted counts a request no route answered (site "" when no site
// claimed it); it is not timed.
func (m *Set) Unrouted(site, method string, status int) {
	m.Requests.WithLabelValues(site, "", "", methods[methodIndex(method)], classes[classIndex(status)]).Inc()
}

// Server is an upstream server as the state metrics read it
// (*balancer.Backend is one).
type Server interface {
	Label() string
	Available(now time.Time) bool
	Draining() bool
	InFlight() int64
	QueueLen() int64
	Picks() uint64
	Failures() uint64
	QueueTimeouts() uint64
}

// Zone is a rate-limit zone as the state metrics read it (*ratelimit.Zone
// is one).
type Zone interface {
	Name() string
	Len() int
	Evictions() uint64
}

// State is what a scrape reports of the current generation: the read
// function given to New calls its methods (during the scrape only), so a
// reload leaves no stale series.
type State struct {
	ch  chan<- prometheus.Metric
	now time.Time
}

// Server reports server b of upstream: available, draining, in flight,
// queue length, picks, failures and queue timeouts, labelled by upstream
// and b.Label() (name@ip:port when a name has several addresses: one
// series each).
func (s *State) Server(upstream string, b Server) {
	l := []string{upstream, b.Label()}
	s.ch <- prometheus.MustNewConstMetric(descServerUp, prometheus.GaugeValue, boolFloat(b.Available(s.now)), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerDraining, prometheus.GaugeValue, boolFloat(b.Draining()), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerInFlight, prometheus.GaugeValue, float64(b.InFlight()), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerQueue, prometheus.GaugeValue, float64(b.QueueLen()), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerPicks, prometheus.CounterValue, float64(b.Picks()), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerFailures, prometheus.CounterValue, float64(b.Failures()), l...)
	s.ch <- prometheus.MustNewConstMetric(descServerQueueTimeouts, prometheus.CounterValue, float64(b.QueueTimeouts()), l...)
}

// Zone reports a local rate-limit zone's keys and evictions.
func (s *State) Zone(z Zone) {
	s.ch <- prometheus.MustNewConstMetric(descZoneKeys, prometheus.GaugeValue, float64(z.Len()), z.Name())
	s.ch <- prometheus.MustNewConstMetric(descZoneEvictions, prometheus.CounterValue, float64(z.Evictions()), z.Name())
}

// Bans reports how many bans are held.
func (s *State) Bans(n int) {
	s.ch <- prometheus.MustNewConstMetric(descBansActive, prometheus.GaugeValue, float64(n))
}

// Tunnels reports the open WebSocket tunnels to a server.
func (s *State) Tunnels(upstream, server string, n int) {
	s.ch <- prometheus.MustNewConstMetric(descWSActive, prometheus.GaugeValue, float64(n), upstream, server)
}

// stateCollector reports, at scrape time, what its read function finds.
type stateCollector struct{ read func(*State) }

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

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServerUp, descServerDraining, descServerInFlight, descServerQueue,
		descServerPicks, descServerFailures, descServerQueueTimeouts, descWSActive, descZoneKeys, descZoneEvictions, descBansActive} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.read(&State{ch: ch, now: time.Now()})
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
