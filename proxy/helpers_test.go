package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
)

// startTestEdge parses cfgText, builds and starts its Runtime with d, and
// serves it from a new Edge; both are closed in Cleanup.
func startTestEdge(t *testing.T, cfgText string, d Deps) (*Edge, *Runtime) {
	t.Helper()
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
	t.Cleanup(func() {
		if old := e.Swap(nil); old != nil {
			old.Close()
		}
		e.Close()
	})
	return e, rt
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
