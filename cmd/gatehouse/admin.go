package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
)

// adminControl adds the control endpoints to the admin mux. The whole mux
// sits behind adminGuard (see checkAdminRequest); authorized marks the
// handlers that change state and checks them again, so a handler mounted
// without the guard is still protected.
func (d *daemon) adminControl(mux *http.ServeMux) {
	mux.HandleFunc("GET /upstreams", d.adminUpstreams)
	mux.HandleFunc("POST /upstreams/{upstream}/servers/{server}/drain", d.authorized(d.adminDrain))
	mux.HandleFunc("POST /upstreams/{upstream}/servers/{server}/undrain", d.authorized(d.adminUndrain))
	d.adminBans(mux)
}

func (d *daemon) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.refuseAdmin(w, r) {
			return
		}
		h(w, r)
	}
}

// adminGuard runs the admin request parser on every request of the admin
// listener, reads included.
func (d *daemon) adminGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.refuseAdmin(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseAdmin answers and logs a request checkAdminRequest refuses, and
// reports whether it did.
func (d *daemon) refuseAdmin(w http.ResponseWriter, r *http.Request) bool {
	p := d.adminPolicy.Load()
	if p == nil {
		p = &adminPolicy{} // no config yet: the strictest policy
	}
	ref := checkAdminRequest(r, p)
	if ref == nil {
		return false
	}
	d.log.Warn("admin request refused", "method", r.Method, "path", r.URL.Path, "host", r.Host,
		"origin", r.Header.Get("Origin"), "remote", r.RemoteAddr, "status", ref.status, "reason", ref.msg)
	if ref.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse admin"`)
	}
	writeJSON(w, ref.status, map[string]string{"error": ref.msg})
	return true
}

// adminPolicy is what the admin request parser takes from the
// configuration; a reload swaps it.
type adminPolicy struct {
	// token is listeners.admin.token ("": state changes must be
	// same-origin instead).
	token string
	// hosts are listeners.admin.hosts: names accepted in Host besides IP
	// literals and localhost, lower case, without a port.
	hosts []string
	// csrf is the per-process token a tokenless state change must carry
	// in X-CSRF-Token ("": no tokenless state change is accepted). The
	// status page embeds it; GET /csrf-token returns it.
	csrf string
}

func newAdminPolicy(a config.Admin, csrf string) *adminPolicy {
	return &adminPolicy{token: a.Token, hosts: slices.Clone(a.Hosts), csrf: csrf}
}

// adminRefusal is why checkAdminRequest refused a request.
type adminRefusal struct {
	status int
	msg    string
}

