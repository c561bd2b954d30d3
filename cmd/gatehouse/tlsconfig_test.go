package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

// TestTLSConfigOCSPStapling: [listeners.https] ocsp_stapling reaches the
// certificate manager.
func TestTLSConfigOCSPStapling(t *testing.T) {
	const base = `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	for _, tc := range []struct {
		https       string
		wantDisable bool
	}{
		{"", false},
		{"ocsp_stapling = false\n", true},
	} {
		cfg, err := config.Parse([]byte("[listeners.https]\n" + tc.https + base))
		if err != nil {
			t.Fatalf("%q: %v", tc.https, err)
		}
		tc2, err := tlsConfigOf(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tc2.DisableOCSP != tc.wantDisable {
			t.Errorf("%q: DisableOCSP = %v, want %v", tc.https, tc2.DisableOCSP, tc.wantDisable)
		}
	}
}

// TestTLSConfigDNSCredentials: the dns-01 credential comes from the file
// or the environment variable the configuration names (never the TOML),
// a missing one is an error naming the key, and per-site ACME settings
// reach the certificate manager.
func TestTLSConfigDNSCredentials(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "cf.token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	site := `
[sites.a]
hosts = ["*.a.example", "a.example"]
acme_profile = "shortlived"
[sites.b]
hosts = ["b.example"]
acme_challenge = "dns"
[[sites.a.routes]]
upstream = "app"
[[sites.b.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	parse := func(dns string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte("[acme.dns]\nprovider = \"cloudflare\"\n" + dns + site))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tc, err := tlsConfigOf(parse("token_file = \"" + tokenFile + "\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tc.ACME.DNS.Secret); got != "file-token" {
		t.Errorf("secret from token_file = %q", got)
	}
	if o := tc.ACMEOverrides["a.example"]; o.Profile != "shortlived" || o.DNS01 {
		t.Errorf("a.example override %+v", o)
	}
	if o := tc.ACMEOverrides["b.example"]; !o.DNS01 {
		t.Errorf("b.example override %+v, want dns-01", o)
	}
	if err := tlsedge.Check(tc, time.Now()); err != nil {
		t.Errorf("check: %v", err)
	}

	t.Setenv("GATEHOUSE_TEST_CF_TOKEN", "env-token")
	if tc, err = tlsConfigOf(parse("token_env = \"GATEHOUSE_TEST_CF_TOKEN\"\n")); err != nil || string(tc.ACME.DNS.Secret) != "env-token" {
		t.Errorf("token_env: %q, %v", tc.ACME.DNS.Secret, err)
	}
	if _, err := tlsConfigOf(parse("token_env = \"GATEHOUSE_TEST_UNSET\"\n")); err == nil || !strings.Contains(err.Error(), "acme.dns.token_env: $GATEHOUSE_TEST_UNSET is not set") {
		t.Errorf("unset token_env: %v", err)
	}
	if _, err := tlsConfigOf(parse("token_file = \"" + filepath.Join(dir, "missing") + "\"\n")); err == nil || !strings.Contains(err.Error(), "acme.dns.token_file:") {
		t.Errorf("missing token_file: %v", err)
	}
}
