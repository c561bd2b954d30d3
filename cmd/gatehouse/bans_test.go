package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// banTestConfig serves site app.test over plain HTTP from one backend,
// with bans on and 127.0.0.1 as a trusted proxy, so a test can present
// any client address in X-Forwarded-For.
func banTestConfig(stateDir, backendAddr string) string {
	return fmt.Sprintf(`
state_dir = %q
trusted_proxies = ["127.0.0.1/32"]

[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = "127.0.0.1:0"

[ban]
enabled = true

[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "b1", address = %q }]
`, stateDir, backendAddr)
}

// startBanDaemon runs the daemon in-process on cfg until the test ends and
// returns it once its listeners are up.
func startBanDaemon(t *testing.T, cfg string) *daemon {
	t.Helper()
	d, _ := startBanDaemonStop(t, cfg)
	return d
}

// startBanDaemonStop is startBanDaemon that also returns the clean
// shutdown, for a test to call earlier: stop returns once the daemon has
// exited (and does nothing the second time).
func startBanDaemonStop(t *testing.T, cfg string) (*daemon, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *daemon, 1)
	exited := make(chan int, 1)
	var logs strings.Builder
	go func() {
		exited <- serve(ctx, source{embedded: []byte(cfg)}, &lockedWriter{w: &logs}, func(d *daemon) { started <- d })
	}()
	select {
	case d := <-started:
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if code := <-exited; code != 0 {
					t.Errorf("daemon exited %d", code)
				}
			})
		}
		t.Cleanup(stop) // also when the test fails before calling it
		return d, stop
	case code := <-exited:
		cancel()
		t.Fatalf("daemon exited %d before serving: %s", code, logs.String())
		return nil, nil
	}
}

