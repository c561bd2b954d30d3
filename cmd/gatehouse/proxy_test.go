package main

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/config/configdump"
)

// proxyCfg is the configuration `gatehouse proxy` would run for o.
func proxyCfg(t *testing.T, o proxyOptions) *config.Config {
	t.Helper()
	text, err := proxyConfig(o)
	if err != nil {
		t.Fatalf("proxyConfig(%+v): %v", o, err)
	}
	cfg, err := config.Parse(text)
	if err != nil {
		t.Fatalf("the config for %+v does not parse: %v\n%s", o, err, text)
	}
	return cfg
}

// TestProxyConfigPublic: a public name gets what a config file gives a
// site by default: an ACME certificate, the redirect, HSTS, the limits,
// the admin listener on loopback, the standard listeners.
func TestProxyConfigPublic(t *testing.T) {
	cfg := proxyCfg(t, proxyOptions{From: []string{"example.com", "www.example.com"}, To: []string{"127.0.0.1:8000", ":8001", "http://10.0.0.5:8000/"}, Admin: config.DefaultAdminAddress})
	s := cfg.Sites[0]
	if len(cfg.Sites) != 1 || s.TLS != config.TLSACME || !s.RedirectHTTPS || s.HSTS != config.DefaultHSTS {
		t.Errorf("site = %+v, want one ACME site with the redirect and the default HSTS", s)
	}
	if got := strings.Join(s.Hosts, " "); got != "example.com www.example.com" {
		t.Errorf("hosts = %q", got)
	}
	if cfg.HTTP.Address != config.DefaultHTTPAddress || cfg.HTTPS.Address != config.DefaultHTTPSAddress || cfg.Admin.Address != config.DefaultAdminAddress {
		t.Errorf("listeners = %s %s %s, want the defaults", cfg.HTTP.Address, cfg.HTTPS.Address, cfg.Admin.Address)
	}
	if cfg.Limits.MaxBody != config.DefaultMaxBody || cfg.Limits.ConnPerIP != config.DefaultConnPerIP || cfg.Timeouts.ClientHeader != config.DefaultClientHeaderTimeout {
		t.Errorf("limits = %+v, timeouts = %+v: want the defaults", cfg.Limits, cfg.Timeouts)
	}
	u := cfg.Upstreams["app"]
	var addrs []string
	for _, sv := range u.Servers {
		addrs = append(addrs, net.JoinHostPort(sv.Host, strconv.Itoa(sv.Port)))
	}
	if got := strings.Join(addrs, " "); got != "127.0.0.1:8000 127.0.0.1:8001 10.0.0.5:8000" {
		t.Errorf("servers = %q", got)
	}
	if u.Sticky != nil || s.Routes[0].WebSocket.Enabled {
		t.Errorf("sticky %v, websocket %v without --sticky and --websocket", u.Sticky, s.Routes[0].WebSocket.Enabled)
	}
}

// TestProxyConfigLocal: localhost, names under .localhost and addresses
// get the self-signed certificate on loopback ports, as `gatehouse run`'s
// development config; --websocket and --sticky turn those on.
func TestProxyConfigLocal(t *testing.T) {
	for _, from := range [][]string{{"localhost"}, {"app.localhost"}, {"127.0.0.1"}, {"localhost", "::1"}} {
		cfg := proxyCfg(t, proxyOptions{From: from, To: []string{"127.0.0.1:8000"}, WebSocket: true, Sticky: true, Admin: "off"})
		s := cfg.Sites[0]
		if s.TLS != config.TLSSelfSigned || s.HSTS != "" || cfg.DefaultSite != s {
			t.Errorf("%v: site tls %q, hsts %q, default %v; want self_signed, no HSTS, the default site", from, s.TLS, s.HSTS, cfg.DefaultSite == s)
		}
		if cfg.HTTP.Address != "127.0.0.1:8080" || cfg.HTTPS.Address != "127.0.0.1:8443" || cfg.Admin.Address != "" {
			t.Errorf("%v: listeners %s %s admin %q, want loopback 8080/8443 and no admin", from, cfg.HTTP.Address, cfg.HTTPS.Address, cfg.Admin.Address)
		}
		if !s.Routes[0].WebSocket.Enabled || cfg.Upstreams["app"].Sticky == nil || cfg.Upstreams["app"].Sticky.Cookie != config.DefaultStickyCookie {
			t.Errorf("%v: --websocket/--sticky not applied", from)
		}
	}
}

// TestProxyConfigRefused: bad flags are errors naming the flag, and no
// flag value can add a key to the configuration.
func TestProxyConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		o    proxyOptions
		want string
	}{
		{proxyOptions{From: []string{"localhost", "example.com"}, To: []string{":8000"}}, "mixes local names"},
		{proxyOptions{From: []string{"example.com"}, To: []string{"https://10.0.0.1:8443"}}, "plain HTTP"},
		{proxyOptions{From: []string{"example.com"}, To: []string{"8000"}}, "not host:port"},
	} {
		if _, err := proxyConfig(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
	text, err := proxyConfig(proxyOptions{From: []string{"x\"]\n[listeners.admin]\nallow_remote = true\n#"}, To: []string{":8000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(text); err == nil || !strings.Contains(err.Error(), "sites.app.hosts[0]") {
		t.Errorf("a --from with TOML in it: %v, want a bad host name at sites.app.hosts[0]", err)
	}
}

// TestProxyDump: proxy -dump prints the configuration it would run as a
// file check accepts, every default written out.
func TestProxyDump(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", t.TempDir())
	code, out, errs := runCmd("proxy", "--from", "example.com", "--to", "127.0.0.1:8000", "--websocket", "-dump")
	if code != 0 {
		t.Fatalf("proxy -dump: exit %d, stderr %q", code, errs)
	}
	cfg, err := config.Parse([]byte(out))
	if err != nil {
		t.Fatalf("the dump does not parse: %v\n%s", err, out)
	}
	if string(configdump.Dump(cfg)) != out {
		t.Errorf("the dump does not dump to itself:\n%s", out)
	}
	for _, want := range []string{"tls = \"acme\"", "hsts = \"max-age=31536000; includeSubDomains; preload\"", "redirect_https = true", "address = \"127.0.0.1:8000\"", "enabled = true"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := runCmd("proxy", "--to", "127.0.0.1:8000"); code != 2 || !strings.Contains(errs, "--from and --to are required") {
		t.Errorf("proxy without --from: exit %d, stderr %q", code, errs)
	}
}
