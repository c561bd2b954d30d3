package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
)

// adminControl adds the control endpoints to the admin mux. Mutating
// endpoints require the configured token (Authorization: Bearer TOKEN)
// when one is set; the listener is loopback-only by default either way.
func (d *daemon) adminControl(mux *http.ServeMux) {
	mux.HandleFunc("GET /upstreams", d.adminUpstreams)
	mux.HandleFunc("POST /upstreams/{upstream}/servers/{server}/drain", d.authorized(d.adminDrain))
	mux.HandleFunc("POST /upstreams/{upstream}/servers/{server}/undrain", d.authorized(d.adminUndrain))
	d.adminBans(mux)
}

func (d *daemon) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		token := d.cfg.Admin.Token
		d.mu.Unlock()
		if token != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+token)) != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
				return
			}
		}
		h(w, r)
	}
}

type serverState struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	ID       string `json:"id"`
	Up       bool   `json:"up"`
	Usable   bool   `json:"available"`
	Draining bool   `json:"draining"`
	Backup   bool   `json:"backup"`
	InFlight int64  `json:"in_flight"`
	Queue    int64  `json:"queue"`
	Picks    uint64 `json:"picks"`
	Failures uint64 `json:"failures"`
}

func (d *daemon) adminUpstreams(w http.ResponseWriter, r *http.Request) {
	rt := d.edge.Runtime()
	if rt == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not ready"})
		return
	}
	now := time.Now()
	out := map[string][]serverState{}
	for name, p := range rt.Pools() {
		list := []serverState{}
		for _, b := range p.Backends() {
			list = append(list, serverState{
				Name: b.Label(), Addr: b.Addr(), ID: b.ID(), Up: b.Up(), Usable: b.Available(now),
				Draining: b.Draining(), Backup: b.Backup(), InFlight: b.InFlight(), Queue: b.QueueLen(),
				Picks: b.Picks(), Failures: b.Failures(),
			})
		}
		out[name] = list
	}
	writeJSON(w, http.StatusOK, out)
}

// adminDrain drains a server: ?deadline=30s lets sticky clients stay that
// long (default: until undrained); WebSocket tunnels are closed with 1012
// at the deadline, spread over ?spread= (default 10s).
func (d *daemon) adminDrain(w http.ResponseWriter, r *http.Request) {
	var deadline time.Time
	if v := r.URL.Query().Get("deadline"); v != "" {
		dur, err := config.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "deadline: " + err.Error()})
			return
		}
		deadline = time.Now().Add(dur)
	}
	spread := config.DefaultWebSocketCloseSpread
	if v := r.URL.Query().Get("spread"); v != "" {
		dur, err := config.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "spread: " + err.Error()})
			return
		}
		spread = dur
	}
	up, srv := r.PathValue("upstream"), r.PathValue("server")
	if err := d.edge.DrainServer(up, srv, deadline, spread); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, balancer.ErrUnknownServer) {
			status = http.StatusNotFound
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	d.log.Info("server drained through the admin listener", "upstream", up, "server", srv, "deadline", deadline)
	writeJSON(w, http.StatusOK, map[string]any{"upstream": up, "server": srv, "draining": true, "deadline": deadline})
}

func (d *daemon) adminUndrain(w http.ResponseWriter, r *http.Request) {
	up, srv := r.PathValue("upstream"), r.PathValue("server")
	rt := d.edge.Runtime()
	p := rt.Pool(up)
	if p == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown upstream " + up})
		return
	}
	if err := p.Undrain(srv); err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	d.log.Info("server undrained through the admin listener", "upstream", up, "server", srv)
	writeJSON(w, http.StatusOK, map[string]any{"upstream": up, "server": srv, "draining": false})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
