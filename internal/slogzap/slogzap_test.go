package slogzap

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// logLines runs log against a debug-level text handler and returns the
// lines it wrote.
func logLines(t *testing.T, log func(z *zap.Logger)) []string {
	t.Helper()
	var buf bytes.Buffer
	log(New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), "certmagic"))
	t.Log(buf.String())
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

// find returns the first of lines logged at level (e.g. "ERROR") that
// contains every one of subs.
func find(lines []string, level string, subs ...string) (string, bool) {
next:
	for _, l := range lines {
		if !strings.Contains(l, "level="+level+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return l, true
	}
	return "", false
}

// TestZapLogLevels: certmagic's info lines arrive at debug level with
// their fields, warnings and errors keep their level, and zap debug is
// dropped by a debug-level handler.
func TestZapLogLevels(t *testing.T) {
	logs := logLines(t, func(z *zap.Logger) {
		z = z.Named("obtain").With(zap.String("identifier", "a.example"))
		z.Debug("noise")
		z.Info("lock acquired", zap.Int("attempt", 2))
		z.Warn("slow")
		z.Error("failed", zap.Error(errors.New("boom")))
	})
	if _, ok := find(logs, "DEBUG", `msg="lock acquired"`, "logger=certmagic.obtain", "identifier=a.example", "attempt=2"); !ok {
		t.Error("info line not logged at debug with its fields")
	}
	if _, ok := find(logs, "WARN", "slow"); !ok {
		t.Error("warning lost")
	}
	if _, ok := find(logs, "ERROR", "failed", "error=boom"); !ok {
		t.Error("error lost")
	}
	if _, ok := find(logs, "DEBUG", "noise"); ok {
		t.Error("zap debug logged")
	}
}

// TestLoggerName: a logger without Named carries the bare name.
func TestLoggerName(t *testing.T) {
	logs := logLines(t, func(z *zap.Logger) { z.Warn("hello") })
	if l, ok := find(logs, "WARN", "hello"); !ok || !strings.HasSuffix(l, " logger=certmagic") {
		t.Errorf("unnamed logger's line %q, want it to end in logger=certmagic", l)
	}
}
