package balancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// NeedsResolve reports whether any server is given by host name, i.e.
// whether Resolve and Run have anything to do.
func (p *Pool) NeedsResolve() bool {
	for _, sp := range p.specs {
		if !sp.literal.IsValid() {
			return true
		}
	}
	return false
}

// Resolve looks up every server given by host name once (A and AAAA,
// network "ip") and swaps in the new backend set. Each address becomes one
// backend, in sorted address order. A failed or empty lookup keeps that
// server's last good addresses and is reported in the joined error (and to
// OnResolveError). IP literals are never resolved. Lookups run without
// holding any lock; concurrent Picks see either the old or the new set.
func (p *Pool) Resolve(ctx context.Context) error {
	r := p.o.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	type result struct {
		name  string
		addrs []netip.Addr
	}
	var got []result
	var errs []error
	for _, sp := range p.specs {
		if sp.literal.IsValid() {
			continue
		}
		addrs, err := r.LookupNetIP(ctx, "ip", sp.Host)
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			err = fmt.Errorf("balancer: upstream %q: resolve server %q (%s): %w", p.o.Name, sp.Name, sp.Host, err)
			errs = append(errs, err)
			if f := p.o.OnResolveError; f != nil {
				f(p.o.Name, sp.Name, err)
			}
			continue
		}
		norm := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			if a = a.Unmap().WithZone(""); a.IsValid() {
				norm = append(norm, a)
			}
		}
		slices.SortFunc(norm, netip.Addr.Compare)
		got = append(got, result{sp.Name, slices.Compact(norm)})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.Join(errs...)
	}
	changed := false
	for _, g := range got {
		if !slices.Equal(p.resolved[g.name], g.addrs) {
			p.resolved[g.name] = g.addrs
			changed = true
		}
	}
	if changed {
		p.rebuildLocked()
	}
	return errors.Join(errs...)
}

// Run resolves host names at once and then every ResolveInterval until ctx
// is done; the caller owns the goroutine (Run blocks). With no host names it
// returns immediately; with ResolveInterval 0 it resolves once and waits for
// ctx. Errors go to OnResolveError.
func (p *Pool) Run(ctx context.Context) {
	if !p.NeedsResolve() {
		return
	}
	_ = p.Resolve(ctx)
	if p.o.ResolveInterval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(p.o.ResolveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.Resolve(ctx)
		}
	}
}

var _ Resolver = (*net.Resolver)(nil)
