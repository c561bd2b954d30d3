// Package supervise runs background loops that must not die silently: a
// loop that panics is reported and started again, until its context ends.
// The caller owns the goroutine Run is called on.
package supervise

import (
	"context"
	"runtime/debug"
	"time"
)

// Run calls f(ctx) and returns when f returns normally or ctx ends. When
// f panics, Run calls onPanic with the panic value and the stack, then,
// unless ctx has ended, waits delay (a loop that panics at once every
// time must not spin) and calls f again. onPanic must not panic.
func Run(ctx context.Context, delay time.Duration, f func(ctx context.Context), onPanic func(v any, stack []byte)) {
	for once(ctx, f, onPanic) {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// once runs f; it reports whether f panicked while ctx is still open (so
// it must be restarted).
func once(ctx context.Context, f func(ctx context.Context), onPanic func(v any, stack []byte)) (restart bool) {
	defer func() {
		if v := recover(); v != nil {
			onPanic(v, debug.Stack())
			restart = ctx.Err() == nil
		}
	}()
	f(ctx)
	return false
}
