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
