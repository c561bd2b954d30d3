package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/internal/statuspage"
	"github.com/gatehouse-proxy/gatehouse/proxy"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

// adminStatus adds the status page to the admin mux:
//
//	GET /             the HTML page (polls /status.json while visible)
//	GET /status.json  what the page shows, as JSON
//	GET /csrf-token   the token tokenless state changes must send in
//	                  X-CSRF-Token (the page embeds it; see checkAdminRequest)
func (d *daemon) adminStatus(mux *http.ServeMux) {
	var certs statuspage.CertLister
	if d.tls != nil {
		certs = certLister{d.tls}
	}
	var bans statuspage.BanLister
	if d.jail != nil {
		bans = banLister{d.jail}
	}
	page := statuspage.New(statuspage.Options{
		Version:   getVersion(),
		Source:    statusSource{d},
		Certs:     certs,
		Bans:      bans,
		CSRFToken: d.csrf,
	})
	mux.HandleFunc("GET /{$}", page.ServeHTML)
	mux.HandleFunc("GET /status.json", page.ServeJSON)
	mux.HandleFunc("GET /csrf-token", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		io.WriteString(w, d.csrf)
	})
}

// configHash is the hex SHA-256 of a configuration's bytes, as sha256sum
// prints it for the file.
func configHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// noteLoad records the outcome of a configuration load at now for the
// status page: on success, path and hash are those of the configuration
// now serving; on failure the previous ones stay.
func (d *daemon) noteLoad(now time.Time, path, hash string, err error) {
	r := statuspage.Reload{LastAttempt: now, LastOK: err == nil}
	if prev := d.reloadState.Load(); prev != nil {
		r.Path, r.Hash, r.LoadedAt = prev.Path, prev.Hash, prev.LoadedAt
	}
	if err != nil {
		r.LastError = err.Error()
	} else {
		r.Path, r.Hash, r.LoadedAt = path, hash, now
	}
	d.reloadState.Store(&r)
}

// statusSource is the status page's view of the running daemon.
type statusSource struct{ d *daemon }

func (s statusSource) Reload() statuspage.Reload {
	if r := s.d.reloadState.Load(); r != nil {
		return *r
	}
	return statuspage.Reload{}
}

func (s statusSource) TokenRequired() bool {
	p := s.d.adminPolicy.Load()
	return p != nil && p.token != ""
}

func (s statusSource) Sites() []statuspage.Site {
	rt := s.d.edge.Runtime()
	if rt == nil {
		return nil
	}
	var out []statuspage.Site
	for _, sc := range rt.Config().Sites {
		site := statuspage.Site{Name: sc.Name, Hosts: slices.Clone(sc.Hosts), TLS: string(sc.TLS)}
		if len(site.Hosts) == 0 {
			site.Hosts = []string{"(any host: the default site)"}
		}
		for _, rc := range sc.Routes {
			site.Routes = append(site.Routes, statuspage.Route{Path: rc.Path, Upstream: rc.Upstream, WebSocket: rc.WebSocket.Enabled})
		}
		out = append(out, site)
	}
	return out
}

func (s statusSource) Upstreams(now time.Time) []statuspage.Upstream {
	rt := s.d.edge.Runtime()
	if rt == nil {
		return nil
	}
	cfg := rt.Config()
	pools := rt.Pools()
	tunnels := s.d.edge.OpenTunnels()
	names := make([]string, 0, len(pools))
	for n := range pools {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]statuspage.Upstream, 0, len(names))
	for _, name := range names {
		p := pools[name]
		u := statuspage.Upstream{Name: name, Policy: p.Policy(), Servers: []statuspage.Server{}}
		cfgDrain := map[string]bool{}
		if uc := cfg.Upstreams[name]; uc != nil {
			if h := uc.Health; h != nil {
				u.Health = &statuspage.Health{Method: h.Method, Path: h.Path, Interval: h.Interval.String()}
			}
			for _, sc := range uc.Servers {
				cfgDrain[sc.Name] = sc.Drain
			}
		}
		for _, b := range p.Backends() {
			v := serverView(b, now, cfgDrain[b.Name()])
			v.WebSockets = tunnels[proxy.TunnelServer{Upstream: name, Server: b.Label()}]
			u.Servers = append(u.Servers, v)
		}
		out = append(out, u)
	}
	return out
}

