package main

import (
	"bufio"
	"bytes"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// adminReq builds a request as the admin listener would see it.
func adminReq(method, host string, hdr map[string]string, body string) *http.Request {
	r := httptest.NewRequest(method, "/upstreams/app/servers/b1/drain", strings.NewReader(body))
	r.Host = host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// TestCheckAdminRequest is the admin request parser's table: the attacks
// of issue 12 item 4 are refused with the right status, and Prometheus,
// curl with the token and a same-origin JSON call go through.
func TestCheckAdminRequest(t *testing.T) {
	const self = "127.0.0.1:9180"
	const csrf = "Kq3M2ZrXh7RVvN4TqWBLpLdYTa"
	open := &adminPolicy{hosts: []string{"gatehouse.internal"}, csrf: csrf}
	tok := &adminPolicy{token: "s3cret", csrf: csrf}
	noCSRF := &adminPolicy{}
	cases := []struct {
		name   string
		p      *adminPolicy
		method string
		host   string
		hdr    map[string]string
		body   string
		want   int // 0: allowed
	}{
		// Reads: only the Host matters.
		{"prometheus scrape", open, "GET", self, map[string]string{"Accept": "application/openmetrics-text", "User-Agent": "Prometheus/3.0"}, "", 0},
		{"curl healthz via localhost", open, "GET", "localhost:9180", nil, "", 0},
		{"HEAD", open, "HEAD", self, nil, "", 0},
		{"IPv6 literal", open, "GET", "[::1]:9180", nil, "", 0},
		{"bound wildcard address (gatehouse health -admin 0.0.0.0:9180)", open, "GET", "0.0.0.0:9180", nil, "", 0},
		{"configured name", open, "GET", "Gatehouse.Internal:9180", nil, "", 0},
		{"configured name, no port", open, "GET", "gatehouse.internal", nil, "", 0},
		{"DNS rebinding GET", open, "GET", "evil.example:9180", nil, "", http.StatusMisdirectedRequest},
		{"foreign Host without port", open, "GET", "evil.example", nil, "", http.StatusMisdirectedRequest},
		{"IP-looking name", open, "GET", "127.0.0.1.evil.example:9180", nil, "", http.StatusMisdirectedRequest},
		{"empty Host", open, "GET", "", nil, "", http.StatusMisdirectedRequest},
		{"bad port", open, "GET", "127.0.0.1:99999", nil, "", http.StatusMisdirectedRequest},
		{"unbracketed IPv6", open, "GET", "::1:9180", nil, "", http.StatusMisdirectedRequest},
		{"IPv4 in brackets", open, "GET", "[127.0.0.1]:9180", nil, "", http.StatusMisdirectedRequest},
		{"DNS rebinding POST, same-origin to the attacker", open, "POST", "evil.example:9180", map[string]string{"Origin": "http://evil.example:9180"}, "", http.StatusMisdirectedRequest},

		// State changes without a token: same-origin only.
		{"cross-site text/plain drain", open, "POST", self, map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, "x", http.StatusUnsupportedMediaType},
		{"cross-site bodyless drain", open, "POST", self, map[string]string{"Origin": "https://evil.example"}, "", http.StatusForbidden},
		{"cross-site form", open, "POST", self, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, "a=b", http.StatusUnsupportedMediaType},
		{"same-origin multipart", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "multipart/form-data; boundary=x"}, "--x--", http.StatusUnsupportedMediaType},
		{"same-origin text/plain", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "text/plain;charset=UTF-8"}, "{}", http.StatusUnsupportedMediaType},
		{"body without Content-Type (Blob)", open, "POST", self, map[string]string{"Origin": "http://" + self}, "x", http.StatusUnsupportedMediaType},
		{"missing Origin (curl, old browser)", open, "POST", self, nil, "", http.StatusForbidden},
		{"null Origin", open, "POST", self, map[string]string{"Origin": "null"}, "", http.StatusForbidden},
		{"Origin on another port", open, "POST", self, map[string]string{"Origin": "http://127.0.0.1:8080"}, "", http.StatusForbidden},
		{"Origin with a path", open, "POST", self, map[string]string{"Origin": "http://" + self + "/x"}, "", http.StatusForbidden},
		{"same Origin but Sec-Fetch-Site cross-site", open, "POST", self, map[string]string{"Origin": "http://" + self, "Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"same Origin but Sec-Fetch-Site same-site", open, "DELETE", self, map[string]string{"Origin": "http://" + self, "Sec-Fetch-Site": "same-site"}, "", http.StatusForbidden},
		{"same-origin JSON (the status page's fetch)", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf}, "{}", 0},
		{"same-origin JSON with charset", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "application/json; charset=utf-8", "X-CSRF-Token": csrf}, "{}", 0},
		{"same-origin bodyless DELETE (curl -H Origin -H X-CSRF-Token)", open, "DELETE", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": csrf}, "", 0},
		{"same-origin via configured name", open, "POST", "gatehouse.internal:9180", map[string]string{"Origin": "https://gatehouse.internal:9180", "X-CSRF-Token": csrf}, "", 0},

		// The CSRF token: same-origin is not enough without it.
		{"same-origin JSON without the CSRF token", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, "{}", http.StatusForbidden},
		{"same-origin bodyless DELETE without the CSRF token (curl -H Origin)", open, "DELETE", self, map[string]string{"Origin": "http://" + self}, "", http.StatusForbidden},
		{"wrong CSRF token", open, "POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": csrf[:len(csrf)-1] + "x"}, "", http.StatusForbidden},
		{"CSRF token prefix", open, "POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": csrf[:10]}, "", http.StatusForbidden},
		{"empty CSRF token", open, "POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": ""}, "", http.StatusForbidden},
		{"CSRF token does not excuse a cross-site Origin", open, "POST", self, map[string]string{"Origin": "https://evil.example", "X-CSRF-Token": csrf}, "", http.StatusForbidden},
		{"CSRF token does not excuse Sec-Fetch-Site cross-site", open, "POST", self, map[string]string{"Origin": "http://" + self, "Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf}, "", http.StatusForbidden},
		{"CSRF token does not excuse a form body", open, "POST", self, map[string]string{"Origin": "http://" + self, "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf}, "a=b", http.StatusUnsupportedMediaType},
		{"no CSRF token configured (before the first config): refused", noCSRF, "POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": ""}, "", http.StatusForbidden},
		{"the CSRF token is no admin token", tok, "POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": csrf}, "", http.StatusUnauthorized},
		{"token given but none configured still needs Origin", open, "POST", self, map[string]string{"Authorization": "Bearer s3cret", "X-CSRF-Token": csrf}, "", http.StatusForbidden},
		{"PUT counts as a state change", open, "PUT", self, nil, "", http.StatusForbidden},
		{"OPTIONS counts as a state change", open, "OPTIONS", self, map[string]string{"Origin": "https://evil.example"}, "", http.StatusForbidden},

		// With a token: the token, not the Origin.
		{"curl with the token", tok, "POST", self, map[string]string{"Authorization": "Bearer s3cret"}, "", 0},
		{"curl with the token and JSON", tok, "POST", self, map[string]string{"Authorization": "Bearer s3cret", "Content-Type": "application/json"}, "{}", 0},
		{"no token", tok, "POST", self, nil, "", http.StatusUnauthorized},
		{"wrong token", tok, "POST", self, map[string]string{"Authorization": "Bearer s3cre"}, "", http.StatusUnauthorized},
		{"same-origin without the token", tok, "POST", self, map[string]string{"Origin": "http://" + self}, "", http.StatusUnauthorized},
		{"token but text/plain body", tok, "POST", self, map[string]string{"Authorization": "Bearer s3cret", "Content-Type": "text/plain"}, "x", http.StatusUnsupportedMediaType},
		{"reads need no token", tok, "GET", self, nil, "", 0},
		{"token does not excuse a foreign Host", tok, "POST", "evil.example:9180", map[string]string{"Authorization": "Bearer s3cret"}, "", http.StatusMisdirectedRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := checkAdminRequest(adminReq(c.method, c.host, c.hdr, c.body), c.p)
			got := 0
			if ref != nil {
				got = ref.status
			}
			if got != c.want {
				t.Errorf("%s %s Host %q %v: got status %d (%v), want %d (0: allowed)", c.method, c.body, c.host, c.hdr, got, ref, c.want)
			}
			if ref != nil && ref.msg == "" {
				t.Error("refusal without a message")
			}
		})
	}
}

