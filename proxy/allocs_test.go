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
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Allocations per operation of the hot functions, as recorded in
// docs/performance.md. TestHotPathAllocs fails when one rises: a change
// that adds an allocation to the request path must say so by raising the
// figure here (and in the doc).
const (
	// ServeHTTP of a small GET through the whole Edge, access log off:
	// the response head's value string and slice (2, upstream client)
	// and the request ID's string and header slice (2, on by default: the
	// value must outlive the pooled request state, because net/http may
	// write the head after ServeHTTP returns). The balancer's slot
	// (Backend.Acquire) costs nothing since issue 17.5. A request whose
	// context can be cancelled (every request a net/http server serves;
	// not this test's) adds the upstream client's context.AfterFunc
	// registration.
	allocsServeHTTP = 4
	// The same with [request_id] enabled = false.
	allocsServeHTTPNoID = 2
	// The same with a JSON access log line (the log entry's client
	// address string).
	allocsServeHTTPLog = 5
	// ServeHTTP of a request whose context can be cancelled, as a
	// net/http server's are: the upstream client's context.AfterFunc
	// registration, which ends a blocked backend read when the client
	// goes away (issue 13.3), adds 2 (its context and stop function).
	allocsServeHTTPCancel = 6
	// ServeHTTP with client = "net/http": http.Transport's own request
	// and response objects, the header map, the trace and timers.
	allocsServeHTTPNetHTTP = 68
	// ServeHTTP of a 2 KiB file from a file route (from the open-file
	// cache's memory): the request ID (2). A plain GET is answered
	// directly with the header values cached per file (staticfile's
	// direct path, issue 14); through http.ServeContent it was 8.
	allocsServeFile = 2
	// Compression (compress.go) adds nothing to a response it does not
	// compress: a request without Accept-Encoding, or a browser's whose
	// answer is not compressed (too short: its Vary is a shared value;
	// not a compressible type), costs allocsServeHTTP or allocsServeFile.
	// A compressed answer adds the compress.Writer and its Vary value,
	// and for a strong ETag (a file's) the weakened tag's string and
	// slice; the encoder and the buffers come from pools.
	allocsServeHTTPCompressed = allocsServeHTTP + 2
	allocsServeFileCompressed = allocsServeFile + 3 // the file's Vary is cached with it
	// One upstream round trip on a pooled connection: the response
	// head's value string and slice.
	allocsRoundTrip = 2
	allocsPick      = 0 // balancer Pool.Pick, round robin
	allocsAcquire   = 0 // balancer Backend.Acquire + Slot.Release
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

	html := "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 4096\r\n\r\n" + string(compressText(4096))
	for _, cc := range []struct {
		name, resp, ae, wantCE string
		want                   int
	}{
		{"ServeHTTP browser, short text", staticOK, "gzip, deflate, br, zstd", "", allocsServeHTTP},
		{"ServeHTTP no Accept-Encoding, 4 KiB HTML", html, "", "", allocsServeHTTP},
		{"ServeHTTP browser, 4 KiB HTML gzip", html, "gzip, deflate, br, zstd", "gzip", allocsServeHTTPCompressed},
		{"ServeHTTP 4 KiB HTML zstd", html, "zstd", "zstd", allocsServeHTTPCompressed},
		{"ServeHTTP 4 KiB HTML br", html, "br", "br", allocsServeHTTPCompressed},
	} {
		e, w, req := allocsEdge(t, benchConfigFor("off", "gatehouse"))
		useStaticUpstream(e.Runtime(), cc.resp)
		if cc.ae != "" {
			req.Header.Set("Accept-Encoding", cc.ae)
		}
		check(cc.name, cc.want, func() {
			clear(w.h)
			w.code = 0
			e.ServeHTTP(w, req)
			if w.code != 200 || w.h.Get("Content-Encoding") != cc.wantCE {
				t.Fatalf("%s: status %d, Content-Encoding %q", cc.name, w.code, w.h.Get("Content-Encoding"))
			}
		})
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "items"), bytes.Repeat([]byte("x"), 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.css"), compressText(2048), 0o644); err != nil {
		t.Fatal(err)
	}
	fileCfg := strings.Replace(benchConfigFor("off", "gatehouse"), "[[sites.app.routes]]",
		"[[sites.app.routes]]\npath = \"/api/\"\nalias = \""+dir+"\"\n\n[[sites.app.routes]]", 1)
	for _, fc := range []struct {
		name, path, ae, wantCE string
		want                   int
	}{
		{"ServeHTTP file", "/api/items", "", "", allocsServeFile},
		{"ServeHTTP file, browser, not compressible", "/api/items", "gzip, deflate, br, zstd", "", allocsServeFile},
		{"ServeHTTP file, browser, 2 KiB CSS gzip", "/api/app.css", "gzip, deflate, br, zstd", "gzip", allocsServeFileCompressed},
	} {
		e, w, req := allocsEdge(t, fileCfg)
		req.URL.Path, req.RequestURI = fc.path, fc.path
		if fc.ae != "" {
			req.Header.Set("Accept-Encoding", fc.ae)
		}
		check(fc.name, fc.want, func() {
			clear(w.h)
			w.code = 0
			e.ServeHTTP(w, req)
			if w.code != 200 || w.h.Get("Content-Encoding") != fc.wantCE {
				t.Fatalf("%s: status %d, Content-Encoding %q", fc.name, w.code, w.h.Get("Content-Encoding"))
			}
		})
	}
	// A revalidation (304) costs the same with and without a browser's
	// Accept-Encoding when it names a strong tag (a file never sent
	// compressed): it does not go through the compressor.
	var revalidate [2]float64
	for i, ae := range []string{"", "gzip, deflate, br, zstd"} {
		e, w, req := allocsEdge(t, fileCfg)
		req.URL.Path, req.RequestURI = "/api/items", "/api/items"
		e.ServeHTTP(w, req)
		req.Header.Set("If-None-Match", w.h.Get("Etag"))
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		f := func() {
			clear(w.h)
			w.code = 0
			e.ServeHTTP(w, req)
			if w.code != 304 {
				t.Fatalf("revalidation: status %d", w.code)
			}
		}
		f()
		revalidate[i] = testing.AllocsPerRun(200, f)
	}
	if revalidate[1] > revalidate[0] {
		t.Errorf("a file's 304: %.1f allocs/op with a browser's Accept-Encoding, %.1f without", revalidate[1], revalidate[0])
	} else {
		t.Logf("a file's 304: %.1f allocs/op with or without Accept-Encoding", revalidate[0])
	}

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
		slot, err := be.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		slot.Release()
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
	logs := accesslog.New()
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
