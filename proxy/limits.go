package proxy

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// routeZone is a zone attached to a route, with the label children of its
// counters resolved at build.
type routeZone struct {
	z        *ratelimit.Zone // nil for a cluster zone
	shared   bool            // scope "cluster": decided by Deps.Zones.Shared()
	cfg      *config.Zone
	rejected prometheus.Counter
	dryRun   prometheus.Counter
	delayed  prometheus.Counter
	status   int
}

// limit applies the route's zones: the local ones in order, then the
// cluster ones together (one round trip). It returns false when the
// request was answered (rejected); a delay-mode zone may make it wait
// first.
func (q *request) limit() bool {
	now := q.e.now()
	shared := 0
	for _, rz := range q.route.zones {
		if rz.shared {
			shared++
			continue
		}
		k := ratelimit.KeyOf(q.client, rz.cfg.IPv6Prefix)
		ok, wait, retry := rz.z.AllowAt(k, now)
		if !ok {
			if q.refuse(rz, retry) {
				return false
			}
			continue
		}
		if wait > 0 {
			rz.delayed.Inc()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.r.Context().Done():
				t.Stop()
				q.status = StatusClientClosed
				return false
			}
		}
	}
	if shared > 0 {
		return q.limitShared(shared)
	}
	return true
}

// limitShared asks the route's n cluster zones at once.
func (q *request) limitShared(n int) bool {
	qs := make([]ratelimit.SharedQuery, 0, n)
	for _, rz := range q.route.zones {
		if rz.shared {
			qs = append(qs, ratelimit.SharedQuery{Zone: rz.cfg.Name, Rate: rz.cfg.Rate, Burst: max(rz.cfg.Burst, 1), Key: ratelimit.KeyOf(q.client, rz.cfg.IPv6Prefix)})
		}
	}
	q.rt.deps.Zones.Shared().AllowShared(q.r.Context(), qs)
	i := 0
	for _, rz := range q.route.zones {
		if !rz.shared {
			continue
		}
		res := qs[i]
		i++
		if !res.OK && q.refuse(rz, res.RetryAfter) {
			return false
		}
	}
	return true
}

// refuse handles a request over rz's rate: counted and logged only in a
// dry run (it returns false: the request goes on), otherwise answered
// with rz's status and a Retry-After of retry rounded up to seconds, and
// counted as a strike (it returns true).
func (q *request) refuse(rz *routeZone, retry time.Duration) bool {
	if rz.cfg.DryRun {
		rz.dryRun.Inc()
		q.e.log.Info("rate limit exceeded (dry run)", "zone", rz.cfg.Name, "client", q.client)
		return false
	}
	rz.rejected.Inc()
	q.strike("rate_limit:" + rz.cfg.Name)
	secs := int(math.Ceil(retry.Seconds()))
	q.w.Header()["Retry-After"] = []string{strconv.Itoa(max(secs, 1))}
	q.fail(rz.status, false)
	return true
}

// strike counts one offence of the client toward a ban.
func (q *request) strike(reason string) {
	j := q.rt.deps.Jail
	if j == nil {
		return
	}
	k := ratelimit.KeyOf(q.client, q.rt.cfg.Limits.IPv6Prefix)
	j.RecordAt(k, reason, q.e.now())
}

// banStatus counts a configured status (e.g. 401/403 from a login route)
// as a strike.
func (q *request) banStatus() {
	if q.route == nil || !q.route.cfg.BanOnStatus || q.rt.deps.Jail == nil {
		return
	}
	for _, s := range q.rt.cfg.Ban.Statuses {
		if s == q.status {
			q.strike("status:" + strconv.Itoa(s))
			return
		}
	}
}

// buildZones attaches the configured zones to a route.
func (rt *Runtime) buildZones(r *route) error {
	for _, name := range r.cfg.Zones {
		zc := rt.cfg.Zones[name]
		var z *ratelimit.Zone
		shared := zc.Scope == config.ScopeCluster
		if shared {
			if rt.deps.Zones.Shared() == nil {
				return fmt.Errorf("zones.%s: scope \"cluster\" needs [cluster] (this process has no cluster)", name)
			}
		} else {
			var err error
			mode := ratelimit.NoDelay
			if zc.Delay {
				mode = ratelimit.Delay
			}
			o := ratelimit.ZoneOptions{Name: name, Rate: zc.Rate, Burst: max(zc.Burst, 1), Mode: mode, MaxKeys: zc.MaxKeys}
			if z, err = rt.deps.Zones.Get(o, rt.deps.Now()); err != nil {
				return fmt.Errorf("zones.%s: %w", name, err)
			}
		}
		m := rt.deps.Metrics
		r.zones = append(r.zones, &routeZone{
			z:        z,
			shared:   shared,
			cfg:      zc,
			status:   zc.Status,
			rejected: m.Limited.WithLabelValues(name, "rejected"),
			dryRun:   m.Limited.WithLabelValues(name, "dry_run"),
			delayed:  m.Limited.WithLabelValues(name, "delayed"),
		})
	}
	return nil
}