// TestCheckAdminRequestDuplicates: two Origin, Sec-Fetch-Site,
// Content-Type, X-CSRF-Token or Authorization headers are refused,
// whichever comes first.
func TestCheckAdminRequestDuplicates(t *testing.T) {
	const self = "127.0.0.1:9180"
	for _, c := range []struct {
		p      *adminPolicy
		key    string
		values []string
	}{
		{&adminPolicy{csrf: "c"}, "Origin", []string{"http://" + self, "https://evil.example"}},
		{&adminPolicy{csrf: "c"}, "Sec-Fetch-Site", []string{"same-origin", "cross-site"}},
		{&adminPolicy{csrf: "c"}, "Content-Type", []string{"application/json", "text/plain"}},
		{&adminPolicy{csrf: "c"}, "X-Csrf-Token", []string{"c", "c"}},
		{&adminPolicy{token: "t"}, "Authorization", []string{"Bearer t", "Bearer t"}},
	} {
		r := adminReq("POST", self, map[string]string{"Origin": "http://" + self, "X-CSRF-Token": "c"}, "")
		if ref := checkAdminRequest(r, &adminPolicy{csrf: "c"}); ref != nil {
			t.Fatalf("the base request is refused: %v", ref)
		}
		r.Header.Del(c.key)
		for _, v := range c.values {
			r.Header.Add(c.key, v)
		}
		if ref := checkAdminRequest(r, c.p); ref == nil {
			t.Errorf("two %s headers %q: allowed, want refused", c.key, c.values)
		}
	}
}

