package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeaderTimeout is the slowloris defence: with client_header = "1s", a
// client trickling its request head one byte every 300 ms is disconnected
// after about a second, while another client is served normally.
func TestHeaderTimeout(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	g := startGatehouse(t, plainOnly+`
[timeouts]
client_header = "1s"
`+plainSite(be.addr()))

	c, err := net.DialTimeout("tcp", g.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: app.test\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}

	type readResult struct {
		after time.Duration
		data  string
		err   error
	}
	closed := make(chan readResult, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c) // returns at EOF or reset
		closed <- readResult{time.Since(start), string(b), err}
	}()

	type getResult struct {
		code int
		err  error
	}
	normal := make(chan getResult, 1)
	go func() {
		// Half way through the trickle, an ordinary client.
		time.Sleep(500 * time.Millisecond)
		resp, err := plainClient().Do(mustRequest("GET", "http://"+g.httpAddr+"/normal", "app.test"))
		if err != nil {
			normal <- getResult{0, err}
			return
		}
		resp.Body.Close()
		normal <- getResult{resp.StatusCode, nil}
	}()

	var res readResult
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
trickle:
	for i := 0; i < 20; i++ { // at most 6 s
		select {
		case res = <-closed:
			break trickle
		case <-tick.C:
			if _, err := c.Write([]byte{'a'}); err != nil {
				res = <-closed
				break trickle
			}
		}
	}
	if res.after == 0 {
		t.Fatalf("trickling client still connected after 6 s; want it cut after ~1 s")
	}
	if isTimeout(res.err) {
		t.Fatalf("trickling client not disconnected within 5 s (read timed out); want ~1 s")
	}
	if res.after < 800*time.Millisecond || res.after > 3*time.Second {
		t.Errorf("trickling client disconnected after %v, want about 1 s (0.8–3 s)", res.after.Round(time.Millisecond))
	}
	if strings.HasPrefix(res.data, "HTTP/1.1 2") {
		t.Errorf("trickling client got a success response: %q", res.data)
	}
	n := <-normal
	if n.err != nil || n.code != 200 {
		t.Errorf("ordinary client during the trickle: status %d, err %v; want 200", n.code, n.err)
	}
	for _, s := range be.requests() {
		if s.URI == "/slow" {
			t.Errorf("backend received the trickled request")
		}
	}
}

func mustRequest(method, url, host string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	req.Host = host
	return req
}

// TestSSEStreaming: a backend sends 3 events 300 ms apart, flushing each;
// the client must receive every event before the backend sends the next,
// over both the plain listener (HTTP/1.1) and TLS (HTTP/2).
func TestSSEStreaming(t *testing.T) {
	t.Parallel()
	const events = 3
	sent := make(chan time.Time, 16)
	be := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for i := 1; i <= events; i++ {
			if i > 1 {
				time.Sleep(300 * time.Millisecond)
			}
			sent <- time.Now()
			fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	g := startGatehouse(t, baseListeners+fmt.Sprintf(`
[sites.app]
hosts = ["app.test"]
tls = "self_signed"
redirect_https = false
hsts = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "sse", address = %q }]
`, be.addr()))

	for _, mode := range []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"http1-plain", "http://" + g.httpAddr + "/events/", plainClient(), 1},
		{"http2-tls", "https://" + g.httpsAddr + "/events/", insecureClient("app.test", true), 2},
	} {
		t.Run(mode.name, func(t *testing.T) {
			for len(sent) > 0 {
				<-sent
			}
			resp, err := mode.client.Do(mustRequest("GET", mode.url, "app.test"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != mode.proto {
				t.Fatalf("status %d over HTTP/%d, want 200 over HTTP/%d", resp.StatusCode, resp.ProtoMajor, mode.proto)
			}
			br := bufio.NewReader(resp.Body)
			var arrived []time.Time
			for len(arrived) < events {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("after %d events: %v", len(arrived), err)
				}
				if strings.HasPrefix(line, "data: ") {
					arrived = append(arrived, time.Now())
				}
			}
			var sentAt []time.Time
			for i := 0; i < events; i++ {
				select {
				case s := <-sent:
					sentAt = append(sentAt, s)
				case <-time.After(5 * time.Second):
					t.Fatal("backend did not report its sends")
				}
			}
			for i := 1; i < events; i++ {
				if !arrived[i-1].Before(sentAt[i]) {
					t.Errorf("event %d arrived %v after event %d was sent: events are buffered, not streamed",
						i, arrived[i-1].Sub(sentAt[i]), i+1)
				}
				if gap := arrived[i].Sub(arrived[i-1]); gap < 200*time.Millisecond {
					t.Errorf("gap between events %d and %d = %v, want ≥ 200 ms (arrivals bunched together)", i, i+1, gap)
				}
			}
		})
	}
}
