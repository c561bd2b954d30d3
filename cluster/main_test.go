package cluster

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps the Redis client library's own messages (failed dials
// while a test has stopped its redis-server) out of the test output.
func TestMain(m *testing.M) {
	LogClientTo(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