// FuzzAdminRequest feeds raw HTTP requests to the admin request parser
// under a tokenless and a token policy and checks, with independent
// reasoning, that whatever it lets through is safe: the Host names the
// listener, and a state change carries no form body and either the token
// or a same-origin Origin with the CSRF token. `go test` runs the seeds.
func FuzzAdminRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nUser-Agent: Prometheus/3.0\r\nAccept: application/openmetrics-text\r\n\r\n",
		"GET /upstreams HTTP/1.1\r\nHost: evil.example:9180\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: [::1]:9180\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: [::0]\r\n\r\n",
		"HEAD /readyz HTTP/1.0\r\n\r\n",
		"POST /upstreams/app/servers/b1/drain HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: https://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx",
		"POST /bans?addr=192.0.2.1 HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://127.0.0.1:9180\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"POST /bans?addr=192.0.2.1 HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nAuthorization: Bearer s3cret\r\n\r\n",
		"DELETE /bans?addr=192.0.2.1 HTTP/1.1\r\nHost: localhost:9180\r\nOrigin: http://localhost:9180\r\nSec-Fetch-Site: same-origin\r\n\r\n",
		"DELETE /bans?addr=192.0.2.1 HTTP/1.1\r\nHost: localhost:9180\r\nOrigin: http://localhost:9180\r\nSec-Fetch-Site: same-origin\r\nX-CSRF-Token: Kq3M2ZrXh7RVvN4TqWBLpLdYTa\r\n\r\n",
		"POST /upstreams/app/servers/b1/drain HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://127.0.0.1:9180\r\nContent-Type: application/json\r\nX-CSRF-Token: Kq3M2ZrXh7RVvN4TqWBLpLdYTb\r\nContent-Length: 2\r\n\r\n{}",
		"POST /upstreams/app/servers/b1/drain HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://127.0.0.1:9180\r\nX-CSRF-Token: Kq3M2ZrXh7RVvN4TqWBLpLdYTa\r\nX-CSRF-Token: x\r\n\r\n",
		"POST /bans HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://127.0.0.1:9180\r\nOrigin: https://evil.example\r\n\r\n",
		"POST /bans HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://127.0.0.1:9180\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"POST http://evil.example:9180/bans HTTP/1.1\r\nHost: 127.0.0.1:9180\r\nOrigin: http://evil.example:9180\r\n\r\n",
		"POST /bans HTTP/1.1\r\nHost: GATEHOUSE.internal.:9180\r\nOrigin: http://gatehouse.internal.:9180\r\nSec-Fetch-Site: cross-site\r\n\r\n",
		"PATCH /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: null\r\nContent-Type: multipart/form-data; boundary=z\r\nContent-Length: 4\r\n\r\n--z-",
	} {
		f.Add([]byte(seed))
	}
	names := []string{"gatehouse.internal"}
	const csrf = "Kq3M2ZrXh7RVvN4TqWBLpLdYTa"
	policies := []*adminPolicy{{hosts: names, csrf: csrf}, {token: "s3cret", hosts: names, csrf: csrf}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		for _, p := range policies {
			ref := checkAdminRequest(r, p)
			if ref != nil {
				if ref.status < 400 || ref.msg == "" {
					t.Fatalf("refusal %+v: want a 4xx status and a message", ref)
				}
				continue
			}
			if !oracleHost(r.Host, p.hosts) {
				t.Fatalf("allowed Host %q, which is neither an IP literal, localhost nor in %q", r.Host, p.hosts)
			}
			if r.Method == "GET" || r.Method == "HEAD" {
				continue
			}
			ct := strings.TrimSpace(r.Header.Get("Content-Type"))
			if mt, _, _ := mime.ParseMediaType(ct); !(ct == "" && r.ContentLength == 0) && mt != "application/json" {
				t.Fatalf("allowed %s with Content-Type %q and length %d", r.Method, ct, r.ContentLength)
			}
			if p.token != "" {
				if r.Header.Get("Authorization") != "Bearer "+p.token {
					t.Fatalf("allowed %s with Authorization %q under a token", r.Method, r.Header.Get("Authorization"))
				}
				continue
			}
			o := r.Header.Values("Origin")
			if len(o) != 1 {
				t.Fatalf("allowed %s without a token with Origin %q", r.Method, o)
			}
			u, err := url.Parse(o[0])
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				t.Fatalf("allowed %s from Origin %q to Host %q", r.Method, o[0], r.Host)
			}
			if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
				t.Fatalf("allowed %s with Sec-Fetch-Site %q", r.Method, s)
			}
			if c := r.Header.Values("X-Csrf-Token"); len(c) != 1 || c[0] != csrf {
				t.Fatalf("allowed %s without a token with X-CSRF-Token %q", r.Method, c)
			}
		}
	})
}

// oracleHost is the Host rule written a second way, with net.SplitHostPort.
func oracleHost(host string, names []string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	} else if lit, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(lit, "]") {
		h = strings.TrimSuffix(lit, "]") // an IPv6 literal without a port
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || slices.Contains(names, h)
}
