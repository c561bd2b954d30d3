package wsproxy

import (
	"net/http"
	"testing"
)

// TestValidUpgrade: RFC 6455 §4.2.1's method, key and version checks.
func TestValidUpgrade(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // the RFC's 16-byte sample nonce
	for _, tc := range []struct {
		name   string
		method string
		h      http.Header
		want   bool
	}{
		{"valid", "GET", http.Header{"Sec-Websocket-Key": {key}, "Sec-Websocket-Version": {"13"}}, true},
		{"POST", "POST", http.Header{"Sec-Websocket-Key": {key}, "Sec-Websocket-Version": {"13"}}, false},
		{"no key", "GET", http.Header{"Sec-Websocket-Version": {"13"}}, false},
		{"two keys", "GET", http.Header{"Sec-Websocket-Key": {key, key}, "Sec-Websocket-Version": {"13"}}, false},
		{"short key", "GET", http.Header{"Sec-Websocket-Key": {"c2hvcnQ="}, "Sec-Websocket-Version": {"13"}}, false},
		{"not base64", "GET", http.Header{"Sec-Websocket-Key": {"not base64 at all!!!!!!!"}, "Sec-Websocket-Version": {"13"}}, false},
		{"version 8", "GET", http.Header{"Sec-Websocket-Key": {key}, "Sec-Websocket-Version": {"8"}}, false},
	} {
		r := &http.Request{Method: tc.method, Header: tc.h}
		if got := ValidUpgrade(r); got != tc.want {
			t.Errorf("%s: ValidUpgrade = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOrigins: a configured list is matched exactly (case and a trailing
// slash aside), "*" allows anything; with no list the site's host names
// decide, wildcards included, over https (or http on plain HTTP).
func TestOrigins(t *testing.T) {
	hosts := map[string]bool{"a.example": true, "*.b.example": true, "::1": true}
	site := NewOrigins(nil, hosts)
	listed := NewOrigins([]string{"https://App.example/"}, hosts)
	any := NewOrigins([]string{"*"}, hosts)
	for _, tc := range []struct {
		name    string
		p       Origins
		origin  string
		overTLS bool
		want    bool
	}{
		{"site host over https", site, "https://a.example", true, true},
		{"site host with port", site, "https://a.example:8443", true, true},
		{"site host, http over TLS", site, "http://a.example", true, false},
		{"site host, http over plain HTTP", site, "http://a.example", false, true},
		{"wildcard", site, "https://x.b.example", true, true},
		{"wildcard's apex", site, "https://b.example", true, false},
		{"IPv6 host", site, "https://[::1]:443", true, true},
		{"other host", site, "https://evil.example", true, false},
		{"missing", site, "", true, false},
		{"null", site, "null", true, false},
		{"no scheme", site, "a.example", true, false},
		{"listed", listed, "https://app.example", true, true},
		{"listed, site host not enough", listed, "https://a.example", true, false},
		{"any", any, "https://evil.example", true, true},
		{"any, missing", any, "", true, true},
		{"zero value", Origins{}, "https://a.example", true, false},
	} {
		if got := tc.p.Allow(tc.origin, tc.overTLS); got != tc.want {
			t.Errorf("%s: Allow(%q, tls=%v) = %v, want %v", tc.name, tc.origin, tc.overTLS, got, tc.want)
		}
	}
}
