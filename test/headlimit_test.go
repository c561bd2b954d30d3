package test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeadLimitSameOnBothProtocols: max_header_bytes (16k by default,
// plus 4 KiB for the request line and framing) means the same over
// HTTP/1.1 and HTTP/2: a head within it is served, a head over it is
// answered 431 — not 400 on HTTP/1.1, not a GOAWAY or a client-side
// refusal on HTTP/2 — and logged as too large.
func TestHeadLimitSameOnBothProtocols(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "app", nil)
	g := startGatehouse(t, baseListeners+`
[sites.a]
hosts = ["localhost"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "`+b.addr()+`" }]
`)
	for _, h2 := range []bool{false, true} {
		c := insecureClient("localhost", h2)
		tr := c.Transport.(*http.Transport)
		g.trackClient(tr)
		for _, tc := range []struct {
			cookie int
			want   int
		}{
			{15 << 10, 200}, // under max_header_bytes
			{18 << 10, 200}, // over it, within the 4 KiB slack
			{22 << 10, 431}, // over both
			{60 << 10, 431}, // far over
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+g.httpsAddr+"/", nil)
			req.Host = "localhost"
			req.Header.Set("Cookie", "big="+strings.Repeat("x", tc.cookie))
			resp, err := c.Do(req)
			if err != nil {
				cancel()
				t.Errorf("h2=%v, %d KiB cookie: %v, want %d", h2, tc.cookie>>10, err, tc.want)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode != tc.want || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Errorf("h2=%v, %d KiB cookie: %s %d, want %d", h2, tc.cookie>>10, resp.Proto, resp.StatusCode, tc.want)
			}
			if tc.want == 431 && !h2 && !resp.Close {
				t.Errorf("HTTP/1.1 431 without Connection: close")
			}
		}
	}
	// The refusal is logged by the connection's goroutine, which may still
	// be at it when the client has its answer: wait for the fourth line.
	waitUntil(t, 5*time.Second, "four \"head too large\" log lines", func() bool {
		return g.countLog("request refused: head too large") >= 4
	})
	if n := g.countLog("request refused: head too large"); n != 4 {
		t.Errorf("%d \"head too large\" log lines, want 4", n)
	}
	if n := g.countLog("request refused: ambiguous framing"); n != 0 {
		t.Errorf("an oversized head was logged as ambiguous framing")
	}
}
