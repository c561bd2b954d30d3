package test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// clusterConfig is one instance's configuration: the same for every
// instance but its name (and state directory).
func clusterConfig(instance, redisAddr, dirURL, shared, be1, be2 string) string {
	return fmt.Sprintf(`
state_dir = "$DIR/state"
grace_period = "2s"
trusted_proxies = ["127.0.0.1/32"]

[log]
format = "json"
level = "info"

[listeners.http]
address = "127.0.0.1:0"
[listeners.https]
address = "127.0.0.1:0"
[listeners.admin]
address = "127.0.0.1:0"
token = "cluster-test"

[cluster]
url = "redis://%s/0"
instance = %q
# The machine running the tests is loaded: a budget that a loaded
# loopback Redis keeps, so that the rate is measured on Redis's decisions.
timeout = "250ms"
heartbeat = "200ms"
ban_sync = "200ms"

[acme]
directory = %q
ca_roots = "%s/pebble.pem"
email = "ops@example.com"

[ban]
enabled = true
max_retry = 100000

[zones.shared]
rate = "30r/s"
burst = 30
scope = "cluster"

[zones.own]
rate = "30r/s"
burst = 30

[sites.acme]
hosts = ["one.example.com"]
tls = "acme"
[[sites.acme.routes]]
path = "/"
upstream = "app"

[sites.plain]
hosts = ["plain.example"]
tls = "off"
redirect_https = false
[[sites.plain.routes]]
path = "/shared/"
upstream = "app"
limit = ["shared"]
[[sites.plain.routes]]
path = "/own/"
upstream = "app"
limit = ["own"]
[[sites.plain.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ address = %q, name = "b1" }, { address = %q, name = "b2" }]
[upstreams.app.sticky]
cookie = "SERVERID"
secret = "the same secret on every instance"
`, redisAddr, instance, dirURL, shared, be1, be2)
}

