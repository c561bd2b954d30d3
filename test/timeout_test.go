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

	"github.com/gatehouse-proxy/gatehouse/config"
)

// TestHeaderTimeout is the slowloris defence: with client_header = "1s", a
// client trickling its request head one byte every 300 ms is disconnected
// after a second (not sooner, and well before the 12 s default that would
// apply were the setting ignored, nor never, as a per-read timeout that
// each byte renewed would do), while another client, sent during the
// trickle, is served normally.
func TestHeaderTimeout(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	g := startGatehouse(t, plainOnly+`
[timeouts]
client_header = "1s"
`+plainSite(be.addr()))

	start := time.Now() // the timer starts when the edge accepts, after this
	c, err := net.DialTimeout("tcp", g.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := io.ReadAll(c) // returns at EOF or reset
		closed <- readResult{time.Since(start), string(b), err}
	}()

	type getResult struct {
		code int
		err  error
	}
	normal := make(chan getResult, 1)
	ordinary := func() {
		resp, err := plainClient().Do(mustRequest("GET", "http://"+g.httpAddr+"/normal", "app.test"))
		if err != nil {
			normal <- getResult{0, err}
			return
		}
		resp.Body.Close()
		normal <- getResult{resp.StatusCode, nil}
	}

	var res readResult
	launched := false
	tick := time.NewTicker(300 * time.Millisecond) // the trickle's pace
	defer tick.Stop()
trickle:
	for i := 0; i < 60; i++ { // at most 18 s
		select {
		case res = <-closed:
			break trickle
		case <-tick.C:
			if _, err := c.Write([]byte{'a'}); err != nil {
				res = <-closed
				break trickle
			}
			if !launched {
				launched = true
				go ordinary() // during the trickle
			}
		}
	}
	if !launched {
		go ordinary()
	}
	if res.after == 0 {
		t.Fatalf("trickling client still connected after 18 s; want it cut after 1 s")
	}
	if isTimeout(res.err) {
		t.Fatalf("trickling client not disconnected within 20 s (read timed out); want 1 s")
	}
	if res.after < time.Second || res.after >= config.DefaultClientHeaderTimeout {
		t.Errorf("trickling client disconnected after %v, want client_header (1 s), well before the %v default",
			res.after.Round(time.Millisecond), config.DefaultClientHeaderTimeout)
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

// TestSSEStreaming: a backend sends 3 events, flushing each, and sends
// the next only once the client has received the previous one; over both
// the plain listener (HTTP/1.1) and TLS (HTTP/2) every event must reach
// the client on its own. A proxy that buffered the response would hold
// the first event back and the exchange would stall: no timing is
// measured, so the test holds on a loaded machine.
func TestSSEStreaming(t *testing.T) {
	t.Parallel()
	const events = 3
	// received carries the client's acknowledgements to the backend.
	received := make(chan int)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // before the backend is closed
	be := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for i := 1; i <= events; i++ {
			fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case got := <-received:
				if got != i {
					return
				}
			case <-r.Context().Done():
				return
			case <-stop:
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
			resp, err := mode.client.Do(mustRequest("GET", mode.url, "app.test"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != mode.proto {
				t.Fatalf("status %d over HTTP/%d, want 200 over HTTP/%d", resp.StatusCode, resp.ProtoMajor, mode.proto)
			}
			// The client's own timeout (10 s) ends a stalled read.
			br := bufio.NewReader(resp.Body)
			for i := 1; i <= events; {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("event %d was not delivered before the backend sent more (it waits for it): %v", i, err)
				}
				if line != fmt.Sprintf("data: event %d\n", i) {
					continue
				}
				select {
				case received <- i:
				case <-time.After(10 * time.Second):
					t.Fatalf("backend not waiting for event %d's acknowledgement", i)
				}
				i++
			}
		})
	}
}
