package tlsedge

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestCheckACMEDNS: dns-01 settings are validated without network: every
// provider builds (cloudflare included, compile-tested only: there is no
// network here), and each bad setting is named.
func TestCheckACMEDNS(t *testing.T) {
	base := func(d *DNS, names ...string) Config {
		return Config{ACME: ACME{DirectoryURL: "https://ca.test/dir", DNS: d}, ACMENames: names, Names: names}
	}
	for _, d := range []*DNS{
		{Provider: "cloudflare", Secret: []byte("token")},
		{Provider: "rfc2136", Server: "127.0.0.1:53", KeyName: "k.", Secret: []byte("c2VjcmV0")},
		{Provider: "exec", Command: "/usr/local/bin/hook"},
	} {
		c := base(d, "*.example.com")
		if err := Check(c, time.Now()); err != nil {
			t.Errorf("%s: %v", d.Provider, err)
		}
		if s := newDNSSolver(normalize(c).ACME.DNS, zap.NewNop()); s.DNSProvider == nil {
			t.Errorf("%s: no provider built", d.Provider)
		}
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{base(&DNS{Provider: "cloudflare"}, "*.example.com"), "cloudflare needs an api token"},
		{base(&DNS{Provider: "rfc2136", Server: "ns1", KeyName: "k.", KeyAlgorithm: "hmac-md5", Secret: []byte("!!")}, "a.example.com"),
			`acme dns server "ns1": want host:port`},
		{base(&DNS{Provider: "rfc2136", Server: "ns1:53", KeyName: "k.", KeyAlgorithm: "hmac-md5", Secret: []byte("c2VjcmV0")}, "a.example.com"),
			`key algorithm "hmac-md5"`},
		{base(&DNS{Provider: "rfc2136", Server: "ns1:53", KeyName: "k.", Secret: []byte("!!")}, "a.example.com"), "tsig secret is not base64"},
		{base(&DNS{Provider: "exec", Command: "hook.sh"}, "a.example.com"), `command "hook.sh": must be an absolute path`},
		{base(&DNS{Provider: "route53"}, "a.example.com"), `provider "route53"`},
		{base(nil, "*.example.com"), "a wildcard needs the dns-01 challenge"},
		{Config{ACME: ACME{DirectoryURL: "https://ca.test/dir", HTTP01: true}, ACMENames: []string{"a.example.com"},
			ACMEOverrides: map[string]ACMEOverride{"a.example.com": {DNS01: true}, "b.example.com": {}}}, "acme override for \"b.example.com\": not an acme name"},
	} {
		err := Check(tc.c, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c.ACME.DNS, err, tc.want)
		}
	}
}