// TestClusterThreeInstances is issue 16's acceptance test: three
// Gatehouse processes, one real redis-server, one Pebble and shared
// backends.
//
//   - Certificates: started together, the three order one.example.com
//     once between them; the CA's validation connections are sent to an
//     instance that does not hold the order's lock (so one that did not
//     start the order answers the challenge from Redis); each serves the
//     certificate.
//   - A sticky cookie set by one instance is honoured by the others.
//   - A ban on instance 1 refuses the client on 2 and 3 within 1 s;
//     lifting it on 3 lets it in on 1 and 2 within 1 s.
//   - A cluster zone of 30 r/s with the load spread over the three admits
//     30 r/s ± 10 %; a local zone of 30 r/s about three times as much.
//   - Redis killed mid-run: no request fails, limits fall back (counted),
//     a ban made meanwhile waits, an instance restarted meanwhile serves
//     its certificate from the local copy; when Redis is back the limits
//     come from Redis again and the ban reaches the others.
func TestClusterThreeInstances(t *testing.T) {
	needBinary(t)
	if daemonRace {
		t.Skip("measures request rates; the race-instrumented daemon is too slow for that")
	}
	r := startRedisServer(t)
	be1 := newBackend(t, "b1", nil)
	be2 := newBackend(t, "b2", nil)
	names := []string{"edge-1", "edge-2", "edge-3"}

	// The CA's validation connections go to an instance that does not
	// hold the ACME lock (the one that orders holds it).
	var addrMu sync.Mutex
	httpAddrs, httpsAddrs := map[string]string{}, map[string]string{}
	known := make(chan struct{}) // closed once every address is in the maps
	var wrong atomic.Int64       // validations while no lock was held
	pick := func(addrs map[string]string) func() (string, string) {
		return func() (string, string) {
			select {
			case <-known:
			case <-time.After(30 * time.Second):
				return "", ""
			}
			holders := redisLockHolders(r)
			addrMu.Lock()
			defer addrMu.Unlock()
			if len(holders) == 0 {
				wrong.Add(1) // no order in flight: should not happen
			}
			for _, n := range names {
				if !holders[n] && addrs[n] != "" {
					return addrs[n], n
				}
			}
			return "", ""
		}
	}
	fwdHTTP := startForwarder(t, pick(httpAddrs))
	fwdTLS := startForwarder(t, pick(httpsAddrs))
	p := startTestPebble(t, fwdHTTP.port(), fwdTLS.port())
	shared := t.TempDir()
	writePEM(t, filepath.Join(shared, "pebble.pem"), p.wfePEM)

	// Started together: all three processes run before any is waited for.
	gs := make([]*gatehouse, 3)
	dirs := make([]string, 3)
	cfgs := make([]string, 3)
	for i, n := range names {
		dirs[i] = t.TempDir()
		cfgs[i] = clusterConfig(n, r.addr, p.dirURL, shared, be1.addr(), be2.addr())
		path := filepath.Join(dirs[i], "gatehouse.toml")
		writeFileAtomic(t, path, strings.ReplaceAll(cfgs[i], "$DIR", dirs[i]))
		gs[i] = runGatehouse(t, dirs[i], "run", "-config", path)
		gs[i].cfgPath = path
	}
	for i, g := range gs {
		g.waitListening()
		g.checkDrained()
		addrMu.Lock()
		httpAddrs[names[i]], httpsAddrs[names[i]] = g.httpAddr, g.httpsAddr
		addrMu.Unlock()
	}
	close(known)

	t.Run("certificates", func(t *testing.T) {
		var serials []*big.Int
		for i, g := range gs {
			var serial *big.Int
			waitUntil(t, 90*time.Second, names[i]+" serving one.example.com", func() bool {
				serial = clusterSerial(g.httpsAddr, p)
				return serial != nil
			})
			serials = append(serials, serial)
		}
		for i := range serials {
			if serials[i].Cmp(serials[0]) != 0 {
				t.Errorf("%s serves serial %v, %s %v: want one certificate", names[i], serials[i], names[0], serials[0])
			}
		}
		if got := p.ordersFor("one.example.com"); got != 1 {
			t.Errorf("Pebble saw %d orders for one.example.com from three instances, want 1", got)
		}
		sent := fwdHTTP.sentTo()
		for n, c := range fwdTLS.sentTo() {
			sent[n] += c
		}
		total := 0
		for _, c := range sent {
			total += c
		}
		if total == 0 || wrong.Load() != 0 {
			t.Errorf("validations: %v (%d while no instance held the lock); want at least one, all to an instance without the lock", sent, wrong.Load())
		}
		t.Logf("challenge connections answered by instances that did not order: %v", sent)
		// A restarted instance finds the certificate in Redis (no order).
	})

	clients := make([]*http.Client, 3)
	for i, g := range gs {
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}
		g.trackClient(tr)
		clients[i] = &http.Client{Timeout: 10 * time.Second, Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	send := func(i int, path, client string, hdr map[string]string) (int, string) {
		h := map[string]string{"X-Forwarded-For": client}
		for k, v := range hdr {
			h[k] = v
		}
		return get(t, clients[i], "http://"+gs[i].httpAddr+path, "plain.example", h)
	}

	t.Run("sticky", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+gs[0].httpAddr+"/", nil)
		req.Host = "plain.example"
		resp, err := clients[0].Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "SERVERID" {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatal("instance 1 set no SERVERID cookie")
		}
		home := be1
		if be2.count() > 0 {
			home = be2
		}
		before := home.count()
		for i := 1; i < 3; i++ {
			for range 4 {
				if st, body := send(i, "/", "192.0.2.1", map[string]string{"Cookie": "SERVERID=" + cookie.Value}); st != 200 || !strings.Contains(body, home.name) {
					t.Fatalf("%s with instance 1's cookie: %d %q, want %s", names[i], st, body, home.name)
				}
			}
		}
		if got := home.count() - before; got != 8 {
			t.Errorf("%s received %d of 8 requests carrying its cookie", home.name, got)
		}
	})

	t.Run("bans", func(t *testing.T) {
		const who = "203.0.113.7"
		if st, _ := send(1, "/", who, nil); st != 200 {
			t.Fatalf("before the ban: %d", st)
		}
		if st, body := clusterAdmin(t, gs[0], "POST", "/bans?addr="+who+"&duration=1h"); st != 200 {
			t.Fatalf("ban on %s: %d %s", names[0], st, body)
		}
		took := waitUntil(t, time.Second, "the ban on edge-1 refusing the client on edge-2 and edge-3", func() bool {
			a, _ := send(1, "/", who, nil)
			b, _ := send(2, "/", who, nil)
			return a == 403 && b == 403
		})
		t.Logf("ban enforced by the others after %v", took)
		if st, body := clusterAdmin(t, gs[2], "DELETE", "/bans?addr="+who); st != 200 {
			t.Fatalf("unban on %s: %d %s", names[2], st, body)
		}
		took = waitUntil(t, time.Second, "the unban on edge-3 letting the client in on edge-1 and edge-2", func() bool {
			a, _ := send(0, "/", who, nil)
			b, _ := send(1, "/", who, nil)
			return a == 200 && b == 200
		})
		t.Logf("unban effective on the others after %v", took)
	})

	// The cluster view: three live instances, one configuration.
	t.Run("admin", func(t *testing.T) {
		st, body := clusterAdmin(t, gs[1], "GET", "/cluster")
		var view struct {
			Instance  string `json:"instance"`
			Differ    bool   `json:"configs_differ"`
			Instances []struct {
				Name, Addr, Version string
				ConfigHash          string `json:"config_hash"`
				Live, Self          bool
				Listeners           map[string]string
			} `json:"instances"`
		}
		if st != 200 || json.Unmarshal([]byte(body), &view) != nil {
			t.Fatalf("GET /cluster: %d %s", st, body)
		}
		if view.Instance != "edge-2" || view.Differ || len(view.Instances) != 3 {
			t.Fatalf("GET /cluster = %s", body)
		}
		for i, in := range view.Instances {
			if in.Name != names[i] || !in.Live || in.Self != (i == 1) || in.ConfigHash == "" || in.Listeners["https"] != gs[i].httpsAddr {
				t.Errorf("instance %d: %+v", i, in)
			}
		}
	})

	// load sends requests as one client (xff) to path on every instance,
	// perInstance a second each, for warm+window; it returns how many of
	// those sent within the window were admitted, and every outcome.
	load := func(path, xff string, perInstance int, warm, window time.Duration) (admitted int, outcomes map[string]int) {
		outcomes = map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		from, to := start.Add(warm), start.Add(warm+window)
		for i := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second / time.Duration(perInstance))
				defer tick.Stop()
				var reqs sync.WaitGroup
				for now := range tick.C {
					if !now.Before(to) {
						break
					}
					reqs.Add(1)
					go func() {
						defer reqs.Done()
						req, _ := http.NewRequest("GET", "http://"+gs[i].httpAddr+path, nil)
						req.Host = "plain.example"
						req.Header.Set("X-Forwarded-For", xff)
						sent := time.Now()
						resp, err := clients[i].Do(req)
						out := "error"
						if err == nil {
							resp.Body.Close()
							out = strconv.Itoa(resp.StatusCode)
						}
						mu.Lock()
						outcomes[out]++
						if out == "200" && !sent.Before(from) && sent.Before(to) {
							admitted++
						}
						mu.Unlock()
					}()
				}
				reqs.Wait()
			}()
		}
		wg.Wait()
		return admitted, outcomes
	}
	const window = 10 * time.Second
	want := 30 * window.Seconds()

	t.Run("rate", func(t *testing.T) {
		// 50 r/s offered to each instance (150 in all), for 2 s to empty
		// the burst and 10 s measured: GCRA admits the rate exactly while
		// the offered load exceeds it (a pause shorter than the burst's
		// second loses nothing).
		fb := fallbacks(t, gs)
		got, outcomes := load("/shared/", "198.51.100.10", 50, 2*time.Second, window)
		t.Logf("cluster zone: %d admitted in %v (%.1f r/s), outcomes %v", got, window, float64(got)/window.Seconds(), outcomes)
		if after := fallbacks(t, gs); sum(after) != sum(fb) {
			t.Logf("note: %v decisions fell back during the measurement (a loaded machine)", sum(after)-sum(fb))
		}
		if float64(got) < 0.9*want || float64(got) > 1.1*want {
			t.Errorf("cluster zone of 30 r/s over three instances admitted %d in %v, want %v ± 10%%", got, window, want)
		}
		if outcomes["error"] > 0 || len(outcomes) > 2 {
			t.Errorf("outcomes %v: want 200 and 429 only", outcomes)
		}
		own, outcomes := load("/own/", "198.51.100.11", 50, 2*time.Second, window)
		t.Logf("local zone: %d admitted in %v (%.1f r/s), outcomes %v", own, window, float64(own)/window.Seconds(), outcomes)
		if ratio := float64(own) / want; ratio < 2.5 || ratio > 3.3 {
			t.Errorf("local zone of 30 r/s on three instances admitted %d, %.2f× the cluster budget; want about 3×", own, ratio)
		}
	})

	t.Run("redis killed", func(t *testing.T) {
		const who = "203.0.113.9"
		fb := fallbacks(t, gs)
		type result struct {
			admitted int
			outcomes map[string]int
		}
		done := make(chan result)
		go func() {
			a, o := load("/shared/", "198.51.100.12", 20, 0, 6*time.Second)
			done <- result{a, o}
		}()
		time.Sleep(1500 * time.Millisecond) // load running with Redis up
		r.stop()
		waitUntil(t, 10*time.Second, "every instance falling back", func() bool {
			for _, g := range gs {
				v, _ := metricValue(g.metrics(), `gatehouse_cluster_ratelimit_fallbacks_total{zone="shared"}`)
				if n, _ := strconv.ParseFloat(v, 64); n <= fb[g] {
					return false
				}
			}
			return true
		})
		if st, body := clusterAdmin(t, gs[1], "POST", "/bans?addr="+who+"&duration=1h"); st != 200 {
			t.Fatalf("ban on edge-2 with Redis down: %d %s", st, body)
		}
		if st, _ := send(1, "/", who, nil); st != 403 {
			t.Errorf("edge-2 does not enforce its own ban with Redis down: %d", st)
		}
		res := <-done
		t.Logf("during the outage: outcomes %v", res.outcomes)
		if res.outcomes["error"] > 0 || len(res.outcomes) > 2 || res.outcomes["200"] == 0 {
			t.Errorf("outcomes with Redis killed: %v; want only 200 and 429", res.outcomes)
		}
		if st, _ := send(0, "/", who, nil); st != 200 {
			t.Errorf("edge-1 knows the ban while Redis is down: %d", st)
		}

		// Restarted while Redis is down: the certificate from the local copy.
		serial := clusterSerial(gs[2].httpsAddr, p)
		gs[2].signal(syscall.SIGTERM)
		if code := gs[2].exitCode(30 * time.Second); code != 0 {
			t.Fatalf("edge-3 exited %d", code)
		}
		gs[2] = startGatehouseIn(t, dirs[2], cfgs[2])
		tr := &http.Transport{Proxy: nil}
		gs[2].trackClient(tr)
		clients[2] = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		var again *big.Int
		waitUntil(t, 30*time.Second, "restarted edge-3 serving one.example.com with Redis down", func() bool {
			again = clusterSerial(gs[2].httpsAddr, p)
			return again != nil
		})
		if serial == nil || again.Cmp(serial) != 0 {
			t.Errorf("restarted edge-3 serves serial %v, before %v", again, serial)
		}

		r.start()
		waitUntil(t, 15*time.Second, "every instance using Redis again", func() bool {
			for _, g := range gs {
				if v, _ := metricValue(g.metrics(), "gatehouse_cluster_redis_up"); v != "1" {
					return false
				}
			}
			return true
		})
		took := waitUntil(t, 10*time.Second, "the ban made during the outage reaching edge-1 and edge-3", func() bool {
			a, _ := send(0, "/", who, nil)
			b, _ := send(2, "/", who, nil)
			return a == 403 && b == 403
		})
		t.Logf("the ban reached the others %v after Redis answered", took)
		before := fallbacks(t, gs)
		_, outcomes := load("/shared/", "198.51.100.13", 20, 0, 2*time.Second)
		if outcomes["error"] > 0 || len(outcomes) > 2 {
			t.Errorf("outcomes after recovery: %v", outcomes)
		}
		// Recovered: decisions go to Redis again. One that misses the
		// latency budget on a loaded machine still falls back (as it
		// should); an instance that never went back to Redis would fall
		// back for all of its third of the 120 decisions.
		if after := fallbacks(t, gs); sum(after)-sum(before) > 12 {
			t.Errorf("decisions still fall back after Redis returned: %v → %v of about 120", sum(before), sum(after))
		} else if sum(after) != sum(before) {
			t.Logf("note: %v decisions fell back after Redis returned (a loaded machine)", sum(after)-sum(before))
		}
		if p.ordersFor("one.example.com") != 1 {
			t.Errorf("orders = %d after the outage and a restart, want still 1", p.ordersFor("one.example.com"))
		}
	})
}

// fallbacks reads each instance's count of fallback decisions of the
// shared zone.
func fallbacks(t *testing.T, gs []*gatehouse) map[*gatehouse]float64 {
	t.Helper()
	out := map[*gatehouse]float64{}
	for _, g := range gs {
		v, _ := metricValue(g.metrics(), `gatehouse_cluster_ratelimit_fallbacks_total{zone="shared"}`)
		out[g], _ = strconv.ParseFloat(v, 64)
	}
	return out
}

func sum(m map[*gatehouse]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// clusterSerial returns the serial of the certificate addr serves for
// one.example.com, verified against Pebble's root, or nil.
func clusterSerial(addr string, p *testPebble) *big.Int {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: "one.example.com", RootCAs: p.certRoots})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// redisLockHolders returns the instances holding an ACME lock, read
// from the lock values ("<token>:<instance>").
func redisLockHolders(r *redisServer) map[string]bool {
	out := map[string]bool{}
	reply, err := r.do("KEYS", "gatehouse:cm:lock:*")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(reply, "\r\n") {
		if !strings.HasPrefix(line, "gatehouse:") {
			continue
		}
		v, err := r.do("GET", line)
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(v, ':'); i >= 0 {
			out[v[i+1:]] = true
		}
	}
	return out
}