// adminCall sends method path to the admin listener, as a same-origin
// request, and returns the status and the body.
func adminCall(t *testing.T, d *daemon, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.adminAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Without a token, state changes must come from the listener's own
	// origin, with the CSRF token the status page embeds.
	req.Header.Set("Origin", "http://"+d.adminAddr)
	req.Header.Set("X-CSRF-Token", d.csrf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminPrefixBansRefuseEveryAddressInside: a ban set through the admin
// API on any prefix length refuses every client address inside it on the
// request path (here behind a trusted proxy, where the client is known
// only per request) and serves the addresses just outside.
func TestAdminPrefixBansRefuseEveryAddressInside(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	d := startBanDaemon(t, banTestConfig(t.TempDir(), be.Listener.Addr().String()))
	front := d.servers[0].Addr().String()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(xff string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+front+"/", nil)
		req.Host = "app.test"
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET as %s: %v", xff, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		prefix  string
		in, out []string
	}{
		{"2001:db8:aa::/48",
			[]string{"2001:db8:aa::", "2001:db8:aa:7:1::5", "2001:db8:aa:ffff:ffff:ffff:ffff:ffff"},
			[]string{"2001:db8:a9:ffff:ffff:ffff:ffff:ffff", "2001:db8:ab::"}},
		{"2001:db8:aa:bb::/64",
			[]string{"2001:db8:aa:bb::1", "2001:db8:aa:bb:ffff:ffff:ffff:ffff"},
			[]string{"2001:db8:aa:ba:ffff:ffff:ffff:ffff", "2001:db8:aa:bc::"}},
		{"2001:db8:aa:bb:cc:dd::/96",
			[]string{"2001:db8:aa:bb:cc:dd::", "2001:db8:aa:bb:cc:dd:ffff:ffff"},
			[]string{"2001:db8:aa:bb:cc:dc:ffff:ffff", "2001:db8:aa:bb:cc:de::"}},
		{"2001:db8:aa:bb::5/128",
			[]string{"2001:db8:aa:bb::5"},
			[]string{"2001:db8:aa:bb::4", "2001:db8:aa:bb::6"}},
		{"198.51.100.0/24",
			[]string{"198.51.100.0", "198.51.100.77", "198.51.100.255", "::ffff:198.51.100.9"},
			[]string{"198.51.99.255", "198.51.101.0"}},
		{"198.51.100.7/32",
			[]string{"198.51.100.7"},
			[]string{"198.51.100.6", "198.51.100.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			q := url.QueryEscape(tt.prefix)
			if code, body := adminCall(t, d, "POST", "/bans?addr="+q); code != http.StatusOK {
				t.Fatalf("POST /bans?addr=%s: %d %s, want 200", tt.prefix, code, body)
			}
			for _, a := range tt.in {
				if code := get(a); code != http.StatusForbidden {
					t.Errorf("client %s inside the ban of %s: %d, want 403", a, tt.prefix, code)
				}
			}
			for _, a := range tt.out {
				if code := get(a); code != http.StatusOK {
					t.Errorf("client %s outside the ban of %s: %d, want 200", a, tt.prefix, code)
				}
			}
			if code, body := adminCall(t, d, "DELETE", "/bans?addr="+q); code != http.StatusOK {
				t.Fatalf("DELETE /bans?addr=%s: %d %s, want 200", tt.prefix, code, body)
			}
			if code := get(tt.in[0]); code != http.StatusOK {
				t.Errorf("client %s after the ban was lifted: %d, want 200", tt.in[0], code)
			}
		})
	}
}

// TestAdminBanValidation: the ban endpoint refuses prefixes that are not
// what the operator meant (/0, host bits set) with a message that names
// the fix, and reports the key it banned.
func TestAdminBanValidation(t *testing.T) {
	d := startBanDaemon(t, banTestConfig(t.TempDir(), "127.0.0.1:9"))
	bad := map[string]string{
		"":               "addr:",
		"nope":           "addr:",
		"::/0":           "/0",
		"0.0.0.0/0":      "/0",
		"192.0.2.7/24":   "192.0.2.0/24",
		"2001:db8::1/48": "2001:db8::/48",
		"1.2.3.4/33":     "addr:",
	}
	for addr, want := range bad {
		code, body := adminCall(t, d, "POST", "/bans?addr="+url.QueryEscape(addr))
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("POST /bans?addr=%s: %d %s; want 400 mentioning %q", addr, code, body, want)
		}
	}
	good := map[string]string{
		"2001:db8::7":         "2001:db8::/64", // an address is widened to [limits] ipv6_prefix
		"2001:db8:5::/48":     "2001:db8:5::/48",
		"192.0.2.0/24":        "192.0.2.0/24",
		"192.0.2.9":           "192.0.2.9/32",
		"::ffff:10.1.0.0/112": "10.1.0.0/16",
	}
	for addr, want := range good {
		code, body := adminCall(t, d, "POST", "/bans?addr="+url.QueryEscape(addr)+"&duration=1h")
		var got struct{ Addr string }
		json.Unmarshal([]byte(body), &got)
		if code != http.StatusOK || got.Addr != want {
			t.Errorf("POST /bans?addr=%s: %d %s; want 200 banning %s", addr, code, body, want)
		}
	}
	// An address inside a banned prefix is not a ban of its own: DELETE
	// says which ban covers it.
	code, body := adminCall(t, d, "DELETE", "/bans?addr=2001:db8:5:1::9")
	if code != http.StatusNotFound || !strings.Contains(body, "2001:db8:5::/48") {
		t.Errorf("DELETE of an address inside a banned /48: %d %s; want 404 naming 2001:db8:5::/48", code, body)
	}
}

// lockedWriter serialises writes from the daemon's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestAdminBansSurviveCleanShutdown: bans written in a burst (whose file
// writes are batched) are all in the bans file after a clean shutdown, and
// a new daemon on the same state directory enforces them.
func TestAdminBansSurviveCleanShutdown(t *testing.T) {
	state := t.TempDir()
	cfg := banTestConfig(state, "127.0.0.1:9")
	d, stop := startBanDaemonStop(t, cfg)
	const n = 50
	for i := range n {
		if code, body := adminCall(t, d, "POST", fmt.Sprintf("/bans?addr=2001:db8:%x::/48&duration=1h", i)); code != http.StatusOK {
			t.Fatalf("POST ban %d: %d %s", i, code, body)
		}
	}
	stop()
	d2 := startBanDaemon(t, cfg)
	code, body := adminCall(t, d2, "GET", "/bans")
	var list []struct{ Addr string }
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		t.Fatalf("GET /bans: %d %s", code, body)
	}
	if len(list) != n {
		t.Errorf("after a clean restart %d bans, want %d", len(list), n)
	}
	if b, _ := d2.jail.BannedAt(ratelimit.AddrKey(netip.MustParseAddr("2001:db8:31:5::1")), time.Now()); !b {
		t.Error("2001:db8:31:5::1 inside the restored ban of 2001:db8:31::/48 is not banned")
	}
}
