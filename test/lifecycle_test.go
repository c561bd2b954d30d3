package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// twoBackendSite routes app.test (no TLS) to an upstream of two servers;
// zoneRate differs between otherwise identical configs.
func twoBackendSite(a, b, zoneRate string) string {
	return fmt.Sprintf(`
[zones.unused]
rate = %q
burst = 5

[sites.app]
hosts = ["app.test"]
tls = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "b1", address = %q }, { name = "b2", address = %q }]
`, zoneRate, a, b)
}

// TestReloadUnderLoad sends 20 SIGHUPs, alternating two valid configs,
// while four clients send requests: not one request may fail. Then a
// broken config is rejected: the old one keeps serving and the reload
// metrics say so.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	cfgA := plainOnly + twoBackendSite(b1.addr(), b2.addr(), "10r/s")
	cfgB := plainOnly + twoBackendSite(b1.addr(), b2.addr(), "20r/m")
	g := startGatehouse(t, cfgA)
	url := "http://" + g.httpAddr + "/load"

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := plainClient()
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Host = "app.test"
				resp, err := c.Do(req)
				code := 0
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				cancel()
				if err == nil && code == 200 {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				errMu.Lock()
				if len(errs) < 5 {
					errs = append(errs, fmt.Sprintf("status %d err %v", code, err))
				}
				errMu.Unlock()
			}
		}()
	}

	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	// served waits until four more requests (one per client, on average)
	// have been answered: the load runs on the new generation (and on the
	// old one's tail) before the next swap.
	served := func(what string) {
		t.Helper()
		after := ok.Load() + 4
		waitUntil(t, 10*time.Second, what, func() bool { return ok.Load() >= after || failed.Load() > 0 })
	}
	start := time.Now()
	for i := 1; i <= 20; i++ {
		next := cfgB
		if i%2 == 0 {
			next = cfgA
		}
		writeFileAtomic(t, g.cfgPath, next)
		g.signal(syscall.SIGHUP)
		g.waitLog("configuration reloaded", i, 10*time.Second)
		served(fmt.Sprintf("requests served after reload %d", i))
	}
	served("requests served after the last reload")
	stopLoad()
	t.Logf("20 reloads in %v; %d requests ok, %d failed", time.Since(start).Round(time.Millisecond), ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during reloads, want 0; first errors: %q", failed.Load(), ok.Load()+failed.Load(), errs)
	}
	if ok.Load() < 20 {
		t.Errorf("only %d requests succeeded during the reloads: the load loop did not run", ok.Load())
	}
	if b1.count() == 0 || b2.count() == 0 {
		t.Errorf("backends got %d and %d requests, want both used", b1.count(), b2.count())
	}

	// A broken config: rejected, the previous one keeps serving.
	writeFileAtomic(t, g.cfgPath, cfgA+"\n[sites.app\nthis is not toml\n")
	g.signal(syscall.SIGHUP)
	g.waitLog("reload failed; the previous configuration is still serving", 1, 10*time.Second)
	for i := 0; i < 5; i++ {
		if code, body := get(t, plainClient(), url, "app.test", nil); code != 200 {
			t.Errorf("after a failed reload: status %d %q, want 200 from the old config", code, body)
		}
	}
	m := g.metrics()
	for series, want := range map[string]string{
		`gatehouse_config_reloads_total{result="failure"}`: "1",
		`gatehouse_config_reloads_total{result="success"}`: "21", // start + 20 reloads
		`gatehouse_config_last_reload_successful`:          "0",
	} {
		if got, found := metricValue(m, series); !found || got != want {
			t.Errorf("%s = %q (present %v), want %s", series, got, found, want)
		}
	}
	// The process is still healthy and exits cleanly.
	g.signal(syscall.SIGTERM)
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

// TestGracefulShutdown: SIGTERM while a request is in flight (the backend
// answers it only when the test says so) lets it complete with 200; new
// connections are refused meanwhile; then the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // runs before the backend is closed
	be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "done\n")
	})
	g := startGatehouse(t, plainOnly+plainSite(be.addr()))

	type result struct {
		code int
		body string
		err  error
		at   time.Time
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := plainClient().Do(mustRequest("GET", "http://"+g.httpAddr+"/slow", "app.test"))
		if err != nil {
			slow <- result{err: err, at: time.Now()}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{code: resp.StatusCode, body: string(b), err: err, at: time.Now()}
	}()
	waitUntil(t, 10*time.Second, "the slow request to reach the backend", func() bool { return be.count() > 0 })
	g.signal(syscall.SIGTERM)
	g.waitLog("shutting down", 1, 10*time.Second)

	// New connections are refused once the listener is closed (which
	// happens right after the log line), while the request is held.
	waitUntil(t, 10*time.Second, "new connections refused after SIGTERM", func() bool {
		c, err := net.DialTimeout("tcp", g.httpAddr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after SIGTERM: %v, want connection refused", err)
		}
		return true
	})
	select {
	case r := <-slow:
		t.Fatalf("the in-flight request ended before the backend answered it: status %d err %v", r.code, r.err)
	default:
	}
	releaseOnce()

	r := <-slow
	if r.err != nil || r.code != 200 || r.body != "done\n" {
		t.Errorf("in-flight request across SIGTERM: status %d body %q err %v; want 200 \"done\"", r.code, r.body, r.err)
	}
	if code := g.exitCode(15 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}
