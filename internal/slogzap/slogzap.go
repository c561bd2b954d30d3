// Package slogzap gives libraries that log through zap (certmagic and
// acmez) a *zap.Logger that writes into a log/slog handler, so their
// lines land in Gatehouse's log with its format and level filter. Such
// libraries narrate every step at info level, so levels are shifted down
// one step (see [New]).
package slogzap

import (
	"context"
	"log/slog"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap logger that writes into h. Every record carries the
// attribute logger=name, or logger=name.sub for a logger from
// Named("sub"). certmagic narrates every step of its work at info level
// ("acquiring lock", "waiting on internal rate limiter", ...), so levels
// are shifted down one step: zap info becomes slog debug and zap debug is
// dropped below slog debug (visible only with a handler that enables
// slog.LevelDebug-4). Warnings and errors keep their level. The events an
// operator needs at info level (for certmagic: certificate obtained,
// renewed, failed) are the caller's to log.
func New(h slog.Handler, name string) *zap.Logger {
	return zap.New(&slogCore{h: h, name: name})
}

// slogCore is a zapcore.Core writing records to a slog.Handler.
type slogCore struct {
	h     slog.Handler
	name  string      // value of the logger attribute
	attrs []slog.Attr // from With
}

// slogLevel maps a zap level to the slog level it is logged at.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, name: c.name, attrs: append(slices.Clip(c.attrs), fieldAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", c.name+"."+e.LoggerName))
	} else {
		r.AddAttrs(slog.String("logger", c.name))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// fieldAttrs converts zap fields to slog attributes, in key order.
func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	return attrs
}

// Interface guard.
var _ zapcore.Core = (*slogCore)(nil)
