package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations, the op label of the round-trip metrics.
const (
	opRateLimit = "ratelimit"
	opBans      = "bans"
	opStrikes   = "strikes"
	opHeartbeat = "heartbeat"
	opStorage   = "storage"
	opLock      = "lock"
)

var ops = []string{opRateLimit, opBans, opStrikes, opHeartbeat, opStorage, opLock}

// metrics are the gatehouse_cluster_* series. Label children are resolved
// once, so the request path does not look them up.
type metrics struct {
	latency       map[string]prometheus.Observer
	errors        map[string]prometheus.Counter
	fallbacks     *prometheus.CounterVec
	banLag        prometheus.Histogram
	strikesLost   prometheus.Counter
	bansApplied   prometheus.Counter
	bansPublished prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_cluster_redis_seconds",
		Help: "Round-trip time of requests to the cluster's Redis, by operation (failed ones included).",
		// From a loopback round trip (~50 µs) to the longest background wait.
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2},
	}, []string{"op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_cluster_redis_errors_total",
		Help: "Requests to the cluster's Redis that failed or ran out of time, by operation.",
	}, []string{"op"})
	m := &metrics{
		latency: map[string]prometheus.Observer{},
		errors:  map[string]prometheus.Counter{},
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_cluster_ratelimit_fallbacks_total",
			Help: "Decisions of cluster rate-limit zones taken by the local fallback bucket (Redis slow or unreachable), by zone.",
		}, []string{"zone"}),
		banLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_cluster_ban_sync_lag_seconds",
			Help:    "Time from a ban or unban on another instance to its enforcement here (by the two clocks).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300},
		}),
		strikesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_cluster_strikes_dropped_total",
			Help: "Strikes not shared because the queue to Redis was full (they still count on this instance).",
		}),
		bansApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_cluster_bans_applied_total",
			Help: "Bans and unbans from other instances applied to this instance's jail.",
		}),
		bansPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_cluster_bans_published_total",
			Help: "Bans and unbans of this instance written to Redis.",
		}),
	}
	for _, op := range ops {
		m.latency[op] = lat.WithLabelValues(op)
		m.errors[op] = errs.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(lat, errs, m.fallbacks, m.banLag, m.strikesLost, m.bansApplied, m.bansPublished,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "gatehouse_cluster_instances_live",
				Help: "Instances with a recent heartbeat, this one included, at the last heartbeat.",
			}, func() float64 { return float64(n.Live()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "gatehouse_cluster_redis_up",
				Help: "1 while the last requests to Redis succeeded, 0 while requests fall back.",
			}, func() float64 {
				if n.Up() {
					return 1
				}
				return 0
			}),
		)
	}
	return m
}

// observe records a round trip of op that started at start.
func (m *metrics) observe(op string, start time.Time, err error) {
	m.latency[op].Observe(time.Since(start).Seconds())
	if err != nil {
		m.errors[op].Inc()
	}
}
