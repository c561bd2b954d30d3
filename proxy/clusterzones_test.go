package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// sharedRecorder is the cluster side of a cluster zone as the proxy sees
// it: it records each call and refuses the zones in refuse.
type sharedRecorder struct {
	mu     sync.Mutex
	calls  [][]ratelimit.SharedQuery
	refuse map[string]time.Duration
}

func (s *sharedRecorder) AllowShared(ctx context.Context, qs []ratelimit.SharedQuery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range qs {
		retry, no := s.refuse[qs[i].Zone]
		qs[i].OK, qs[i].RetryAfter = !no, retry
	}
	s.calls = append(s.calls, append([]ratelimit.SharedQuery(nil), qs...))
}

// TestClusterZones: a route's cluster zones are asked together, once per
// request, with the whole cluster's rate and burst and the zone's client
// key; local zones stay local; a refusal from the cluster is answered
// like a local one (status, Retry-After rounded up, a strike), and a dry
// run only counts.
func TestClusterZones(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(be.Close)
	rec := &sharedRecorder{refuse: map[string]time.Duration{}}
	jail := ratelimit.NewJail(ratelimit.JailOptions{MaxRetry: 100})
	e, _ := startTestEdge(t, `
[listeners.https]
address = ""
[cluster]
url = "redis://127.0.0.1:1/0"
[zones.api]
rate = "30r/s"
burst = 60
scope = "cluster"
[zones.login]
rate = "5r/m"
scope = "cluster"
ipv6_prefix = 48
[zones.local]
rate = "1000r/s"
burst = 1000
[zones.dry]
rate = "1r/s"
scope = "cluster"
dry_run = true
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
path = "/"
upstream = "app"
limit = ["api", "local", "login", "dry"]
[upstreams.app]
servers = [{ address = "`+be.Listener.Addr().String()+`" }]
`, Deps{Zones: ratelimit.NewClusterZones(rec), Jail: jail})
	do := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/x", nil)
		r.Host = "a.example"
		r.RemoteAddr = "[2001:db8:1:2::5]:4000"
		e.ServeHTTP(w, r)
		return w
	}
	if w := do(); w.Code != 200 {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if len(rec.calls) != 1 || len(rec.calls[0]) != 3 {
		t.Fatalf("calls %+v; want one call with the 3 cluster zones", rec.calls)
	}
	q := rec.calls[0]
	if q[0].Zone != "api" || q[0].Rate != 30 || q[0].Burst != 60 || q[0].Key.String() != "2001:db8:1:2::/64" {
		t.Errorf("api query %+v", q[0])
	}
	if q[1].Zone != "login" || q[1].Rate != 5.0/60 || q[1].Burst != 1 || q[1].Key.String() != "2001:db8:1::/48" {
		t.Errorf("login query %+v", q[1])
	}
	rec.refuse["dry"] = time.Second
	if w := do(); w.Code != 200 {
		t.Errorf("a dry-run cluster zone refused: %d", w.Code)
	}
	rec.refuse["login"] = 2500 * time.Millisecond
	w := do()
	if w.Code != 429 || w.Header().Get("Retry-After") != "3" {
		t.Errorf("refused by the cluster: %d, Retry-After %q; want 429 and 3", w.Code, w.Header().Get("Retry-After"))
	}
	if jail.Tracked() != 1 {
		t.Errorf("the refusal was not counted as a strike")
	}
	if len(rec.calls) != 3 {
		t.Errorf("%d calls for 3 requests", len(rec.calls))
	}
}
