package supervise

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestRun: a loop that panics is reported with its stack and restarted
// after the delay; a loop that returns is not; one that panics after its
// context ended is not restarted either.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var panics []string
		runs := 0
		var starts []time.Time
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, time.Second, func(ctx context.Context) {
				runs++
				starts = append(starts, time.Now())
				switch runs {
				case 1, 2:
					panic("probe table corrupted")
				case 3:
					<-ctx.Done()
					panic("after the end")
				}
			}, func(v any, stack []byte) {
				if !strings.Contains(string(stack), "goroutine") {
					t.Errorf("onPanic got no stack: %q", stack)
				}
				panics = append(panics, v.(string))
			})
		}()
		time.Sleep(time.Minute) // the bubble's clock: the two restarts are due long before
		synctest.Wait()
		if runs != 3 || len(panics) != 2 {
			t.Fatalf("runs %d, panics %v; want 3 runs, 2 panics", runs, panics)
		}
		for i := 1; i < len(starts); i++ {
			if d := starts[i].Sub(starts[i-1]); d != time.Second {
				t.Errorf("restart %d after %v, want 1s", i, d)
			}
		}
		cancel()
		<-done
		if runs != 3 || len(panics) != 3 {
			t.Errorf("after the end: runs %d, panics %v; want no restart, the panic reported", runs, panics)
		}
	})
	// A loop that returns is done.
	runs := 0
	Run(t.Context(), time.Hour, func(context.Context) { runs++ }, func(any, []byte) {})
	if runs != 1 {
		t.Errorf("a loop that returned ran %d times", runs)
	}
}
