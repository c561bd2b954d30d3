package main

import (
	"testing"

	"github.com/gatehouse-proxy/gatehouse/config"
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
