package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Zones keeps the rate-limit zones of a process by name, so that a
// configuration reload does not hand every client a full bucket again: a
// zone whose rate or burst changed is retuned in place ([Zone.Retune]),
// one whose mode or MaxKeys changed is rebuilt. Create one per process;
// its methods are safe for concurrent use.
type Zones struct {
	mu    sync.Mutex
	zones map[string]*zonesEntry
	// shared decides the zones kept outside this process; nil: none.
	shared SharedLimiter
}

type zonesEntry struct {
	z *Zone
	o ZoneOptions // as last given to Get
}

// NewZones returns an empty zone set.
func NewZones() *Zones { return &Zones{zones: map[string]*zonesEntry{}} }

// NewClusterZones returns an empty zone set whose shared zones (scope
// "cluster" in the configuration) are decided by shared (package
// cluster's Limiter): their budgets are kept outside this process, shared
// with the other instances.
func NewClusterZones(shared SharedLimiter) *Zones {
	zs := NewZones()
	zs.shared = shared
	return zs
}

// Shared is the limiter of the shared zones, nil when there is none.
func (zs *Zones) Shared() SharedLimiter { return zs.shared }

// Get returns the zone named o.Name: the live one when its Mode and
// MaxKeys are o's, retuned at now to o's Rate and Burst if those changed,
// else a new one ([NewZone]) that replaces it.
func (zs *Zones) Get(o ZoneOptions, now time.Time) (*Zone, error) {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	if e := zs.zones[o.Name]; e != nil && e.o.Mode == o.Mode && e.o.MaxKeys == o.MaxKeys {
		if e.o.Rate != o.Rate || e.o.Burst != o.Burst {
			if err := e.z.Retune(o.Rate, o.Burst, now); err != nil {
				return nil, err
			}
		}
		e.o = o
		return e.z, nil
	}
	z, err := NewZone(o)
	if err != nil {
		return nil, err
	}
	zs.zones[o.Name] = &zonesEntry{z: z, o: o}
	return z, nil
}

// Keep forgets the zones whose name keep refuses (no longer configured
// here); their state is dropped with them.
func (zs *Zones) Keep(keep func(name string) bool) {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	for name := range zs.zones {
		if !keep(name) {
			delete(zs.zones, name)
		}
	}
}

// List returns the zones held, in no particular order.
func (zs *Zones) List() []*Zone {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	list := make([]*Zone, 0, len(zs.zones))
	for _, e := range zs.zones {
		list = append(list, e.z)
	}
	return list
}

// Sweep drops fully refilled buckets of every zone (memory returns to
// what live clients need). Run it on a ticker (RunMaintenance).
func (zs *Zones) Sweep(now time.Time) {
	for _, z := range zs.List() {
		z.SweepAt(now)
	}
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