// serverView is a backend as the status page shows it. The state is the
// first that applies of down (active check, or passive exclusion),
// draining, slow start, backup and up; Detail says why or until when
// (the check's own words are in LastCheck).
func serverView(b *balancer.Backend, now time.Time, drainedByConfig bool) statuspage.Server {
	st := b.ResponseStats()
	v := statuspage.Server{
		Name: b.Name(), Label: b.Label(), Addr: b.Addr(), Backup: b.Backup(), Weight: b.Weight(),
		InFlight: b.InFlight(), Queue: b.QueueLen(), DrainedByConfig: drainedByConfig,
		Counters: statuspage.Counters{Responses: st.Responses, Errors: st.Errors, Latency: st.Latency, Failures: b.Failures()},
	}
	check, checked := b.LastCheck()
	if checked {
		v.LastCheck = &statuspage.Check{At: check.At, OK: check.OK, Reason: check.Reason}
	}
	deadline, draining := b.DrainDeadline()
	v.Draining = draining
	passiveUntil, passiveDown := b.PassiveDownUntil(now)
	slowUntil, slow := b.SlowStartUntil(now)
	switch {
	case !b.Up():
		v.State = statuspage.StateDown
		switch {
		case checked && !check.OK:
			v.Detail = "failing its health check"
		case checked:
			v.Detail = "passing again, not yet rise times in a row"
		default:
			v.Detail = "waiting for its first passing health check"
		}
	case passiveDown:
		v.State = statuspage.StateDown
		v.Detail = "max_fails reached; out until " + clock(passiveUntil, now)
	case draining:
		v.State = statuspage.StateDraining
		switch {
		case drainedByConfig:
			v.Detail = "drain = true in the configuration"
		case deadline.IsZero():
			v.Detail = "until undrained"
		case now.Before(deadline):
			v.Detail = "sticky clients until " + clock(deadline, now)
		default:
			v.Detail = "sticky clients moved on at " + clock(deadline, now)
		}
	case slow:
		v.State = statuspage.StateSlowStart
		v.Detail = "full weight at " + clock(slowUntil, now)
	case b.Backup():
		v.State = statuspage.StateBackup
		v.Detail = "serves when no primary server can"
	default:
		v.State = statuspage.StateUp
	}
	return v
}

// clock formats t in UTC: the time of day when it is within a day of
// now, else with the date too.
func clock(t, now time.Time) string {
	if d := t.Sub(now); d > -24*time.Hour && d < 24*time.Hour {
		return t.UTC().Format("15:04:05Z")
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// certLister adapts tlsedge's certificate list to the status page's.
type certLister struct{ m *tlsedge.Manager }

func (c certLister) Certificates() []statuspage.Certificate {
	list := c.m.Certificates()
	out := make([]statuspage.Certificate, 0, len(list))
	for _, ci := range list {
		out = append(out, statuspage.Certificate{Names: ci.Names, Source: ci.Source, File: ci.File,
			Issuer: ci.Issuer, NotAfter: ci.NotAfter, RenewAt: ci.RenewAt})
	}
	return out
}

// banLister adapts the jail to the status page: the count and the latest
// bans, newest first.
type banLister struct{ j *ratelimit.Jail }

func (b banLister) Bans(now time.Time, max int) (int, []statuspage.Ban) {
	list := b.j.List(now)
	sort.Slice(list, func(i, k int) bool { return list[i].Since.After(list[k].Since) })
	out := make([]statuspage.Ban, 0, min(max, len(list)))
	for _, x := range list[:min(max, len(list))] {
		out = append(out, statuspage.Ban{Addr: x.Key.String(), Reason: x.Reason, Since: x.Since, Until: x.Until})
	}
	return len(list), out
}

// Interface guards.
var (
	_ statuspage.Source     = statusSource{}
	_ statuspage.CertLister = certLister{}
	_ statuspage.BanLister  = banLister{}
)
