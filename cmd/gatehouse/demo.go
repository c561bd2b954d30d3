package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// cmdDemo starts two small demo backends in-process (a JSON endpoint,
// /health/, server-sent events, a WebSocket echo at /ws/echo) and
// Gatehouse in front of them, and prints the URLs to open.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	httpAddr := fs.String("http", "127.0.0.1:8080", "plain HTTP listener")
	httpsAddr := fs.String("https", "127.0.0.1:8443", "HTTPS listener (self-signed certificate)")
	adminAddr := fs.String("admin", "127.0.0.1:9180", "admin listener (metrics)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gatehouse demo [-http ADDR] [-https ADDR] [-admin ADDR]\n\nRuns Gatehouse in front of two in-process demo backends.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	var backends []string
	info := &demoInfo{}
	for i := 1; i <= 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
			return 1
		}
		srv := &http.Server{Handler: demoBackend(fmt.Sprintf("demo-%d", i), info), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		backends = append(backends, ln.Addr().String())
	}
	state, err := os.MkdirTemp("", "gatehouse-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(state)
	cfg := fmt.Sprintf(demoConfig, *httpAddr, *httpsAddr, *adminAddr, backends[0], backends[1])
	src := source{embedded: []byte(cfg), stateDir: state}
	return serve(ctx, src, stderr, func(d *daemon) {
		// The bound addresses (a flag of ":0" picks free ports).
		httpPort, httpsPort, admin := port(*httpAddr), port(*httpsAddr), *adminAddr
		for _, s := range d.servers {
			if s.Name() == "https" {
				httpsPort = port(s.Addr().String())
			} else {
				httpPort = port(s.Addr().String())
			}
		}
		if d.adminAddr != "" {
			admin = d.adminAddr
		}
		info.setAdmin("http://" + admin + "/")
		https := "https://localhost:" + httpsPort
		fmt.Fprintf(stdout, `
Gatehouse demo is running, in front of two backends (%s, %s).

  %s/              a page that explains what you see (JSON for curl)
  %s/events/       server-sent events, streamed as they come
  %s/ws/echo       WebSocket echo (wss://)
  http://localhost:%s/  redirects to HTTPS
  http://%s/         the status page (admin listener, loopback only)
  http://%s/metrics  Prometheus metrics

The certificate is self-signed: use curl -k, or accept it in the browser.
  curl -k %s/                          which backend answered, the headers it got
  curl -k -c - -o /dev/null %s/        the sticky cookie Gatehouse sets
Press Ctrl-C to stop.
`, backends[0], backends[1], https, https, "wss://localhost:"+httpsPort, httpPort, admin, admin, https, https)
	})
}

// demoInfo is what the demo backends know of the Gatehouse in front of
// them: its admin address is known only once it listens.
type demoInfo struct {
	mu    sync.Mutex
	admin string // the status page's URL; "" until known
}

func (i *demoInfo) setAdmin(url string) {
	i.mu.Lock()
	i.admin = url
	i.mu.Unlock()
}

func (i *demoInfo) adminURL() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.admin
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

const demoConfig = `
[log]
level = "info"

[listeners.http]
address = %q

[listeners.https]
address = %q

[listeners.admin]
address = %q

[sites.demo]
hosts = ["localhost", "127.0.0.1"]
default = true
tls = "self_signed"
hsts = "off"               # a browser would remember HSTS for localhost

[[sites.demo.routes]]
path = "/"
upstream = "demo"

[[sites.demo.routes]]
path = "/ws/"
upstream = "demo"
websocket = { enabled = true, origins = ["*"] }

[[sites.demo.routes]]
path = "/health/"
upstream = "demo"
access_log = false

[upstreams.demo]
policy = "round_robin"
servers = [
  { name = "demo-1", address = %q },
  { name = "demo-2", address = %q },
]
sticky = { cookie = "SERVERID" }
health = { path = "/health/", interval = "2s", timeout = "1s" }
`

// demoBackend is a stand-in for Daphne.
func demoBackend(name string, info *demoInfo) http.Handler {
	mux := http.NewServeMux()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("/health/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/ws/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte("hello from "+name))
		for {
			t, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(t, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/events/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(w, "data: {\"backend\": %q, \"event\": %d}\n\n", name, i)
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		headers := map[string]string{}
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			headers[k] = strings.Join(r.Header[k], ", ")
		}
		if strings.Contains(r.Header.Get("Accept"), "text/html") {
			// A browser: the page that says what it is looking at.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_ = demoPage.Execute(w, demoPageData(name, r, keys, info.adminURL()))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"backend": name,
			"method":  r.Method,
			"host":    r.Host,
			"path":    r.URL.RequestURI(),
			"headers": headers,
		})
	})
	return mux
}
