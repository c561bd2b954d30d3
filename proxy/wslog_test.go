package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketAccessLogAtClose (issue 14.6): a WebSocket's access log
// line is written when the tunnel closes, with its lifetime, the bytes in
// each direction and the close code; none is written at the 101, which
// is still counted in the metrics then. The handshake carries the request
// ID and the request header rules, and the 101 returns the ID.
func TestWebSocketAccessLogAtClose(t *testing.T) {
	handshake := make(chan http.Header, 1)
	up := websocket.Upgrader{}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handshake <- r.Header.Clone()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, append(msg, msg...)); err != nil {
				return
			}
		}
	}))
	defer be.Close()
	cfg := ruleConfig("gatehouse", be.Listener.Addr().String(), "websocket.enabled = true\n", "")
	f := newFwdEdge(t, cfg)
	base, _ := f.serve(t, false)
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", strings.TrimPrefix(base, "http://"))
	}, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://a.example/ws/", http.Header{"Origin": {"http://a.example"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 32 {
		t.Errorf("101: X-Request-Id %q", id)
	}
	h := <-handshake
	if h.Get("X-Request-Id") != id || h.Get("X-Client") != "127.0.0.1 via http to a.example" {
		t.Errorf("handshake at the backend: X-Request-Id %q X-Client %q; want %q and the rule's value", h.Get("X-Request-Id"), h.Get("X-Client"), id)
	}
	<-f.served // the 101 is answered and ServeHTTP has returned
	if strings.Contains(f.log.String(), `"status":101`) {
		t.Errorf("access log line written at the 101:\n%s", f.log.String())
	}
	if n := f.metric(t, "gatehouse_http_requests_total", "code", "1xx"); n != 1 {
		t.Errorf("gatehouse_http_requests_total{code=1xx} = %v at the 101, want 1", n)
	}
	msg := strings.Repeat("x", 1000)
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := c.ReadMessage(); err != nil || len(got) != 2000 {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(10*time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()

	var line struct {
		Status     int
		Bytes      int64
		DurationMS float64 `json:"duration_ms"`
		RequestID  string  `json:"request_id"`
		BytesIn    int64   `json:"ws_bytes_in"`
		CloseCode  int     `json:"ws_close_code"`
		CloseCause string  `json:"ws_close_cause"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range strings.Split(f.log.String(), "\n") {
			if strings.Contains(l, `"status":101`) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatalf("access log line %q: %v", l, err)
				}
			}
		}
		if line.Status == 101 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line.Status != 101 {
		t.Fatalf("no access log line after the tunnel closed:\n%s", f.log.String())
	}
	// Client frames are masked: 1000 bytes + 8 of header, + the close
	// frame; the backend's 2000 bytes + 4, + its close frame.
	if line.BytesIn < 1008 || line.Bytes < 2004 || line.CloseCode != 1000 || line.RequestID != id || line.DurationMS <= 0 {
		t.Errorf("access log line at close: %+v; want bytes in ≥ 1008, out ≥ 2004, close code 1000, request ID %s, a lifetime", line, id)
	}
}
