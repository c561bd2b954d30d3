package proxy

import (
	"bytes"
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

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Allocations per operation of the hot functions, as recorded in
// docs/performance.md. TestHotPathAllocs fails when one rises: a change
// that adds an allocation to the request path must say so by raising the
// figure here (and in the doc).
const (
	// ServeHTTP of a small GET through the whole Edge, access log off:
	// the response head's value string and slice (2, upstream client),
	// the balancer's release closure (2, Backend.Acquire) and the
	// request ID's string and header slice (2, on by default: the value
	// must outlive the pooled request state, because net/http may write
	// the head after ServeHTTP returns). A request whose context can be
	// cancelled (every request a net/http server serves; not this
	// test's) adds the upstream client's context.AfterFunc registration.
	allocsServeHTTP = 6
	// The same with [request_id] enabled = false.
	allocsServeHTTPNoID = 4
	// The same with a JSON access log line (the log entry's client
	// address string).
	allocsServeHTTPLog = 7
	// ServeHTTP of a request whose context can be cancelled, as a
	// net/http server's are: the upstream client's context.AfterFunc
	// registration, which ends a blocked backend read when the client
	// goes away (issue 13.3), adds 2 (its context and stop function).
	allocsServeHTTPCancel = 8
	// ServeHTTP with client = "net/http": http.Transport's own request
	// and response objects, the header map, the trace and timers.
	allocsServeHTTPNetHTTP = 70
	// ServeHTTP of a 2 KiB file from a file route (from the open-file
	// cache's memory): the request ID (2), and http.ServeContent's own
	// (Last-Modified, Content-Length and Accept-Ranges values, its
	// LimitedReader: 6).
	allocsServeFile = 8
	// One upstream round trip on a pooled connection: the response
	// head's value string and slice.
	allocsRoundTrip = 2
	allocsPick      = 0 // balancer Pool.Pick, round robin
	allocsAcquire   = 2 // balancer Backend.Acquire + release
	allocsAllowAt   = 0 // ratelimit Zone.AllowAt on a tracked key
)

func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	check := func(name string, want int, f func()) {
		t.Helper()
		f() // warm pools and lazily built state
		if got := testing.AllocsPerRun(200, f); got > float64(want) {
			t.Errorf("%s: %.1f allocs/op, recorded figure %d (docs/performance.md)", name, got, want)
		} else {
			t.Logf("%s: %.1f allocs/op (limit %d)", name, got, want)
		}
	}

	for _, lc := range []struct {
		name, accessLog, client string
		cancellable, noID       bool
		want                    int
	}{
		{"ServeHTTP", "off", "gatehouse", false, false, allocsServeHTTP},
		{"ServeHTTP request_id off", "off", "gatehouse", false, true, allocsServeHTTPNoID},
		{"ServeHTTP+accesslog", "stderr", "gatehouse", false, false, allocsServeHTTPLog},
		{"ServeHTTP cancellable", "off", "gatehouse", true, false, allocsServeHTTPCancel},
		{"ServeHTTP client=net/http", "off", "net/http", true, false, allocsServeHTTPNetHTTP},
	} {
		prefix := ""
		if lc.noID {
			prefix = "[request_id]\nenabled = false\n"
		}
		e, w, req := allocsEdge(t, prefix+benchConfigFor(lc.accessLog, lc.client))
		if lc.cancellable {
			ctx, cancel := context.WithCancel(req.Context())
			defer cancel()
			req = req.WithContext(ctx)
		}
		check(lc.name, lc.want, func() {
			clear(w.h)
			w.code = 0
			e.ServeHTTP(w, req)
			if w.code != 200 {
				t.Fatalf("%s: status %d", lc.name, w.code)
			}
		})
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "items"), bytes.Repeat([]byte("x"), 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	fileCfg := strings.Replace(benchConfigFor("off", "gatehouse"), "[[sites.app.routes]]",
		"[[sites.app.routes]]\npath = \"/api/\"\nalias = \""+dir+"\"\n\n[[sites.app.routes]]", 1)
	e, w, req := allocsEdge(t, fileCfg)
	check("ServeHTTP file", allocsServeFile, func() {
		clear(w.h)
		w.code = 0
		e.ServeHTTP(w, req)
		if w.code != 200 {
			t.Fatalf("file: status %d", w.code)
		}
	})

	c := uhttp.New(staticOptions(staticOK))
	defer c.Close()
	var buf [64]byte
	up := uhttp.Request{Addr: "192.0.2.1:80", Method: "GET", Target: "/", Host: "a",
		Header: uhttp.HeaderFields{"X-Test": {"1"}}, HeaderTimeout: time.Minute}
	check("upstream round trip", allocsRoundTrip, func() {
		resp, err := c.Do(context.Background(), &up)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf[:]); err != nil {
				break
			}
		}
		resp.Body.Close()
	})

	pool, err := balancer.New(balancer.NewRegistry(), balancer.Options{Name: "app", Policy: "round_robin", Servers: []balancer.Server{
		{Name: "a", Host: "10.0.0.1", Port: 80, Weight: 1}, {Name: "b", Host: "10.0.0.2", Port: 80, Weight: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	key := balancer.Key{Client: netip.MustParseAddr("192.0.2.7")}
	check("balancer Pick", allocsPick, func() { pool.Pick(key) })
	be, _ := pool.Pick(key)
	check("balancer Acquire", allocsAcquire, func() {
		rel, err := be.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rel()
	})

	z, err := ratelimit.NewZone(ratelimit.ZoneOptions{Rate: 1e9, Burst: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	k := ratelimit.KeyOf(netip.MustParseAddr("192.0.2.9"), 64)
	now := time.Unix(1_700_000_000, 0)
	check("ratelimit Zone.AllowAt", allocsAllowAt, func() { z.AllowAt(k, now) })
}

// allocsEdge is BenchmarkServeHTTP's setup for cfgText with an
// origin-form request, as a server hands it to the handler.
func allocsEdge(t *testing.T, cfgText string) (*Edge, *discardWriter, *http.Request) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	logs := NewAccessLogs()
	logs.Stdout, logs.Stderr = io.Discard, io.Discard
	rt, err := Build(context.Background(), cfg, Deps{AccessLogs: logs})
	if err != nil {
		t.Fatal(err)
	}
	useStaticUpstream(rt, staticOK)
	e := NewEdge(EdgeOptions{})
	e.Swap(rt)
	t.Cleanup(func() { e.Swap(nil); rt.Close(); e.Close() })
	req := httptest.NewRequest("GET", "/api/items?page=2", nil)
	req.Host = "app.test"
	req.Header.Set("User-Agent", "bench/1.0")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", "sessionid=abc; csrftoken=def")
	ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10")}
	req = req.WithContext(edgeserver.WithConnInfo(req.Context(), ci))
	return e, &discardWriter{h: http.Header{}}, req
}