// checkAdminRequest is the admin request parser: it decides whether a
// request may reach the admin listener's handlers, and returns nil when it
// may. The admin listener is plain HTTP on loopback, so the attacker it
// guards against is a web page in the operator's browser:
//
//   - DNS rebinding: a page on evil.example re-resolves its own name to
//     127.0.0.1 and reads or posts to the listener as same-origin. Every
//     request, reads included, must name the listener in Host: an IP
//     literal (which cannot be rebound), localhost, or a name in
//     listeners.admin.hosts. Anything else gets 421.
//   - Cross-site requests: any page can send a "simple" POST (form or
//     text/plain body, or no body) without a CORS preflight. A request
//     that is not GET or HEAD must carry either the token (when one is
//     set; 401 otherwise) or, when none is set, be same-origin and prove
//     it (403 otherwise): exactly one Origin header whose host is the
//     request's Host, no Sec-Fetch-Site other than same-origin or none,
//     and the per-process CSRF token in X-CSRF-Token. A missing Origin is
//     refused too: old browsers omit it on cross-site requests, and a
//     tool such as curl can add it. The CSRF token is what only a
//     same-origin reader has (the status page embeds it, GET /csrf-token
//     returns it; no other origin can read either), and a cross-site page
//     cannot send the header without a CORS preflight, which fails.
//   - Such a request carries no body or a JSON one: form, multipart and
//     text/plain bodies, the ones a page can send cross-site, get 415.
//
// GET and HEAD (/, /status.json, /csrf-token, /metrics, /healthz,
// /readyz, /upstreams, /bans) need only the Host check, so Prometheus and
// curl work unchanged.
func checkAdminRequest(r *http.Request, p *adminPolicy) *adminRefusal {
	if !adminHostAllowed(r.Host, p.hosts) {
		return &adminRefusal{http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not this admin listener: use its IP address or localhost, or add the name to listeners.admin.hosts", r.Host)}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if ref := checkAdminBody(r); ref != nil {
		return ref
	}
	if p.token != "" {
		got := r.Header.Values("Authorization")
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte("Bearer "+p.token)) != 1 {
			return &adminRefusal{http.StatusUnauthorized, "missing or wrong bearer token"}
		}
		return nil
	}
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) == 0:
		return &adminRefusal{http.StatusForbidden, fmt.Sprintf("%s needs the admin token, or an Origin header naming this listener and the CSRF token (curl -H 'Origin: http://%s' -H \"X-CSRF-Token: $(curl -s http://%s/csrf-token)\"); set listeners.admin.token for scripts", r.Method, r.Host, r.Host)}
	case len(origins) > 1:
		return &adminRefusal{http.StatusForbidden, "more than one Origin header"}
	case !sameOrigin(origins[0], r.Host):
		return &adminRefusal{http.StatusForbidden, fmt.Sprintf("cross-origin request from %q refused", origins[0])}
	}
	switch site := r.Header.Values("Sec-Fetch-Site"); {
	case len(site) > 1:
		return &adminRefusal{http.StatusForbidden, "more than one Sec-Fetch-Site header"}
	case len(site) == 1 && site[0] != "same-origin" && site[0] != "none":
		return &adminRefusal{http.StatusForbidden, fmt.Sprintf("Sec-Fetch-Site %q: only same-origin requests may change state", site[0])}
	}
	switch got := r.Header.Values("X-Csrf-Token"); {
	case len(got) > 1:
		return &adminRefusal{http.StatusForbidden, "more than one X-CSRF-Token header"}
	case len(got) == 0 || p.csrf == "" || subtle.ConstantTimeCompare([]byte(got[0]), []byte(p.csrf)) != 1:
		return &adminRefusal{http.StatusForbidden, fmt.Sprintf("%s needs the X-CSRF-Token the status page sends (a page loaded before a restart has a stale one: reload it); from a script, send the one GET /csrf-token returns, or set listeners.admin.token", r.Method)}
	}
	return nil
}

// checkAdminBody refuses the bodies a web page can send cross-site
// without a preflight: a state change carries no body, or JSON.
func checkAdminBody(r *http.Request) *adminRefusal {
	cts := r.Header.Values("Content-Type")
	if len(cts) > 1 {
		return &adminRefusal{http.StatusUnsupportedMediaType, "more than one Content-Type header"}
	}
	ct := ""
	if len(cts) == 1 {
		ct = strings.TrimSpace(cts[0])
	}
	if ct == "" {
		if r.ContentLength != 0 {
			return &adminRefusal{http.StatusUnsupportedMediaType, "a request body needs Content-Type: application/json"}
		}
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return &adminRefusal{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q refused: send no body, or application/json", ct)}
	}
	return nil
}

// adminHostAllowed reports whether host (a Host header: name or IP
// literal, optionally with a port) names the admin listener.
func adminHostAllowed(host string, names []string) bool {
	name, ip, ok := splitAdminHost(host)
	switch {
	case !ok:
		return false
	case ip, name == "localhost":
		return true
	}
	return slices.Contains(names, name)
}

// splitAdminHost splits a Host header into its lower-case name (without
// brackets, port and one trailing dot) and whether it is an IP literal.
// ok is false for anything malformed.
func splitAdminHost(host string) (name string, ip, ok bool) {
	port := ""
	if rest, found := strings.CutPrefix(host, "["); found {
		lit, after, found := strings.Cut(rest, "]")
		if !found {
			return "", false, false
		}
		if after != "" {
			if after[0] != ':' {
				return "", false, false
			}
			port = after[1:]
			if !validPort(port) {
				return "", false, false
			}
		}
		a, err := netip.ParseAddr(lit)
		if err != nil || !a.Is6() {
			return "", false, false
		}
		return strings.ToLower(lit), true, true
	}
	name = host
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i+1:]
		if !validPort(port) {
			return "", false, false
		}
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" || strings.ContainsAny(name, ":[]") {
		return "", false, false
	}
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
		return name, true, true
	}
	return name, false, true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// sameOrigin reports whether origin (an Origin header) is the origin of a
// page served under host: http or https, and the same host and port.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Opaque != "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return false
	}
	return strings.EqualFold(u.Host, host)
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
