package proxy

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Zones keeps the rate-limit zones of the process by name, so a reload
// does not hand every client a full bucket again: a zone whose rate or
// burst changed is retuned in place, one whose mode or size changed is
// rebuilt. Create one per process and pass it in Deps.
type Zones struct {
	mu    sync.Mutex
	zones map[string]*zoneEntry
	// shared decides the zones of scope "cluster"; nil without
	// [cluster].
	shared ratelimit.SharedLimiter
}

type zoneEntry struct {
	z   *ratelimit.Zone
	cfg config.Zone
}

// NewZones returns an empty zone set.
func NewZones() *Zones { return &Zones{zones: map[string]*zoneEntry{}} }

// NewClusterZones returns an empty zone set whose zones of scope
// "cluster" are decided by shared (package cluster's Limiter): their
// budgets are kept outside this process, shared with the other
// instances.
func NewClusterZones(shared ratelimit.SharedLimiter) *Zones {
	zs := NewZones()
	zs.shared = shared
	return zs
}

// get returns the zone for cfg, reusing (and retuning) the live one.
func (zs *Zones) get(cfg *config.Zone, now time.Time) (*ratelimit.Zone, error) {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	mode := ratelimit.NoDelay
	if cfg.Delay {
		mode = ratelimit.Delay
	}
	if e := zs.zones[cfg.Name]; e != nil && e.cfg.Delay == cfg.Delay && e.cfg.MaxKeys == cfg.MaxKeys {
		if e.cfg.Rate != cfg.Rate || e.cfg.Burst != cfg.Burst {
			if err := e.z.Retune(cfg.Rate, max(cfg.Burst, 1), now); err != nil {
				return nil, err
			}
		}
		e.cfg = *cfg
		return e.z, nil
	}
	z, err := ratelimit.NewZone(ratelimit.ZoneOptions{
		Name: cfg.Name, Rate: cfg.Rate, Burst: max(cfg.Burst, 1), Mode: mode, MaxKeys: cfg.MaxKeys,
	})
	if err != nil {
		return nil, err
	}
	zs.zones[cfg.Name] = &zoneEntry{z: z, cfg: *cfg}
	return z, nil
}

// prune forgets zones no longer configured here (gone, or now of scope
// cluster).
func (zs *Zones) prune(keep map[string]*config.Zone) {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	for name := range zs.zones {
		if z, ok := keep[name]; !ok || z.Scope == config.ScopeCluster {
			delete(zs.zones, name)
		}
	}
}

// Sweep drops fully refilled buckets of every zone (memory returns to
// what live clients need). Run it on a ticker.
func (zs *Zones) Sweep(now time.Time) {
	zs.mu.Lock()
	list := make([]*ratelimit.Zone, 0, len(zs.zones))
	for _, e := range zs.zones {
		list = append(list, e.z)
	}
	zs.mu.Unlock()
	for _, z := range list {
		z.SweepAt(now)
	}
}

// routeZone is a zone attached to a route, with the label children of its
// counters resolved at build.
type routeZone struct {
	z        *ratelimit.Zone // nil for a cluster zone
	shared   bool            // scope "cluster": decided by Zones.shared
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
	q.rt.deps.Zones.shared.AllowShared(q.r.Context(), qs)
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
			if rt.deps.Zones.shared == nil {
				return fmt.Errorf("zones.%s: scope \"cluster\" needs [cluster] (this process has no cluster)", name)
			}
		} else {
			var err error
			if z, err = rt.deps.Zones.get(zc, rt.deps.Now()); err != nil {
				return fmt.Errorf("zones.%s: %w", name, err)
			}
		}
		m := rt.deps.Metrics
		r.zones = append(r.zones, &routeZone{
			z:        z,
			shared:   shared,
			cfg:      zc,
			status:   zc.Status,
			rejected: m.limited.WithLabelValues(name, "rejected"),
			dryRun:   m.limited.WithLabelValues(name, "dry_run"),
			delayed:  m.limited.WithLabelValues(name, "delayed"),
		})
	}
	return nil
}

// RunMaintenance sweeps idle rate-limit state every interval until ctx
// ends. The caller owns the goroutine.
func (zs *Zones) RunMaintenance(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			zs.Sweep(now)
		}
	}
}
