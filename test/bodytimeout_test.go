package test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBodyTotalDeadline: a request body trickled one byte every 300 ms
// never trips the gap timeout (client_body = 1s), which is all nginx's
// client_body_timeout checks, yet it is cut at client_body_total with 408,
// and the connection is closed.
func TestBodyTotalDeadline(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	g := startGatehouse(t, plainOnly+`
[timeouts]
client_body = "1s"
client_body_total = "2s"
`+plainSite(be.addr()))

	c, err := net.DialTimeout("tcp", g.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 100 // far more than the 2 s allow at 300 ms a byte
	start := time.Now()
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", size)

	type result struct {
		after time.Duration
		data  string
	}
	done := make(chan result, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(25 * time.Second))
		b, _ := io.ReadAll(c)
		done <- result{time.Since(start), string(b)}
	}()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	var res result
loop:
	for i := 0; i < size; i++ {
		select {
		case res = <-done:
			break loop
		case <-tick.C:
			if _, err := c.Write([]byte{'x'}); err != nil {
				res = <-done
				break loop
			}
		}
	}
	if res.after == 0 {
		t.Fatal("the trickled body was never cut")
	}
	// The total timer starts after start, so the cut cannot come sooner
	// than 2 s; the upper bound is half the time the whole body takes
	// (load delays the cut, it does not make the trickle faster).
	if res.after < 2*time.Second || res.after > size*300*time.Millisecond/2 {
		t.Errorf("connection ended after %v, want at client_body_total (2 s)", res.after.Round(time.Millisecond))
	}
	if !strings.HasPrefix(res.data, "HTTP/1.1 408") {
		t.Errorf("client got %q, want a 408 response", firstLine(res.data))
	}
	// The backend may have seen the head and part of the body (it streams),
	// but never the whole body.
	for _, s := range be.requests() {
		if s.URI == "/upload" && s.Body == size && s.BodyErr == nil {
			t.Errorf("backend received the whole trickled body")
		}
	}
}
