package slogzap_test

import (
	"log/slog"
	"os"

	"go.uber.org/zap"

	"github.com/gatehouse-proxy/gatehouse/internal/slogzap"
)

func ExampleNew() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output
			}
			return a
		},
	})
	z := slogzap.New(h, "certmagic").Named("obtain")
	z.Info("acquiring lock", zap.String("identifier", "example.com")) // debug in slog: filtered out
	z.Warn("retrying", zap.Int("attempt", 2))
	// Output: level=WARN msg=retrying logger=certmagic.obtain attempt=2
}
