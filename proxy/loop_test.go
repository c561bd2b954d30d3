package proxy

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
)

// TestGoLoopRestartsAfterPanic (issue 13, "Also"): a background loop that
// panics (an upstream's health checks) is logged as an error with its
// stack, counted, and restarted after loopRestartDelay; it is not
// restarted once the generation is closed.
func TestGoLoopRestartsAfterPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedBuffer{}
		f := &fwdEdge{reg: prometheus.NewRegistry()}
		rt := &Runtime{log: slog.New(slog.NewTextHandler(logs, nil)), deps: Deps{Metrics: NewMetrics(f.reg, "test")}}
		rt.ctx, rt.cancel = context.WithCancel(context.Background())
		runs := make(chan int, 4)
		n := 0
		rt.goLoop("health", "app", func(ctx context.Context) {
			n++
			runs <- n
			if n == 1 {
				panic("probe table corrupted")
			}
			<-ctx.Done()
		})
		<-runs
		<-runs // the restart
		if got := f.metric(t, "gatehouse_background_panics_total", "loop", "health", "upstream", "app"); got != 1 {
			t.Errorf("gatehouse_background_panics_total = %v, want 1", got)
		}
		out := logs.String()
		for _, want := range []string{"level=ERROR", "background loop panicked", "probe table corrupted", "loop=health", "upstream=app", "goroutine"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		rt.Close()
		if n != 2 {
			t.Errorf("loop ran %d times, want 2", n)
		}
	})
}
