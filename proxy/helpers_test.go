package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startTestEdge parses cfgText, builds and starts its Runtime with d, and
// serves it from a new Edge; both are closed in Cleanup. After that
// cleanup, leakcheck makes sure nothing of them is left: no goroutine of
// the project started by the test, no request in flight on the Edge or on
// an upstream server, no WebSocket tunnel, no socket to an upstream
// server. Two edges of one test must not share an upstream server: the
// check of the one torn down first would see the other's pooled sockets.
func startTestEdge(t *testing.T, cfgText string, d Deps) (*Edge, *Runtime) {
	t.Helper()
	leakcheck.Goroutines(t, modulePath)
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rt, err := Build(ctx, cfg, d)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	rt.Start()
	e := NewEdge(EdgeOptions{Metrics: d.Metrics})
	e.Swap(rt)
	var last *Runtime // the one current at teardown, if the test swapped
	checkEdgeDrained(t, e, func() []*Runtime { return []*Runtime{rt, last} })
	t.Cleanup(func() {
		if old := e.Swap(nil); old != nil {
			last = old
			old.Close()
		}
		e.Close()
	})
	return e, rt
}

// modulePath is the module's import path, for leakcheck.
const modulePath = "github.com/gatehouse-proxy/gatehouse"

// checkEdgeDrained registers the leak checks of an Edge serving the
// runtimes rts returns at cleanup: requests and tunnels at zero, each
// upstream server's slots released, no socket left to any upstream server.
// Register it before the Edge's teardown, which then runs first.
func checkEdgeDrained(t *testing.T, e *Edge, rts func() []*Runtime) {
	t.Helper()
	leakcheck.NoConnsTo(t, func() []string { return upstreamAddrs(rts()...) })
	leakcheck.Zero(t, "upstream server slots held", func() (int64, error) {
		var n int64
		for _, r := range rts() {
			if r == nil {
				continue
			}
			for _, p := range r.Pools() {
				for _, b := range p.Backends() {
					n += b.InFlight()
				}
			}
		}
		return n, nil
	})
	leakcheck.Zero(t, "WebSocket tunnels", func() (int64, error) { return int64(e.Tunnels.Len()), nil })
	leakcheck.Zero(t, "gatehouse_http_requests_in_flight", func() (int64, error) {
		return int64(testutil.ToFloat64(e.metrics.InFlight)), nil
	})
}

// upstreamAddrs lists the server addresses of the runtimes' upstreams.
func upstreamAddrs(rts ...*Runtime) []string {
	var out []string
	for _, rt := range rts {
		if rt == nil {
			continue
		}
		for _, p := range rt.Pools() {
			for _, b := range p.Backends() {
				out = append(out, b.Addr())
			}
		}
	}
	return out
}

// newTestEdge is startTestEdge with default dependencies.
func newTestEdge(t *testing.T, cfgText string) *Edge {
	t.Helper()
	e, _ := startTestEdge(t, cfgText, Deps{})
	return e
}

// TestHostLookup: exact names, one-label wildcards, the default site for
// the rest; only claimed names pass the certificate host policy.
func TestHostLookup(t *testing.T) {
	_, rt := startTestEdge(t, `
[listeners.https]
address = ""
[sites.a]
hosts = ["a.example", "*.b.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[sites.d]
default = true
tls = "off"
[[sites.d.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
`, Deps{})
	for host, want := range map[string]string{
		"a.example": "a", "x.b.example": "a", "y.x.b.example": "d", "b.example": "d", "other.test": "d",
	} {
		if got := rt.siteFor(host).cfg.Name; got != want {
			t.Errorf("siteFor(%q) = site %q, want %q", host, got, want)
		}
	}
	for host, want := range map[string]bool{
		"a.example": true, "A.Example": true, "x.b.example": true, "y.x.b.example": false, "b.example": false, "other.test": false,
	} {
		if got := rt.HostAllowed(host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}
