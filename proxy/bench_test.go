package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
)

// discardWriter is a minimal reusable http.ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// SetWriteDeadline and FlushError are there as on net/http's writers,
// which the handler bounds and flushes through http.ResponseController.
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) FlushError() error                { return nil }

const benchConfig = `
[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = ""

[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "ACCESSLOG"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
client = "CLIENT"
servers = [{ name = "b1", address = "127.0.0.1:9" }, { name = "b2", address = "127.0.0.2:9" }]
`

// benchConfigFor is benchConfig with an access log and an upstream client.
func benchConfigFor(accessLog, client string) string {
	return strings.NewReplacer("ACCESSLOG", accessLog, "CLIENT", client).Replace(benchConfig)
}

// BenchmarkServeHTTP measures a small GET through the whole Edge handler
// (site and route lookup, client address, balancer pick, backend request
// construction, response copy, metrics, access log) with the real
// upstream client, of each kind, on an in-memory backend connection
// (staticBackend) in place of the network.
func BenchmarkServeHTTP(b *testing.B) {
	for _, bc := range []struct {
		name, accessLog, client string
		noID                    bool
	}{
		{"nolog", "off", "gatehouse", false},
		{"nolog/no-request-id", "off", "gatehouse", true},
		{"jsonlog", "stderr", "gatehouse", false}, // the access logs' Stderr is io.Discard below
		{"nolog/net-http", "off", "net/http", false},
		{"jsonlog/net-http", "stderr", "net/http", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			text := benchConfigFor(bc.accessLog, bc.client)
			if bc.noID {
				text = "[request_id]\nenabled = false\n" + text
			}
			logs := accesslog.New()
			logs.Stdout, logs.Stderr = io.Discard, io.Discard
			e, rt := benchEdge(b, text, Deps{AccessLogs: logs})
			useStaticUpstream(rt, staticOK)

			req := httptest.NewRequest("GET", "http://app.test/api/items?page=2", nil)
			req.Header.Set("User-Agent", "bench/1.0")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Cookie", "sessionid=abc; csrftoken=def")
			ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10")}
			benchServe(b, e, req.WithContext(edgeserver.WithConnInfo(req.Context(), ci)))
		})
	}
}

// benchEdge builds a Runtime from the config text and serves it from a
// new Edge, both closed when b ends.
func benchEdge(b *testing.B, text string, d Deps) (*Edge, *Runtime) {
	b.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := Build(context.Background(), cfg, d)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEdge(EdgeOptions{})
	e.Swap(rt)
	b.Cleanup(func() { e.Close(); rt.Close() })
	return e, rt
}

// benchServe serves req on e into a reused writer, once as a warm-up and
// then b.N times; each answer must be 200. It returns the writer, with the
// last answer's header.
func benchServe(b *testing.B, e *Edge, req *http.Request) *discardWriter {
	b.Helper()
	w := &discardWriter{h: http.Header{}}
	e.ServeHTTP(w, req)
	if w.code != 200 {
		b.Fatalf("warm-up request: status %d, want 200", w.code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		w.code = 0
		e.ServeHTTP(w, req)
	}
	b.StopTimer()
	if w.code != 200 {
		b.Fatalf("status %d, want 200", w.code)
	}
	return w
}

// BenchmarkServeHTTPStatic measures a GET of a cached 2 KiB hashed CSS on
// a file route (alias) through the whole Edge handler: what Gatehouse adds
// per small static file on top of the file server and net/http.
func BenchmarkServeHTTPStatic(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "app.3f2a1b9c4d5e.css"), []byte(strings.Repeat("a", 2048)), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		noID bool
	}{
		{"request-id", false},
		{"no-request-id", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			text := `
[listeners.http]
address = "127.0.0.1:0"
[listeners.https]
address = ""
[listeners.admin]
address = ""
[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "off"
[[sites.app.routes]]
path = "/static/"
alias = "` + root + `"
`
			if bc.noID {
				text = "[request_id]\nenabled = false\n" + text
			}
			e, _ := benchEdge(b, text, Deps{})
			req := httptest.NewRequest("GET", "http://app.test/static/app.3f2a1b9c4d5e.css", nil)
			req.Header.Set("User-Agent", "bench/1.0")
			// As an edge server's HTTP/1 connection, which keeps the send
			// timeout itself.
			ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10"), SendBound: config.DefaultSendTimeout}
			benchServe(b, e, req.WithContext(edgeserver.WithConnInfo(req.Context(), ci)))
		})
	}
}
