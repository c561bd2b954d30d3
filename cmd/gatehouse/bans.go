package main

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// adminBans adds the ban endpoints:
//
//	GET    /bans                          list active bans
//	POST   /bans?addr=A&duration=2h&reason=R   ban an address or prefix
//	DELETE /bans?addr=A                   lift a ban
//
// A is an address or a prefix of any length (see banKey); a ban on a
// prefix refuses every address inside it.
func (d *daemon) adminBans(mux *http.ServeMux) {
	mux.HandleFunc("GET /bans", func(w http.ResponseWriter, r *http.Request) {
		if d.jail == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "bans are off ([ban] enabled = false)"})
			return
		}
		type ban struct {
			Key    string    `json:"addr"`
			Reason string    `json:"reason"`
			Since  time.Time `json:"since"`
			Until  time.Time `json:"until"`
		}
		out := []ban{}
		for _, b := range d.jail.List(time.Now()) {
			out = append(out, ban{Key: b.Key.String(), Reason: b.Reason, Since: b.Since, Until: b.Until})
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /bans", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		k, ok := d.banKey(w, r)
		if !ok {
			return
		}
		dur := d.cfg.Ban.BanTime
		if v := r.URL.Query().Get("duration"); v != "" {
			var err error
			if dur, err = config.ParseDuration(v); err != nil || dur <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "duration: must be a positive duration such as 2h"})
				return
			}
		}
		reason := r.URL.Query().Get("reason")
		if reason == "" {
			reason = "admin"
		}
		if err := d.jail.Ban(k, dur, reason); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"addr": k.String(), "banned": true, "until": time.Now().Add(dur)})
	}))
	mux.HandleFunc("DELETE /bans", d.authorized(func(w http.ResponseWriter, r *http.Request) {
		k, ok := d.banKey(w, r)
		if !ok {
			return
		}
		found, err := d.jail.Unban(k)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		if !found {
			msg := k.String() + " is not banned"
			if b, ok := d.coveringBan(r.URL.Query().Get("addr"), k); ok {
				msg += "; it lies inside the ban of " + b.Key.String() + ", lift that one"
			}
			writeJSON(w, http.StatusNotFound, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"addr": k.String(), "banned": false})
	}))
}

// banKey reads the addr parameter: an address (IPv6 widened to [limits]
// ipv6_prefix) or a prefix of any length but /0, whose bits past the
// length must be zero (192.0.2.7/24 is refused with 192.0.2.0/24 named,
// not silently widened); see ratelimit.ParseKey.
func (d *daemon) banKey(w http.ResponseWriter, r *http.Request) (ratelimit.Key, bool) {
	if d.jail == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "bans are off ([ban] enabled = false)"})
		return ratelimit.Key{}, false
	}
	addr := r.URL.Query().Get("addr")
	k, err := ratelimit.ParseKey(addr, d.cfg.Limits.IPv6Prefix)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "addr: " + err.Error()})
		return ratelimit.Key{}, false
	}
	return k, true
}

// coveringBan finds the ban that covers what addr names (key k), when
// that is not a ban of its own: a ban on k's prefix or a shorter one
// around the address.
func (d *daemon) coveringBan(addr string, k ratelimit.Key) (ratelimit.Ban, bool) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		a = k.Prefix().Addr()
	}
	b, ok := d.jail.BanOf(a, time.Now())
	if !ok || (err != nil && b.Key.Bits() > k.Bits()) {
		return ratelimit.Ban{}, false
	}
	return b, true
}
