package edgeserver

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// h2Pair is the reset accounting of an HTTP/2 connection with a reset
// budget, over one end of a pipe; the other end sees the close.
func h2Pair(t *testing.T, budget int) (*ConnInfo, net.Conn, *Metrics) {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	m := NewMetrics(nil)
	s := &Server{o: ServerOptions{Name: "https", Logger: slog.New(slog.DiscardHandler), Metrics: m}}
	return &ConnInfo{Listener: "https", h2: &h2Conn{srv: s, raw: server, budget: int64(budget)}}, client, m
}

func closedByServer(c net.Conn) bool {
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || err == io.ErrClosedPipe
}

// TestResetBudget: cancelled requests count once the connection starts
// another request; when they outnumber the completed ones by more than
// the budget, that request is refused and the connection closed.
func TestResetBudget(t *testing.T) {
	ci, client, m := h2Pair(t, 3)
	// Completed requests give room: 2 completed, 5 cancelled is 3 over.
	for range 2 {
		if !ci.StreamStart() {
			t.Fatal("request refused on a fresh connection")
		}
		ci.StreamEnd(false)
	}
	for i := range 5 {
		if !ci.StreamStart() {
			t.Fatalf("request %d refused with %d resets and 2 completed (budget 3)", i+3, i)
		}
		ci.StreamEnd(true)
	}
	if !ci.StreamStart() {
		t.Fatal("refused at 5 resets, 2 completed: 3 over is within the budget of 3")
	}
	ci.StreamEnd(true) // the sixth reset: 4 over
	if ci.StreamStart() {
		t.Fatal("request served at 6 resets, 2 completed (4 over a budget of 3)")
	}
	if !closedByServer(client) {
		t.Error("connection not closed")
	}
	if ci.StreamStart() {
		t.Error("a later request on the closed connection was served")
	}
	if got := testutil.ToFloat64(m.h2Closed.WithLabelValues("https", "resets")); got != 1 {
		t.Errorf("connections closed for resets = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.h2Resets.WithLabelValues("https")); got != 6 {
		t.Errorf("resets counted = %v, want 6", got)
	}
}

// TestResetBudgetConnectionClose: requests cancelled because their
// connection went away are never counted: no request follows them.
func TestResetBudgetConnectionClose(t *testing.T) {
	ci, _, m := h2Pair(t, 1)
	for range 10 {
		if !ci.StreamStart() {
			t.Fatal("refused")
		}
	}
	for range 10 {
		ci.StreamEnd(true) // the connection closed under ten running requests
	}
	if got := testutil.ToFloat64(m.h2Resets.WithLabelValues("https")); got != 0 {
		t.Errorf("resets counted = %v, want 0 (no request proved the connection alive)", got)
	}
}

// TestResetBudgetOff: budget 0 counts but never closes; HTTP/1 has no
// accounting.
func TestResetBudgetOff(t *testing.T) {
	ci, _, m := h2Pair(t, 0)
	for range 1000 {
		if !ci.StreamStart() {
			t.Fatal("refused with the budget off")
		}
		ci.StreamEnd(true)
	}
	ci.StreamStart()
	if got := testutil.ToFloat64(m.h2Resets.WithLabelValues("https")); got != 1000 {
		t.Errorf("resets counted = %v, want 1000", got)
	}
	h1 := &ConnInfo{Listener: "http"}
	h1.StreamEnd(true)
	if !h1.StreamStart() {
		t.Error("HTTP/1 request refused")
	}
}
