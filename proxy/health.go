package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// healthChecker probes every server of one upstream on an interval
// (HAProxy's `option httpchk`) and reports each result to the balancer,
// which applies rise and fall. It runs under its Runtime's context.
type healthChecker struct {
	u      *upstream
	m      *Metrics
	log    *slog.Logger
	check  uhttp.Check
	tr     upstreamClient
	client *http.Client
}

// newHealthChecker builds the checker of u. Probes go through a client of
// the upstream's own kind (gatehouse or net/http), so a backend whose
// answers the proxy's client cannot read fails its checks too; it has its
// own pool of one idle connection per server, so probes neither wait
// behind traffic nor take its connections. A probe is not a client's
// request: it has none of the forwarded headers (uhttp.Forward), only a
// Host the application accepts and a User-Agent.
func newHealthChecker(rt *Runtime, u *upstream) *healthChecker {
	h := u.cfg.Health
	host := h.Host
	if host == "" {
		// Django's ALLOWED_HOSTS answers 400 to a Host that is the
		// backend's address: probe with a name the app serves.
		host = u.healthHost
	}
	probe := *u.cfg
	probe.ConnectTimeout, probe.KeepaliveTimeout = h.Timeout, 2*h.Interval
	tr := rt.newClient(&probe, 1)
	return &healthChecker{
		u:     u,
		m:     rt.deps.Metrics,
		log:   rt.log,
		check: uhttp.Check{Method: h.Method, Path: h.Path, Host: host, Expect: h.Expect, Body: h.Body},
		tr:    tr,
		client: &http.Client{
			Transport: tr,
			Timeout:   h.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a redirect is a status like any other
			},
		},
	}
}

func (hc *healthChecker) run(ctx context.Context) {
	defer hc.tr.Close()
	t := time.NewTicker(hc.u.cfg.Health.Interval)
	defer t.Stop()
	for {
		hc.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (hc *healthChecker) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range hc.u.pool.Backends() {
		wg.Add(1)
		go func(b *balancer.Backend) {
			defer wg.Done()
			start := time.Now()
			ok, reason := hc.check.Probe(ctx, hc.client, b.Addr())
			if ctx.Err() != nil {
				return // the generation ended: not the server's fault
			}
			name := hc.u.cfg.Name
			hc.m.CheckTime.WithLabelValues(name).Observe(time.Since(start).Seconds())
			result := "pass"
			if !ok {
				result = "fail"
			}
			hc.m.Checks.WithLabelValues(name, b.Label(), result).Inc()
			b.ReportCheck(ok, reason)
		}(b)
	}
	wg.Wait()
}
