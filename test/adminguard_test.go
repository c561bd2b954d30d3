package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminDo sends one request to the admin listener at addr with the given
// Host and headers and returns the status and body.
func adminDo(t *testing.T, addr, method, path, host string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// adminCSRF fetches the admin listener's CSRF token (GET /csrf-token),
// which tokenless state changes must send in X-CSRF-Token.
func adminCSRF(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/csrf-token")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || len(b) == 0 {
		return "", fmt.Errorf("GET /csrf-token: %d %q %v", resp.StatusCode, b, err)
	}
	return string(b), nil
}

// adminSameOrigin marks req to the admin listener at addr as a tokenless
// same-origin state change, the way the status page's fetch (or curl
// -H "Origin: http://ADDR" -H "X-CSRF-Token: ...") sends it: the Origin
// names the listener and X-CSRF-Token carries the token it hands out.
func adminSameOrigin(req *http.Request, addr string) error {
	tok, err := adminCSRF(addr)
	if err != nil {
		return err
	}
	req.Header.Set("Origin", "http://"+addr)
	req.Header.Set("X-CSRF-Token", tok)
	return nil
}

// adminPost sends a bodyless POST to the admin listener at addr as a
// tokenless same-origin state change (adminSameOrigin).
func adminPost(addr, path string) (*http.Response, error) {
	req, err := http.NewRequest("POST", "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	if err := adminSameOrigin(req, addr); err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// adminDraining reports whether server b1 of upstream app is draining,
// from GET /upstreams.
func adminDraining(t *testing.T, addr string) bool {
	t.Helper()
	code, body := adminDo(t, addr, "GET", "/upstreams", "", nil, "")
	if code != 200 {
		t.Fatalf("GET /upstreams: %d %s", code, body)
	}
	var ups map[string][]struct {
		Name     string `json:"name"`
		Draining bool   `json:"draining"`
	}
	if err := json.Unmarshal([]byte(body), &ups); err != nil {
		t.Fatalf("GET /upstreams: %v\n%s", err, body)
	}
	for _, s := range ups["app"] {
		if s.Name == "b1" {
			return s.Draining
		}
	}
	t.Fatalf("GET /upstreams has no app/b1: %s", body)
	return false
}

// TestAdminCrossSite is issue 12 item 4 with no token (the default): a web
// page in the operator's browser can neither drain a server nor ban an
// address, and a DNS-rebinding Host is refused even for reads; Prometheus,
// a same-origin JSON call with the CSRF token (the status page's) and curl
// with an Origin and the CSRF token still work.
func TestAdminCrossSite(t *testing.T) {
	t.Parallel()
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	g := startGatehouse(t, plainOnly+`
[ban]
enabled = true
`+twoBackendSite(b1.addr(), b2.addr(), "10r/s"))
	a := g.adminAddr
	drain := "/upstreams/app/servers/b1/drain"
	evil := map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}

	// The attack: fetch(drain, {method: "POST", mode: "no-cors", body: "x"}).
	if code, body := adminDo(t, a, "POST", drain, "", evil, "x"); code < 400 {
		t.Errorf("cross-site text/plain POST to drain: %d %s, want it refused", code, body)
	}
	// Old browsers send neither Origin nor Sec-Fetch-Site.
	if code, body := adminDo(t, a, "POST", drain, "", nil, ""); code != http.StatusForbidden {
		t.Errorf("POST to drain without Origin or token: %d %s, want 403", code, body)
	}
	if adminDraining(t, a) {
		t.Fatal("b1 is draining after cross-site requests")
	}
	if code, body := adminDo(t, a, "POST", "/bans?addr=192.0.2.7&duration=1h", "", evil, "x"); code < 400 {
		t.Errorf("cross-site POST /bans: %d %s, want it refused", code, body)
	}
	if _, body := adminDo(t, a, "GET", "/bans", "", nil, ""); strings.Contains(body, "192.0.2.7") {
		t.Errorf("GET /bans after a cross-site POST lists the address: %s", body)
	}

	// DNS rebinding: evil.example now resolves to 127.0.0.1.
	_, port, _ := strings.Cut(a, ":")
	for _, path := range []string{"/upstreams", "/metrics", "/bans"} {
		if code, body := adminDo(t, a, "GET", path, "evil.example:"+port, nil, ""); code != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with Host evil.example:%s: %d %.80s, want 421", path, port, code, body)
		}
	}
	if code, body := adminDo(t, a, "GET", "/upstreams", "evil.example:9180", nil, ""); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /upstreams with Host evil.example:9180: %d %.80s, want 421", code, body)
	}
	rebound := map[string]string{"Origin": "http://evil.example:" + port, "Content-Type": "application/json"}
	if code, _ := adminDo(t, a, "POST", drain, "evil.example:"+port, rebound, "{}"); code != http.StatusMisdirectedRequest {
		t.Errorf("rebound same-origin POST to drain: %d, want 421", code)
	}
	if adminDraining(t, a) {
		t.Fatal("b1 is draining after a DNS-rebinding POST")
	}

	// Prometheus: no Origin, its own Accept header.
	code, body := adminDo(t, a, "GET", "/metrics", "", map[string]string{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", "User-Agent": "Prometheus/3.0.0"}, "")
	if code != 200 || !strings.Contains(body, "gatehouse_") {
		t.Errorf("Prometheus-style GET /metrics: %d, want 200 with gatehouse_ series", code)
	}
	if code, _ := adminDo(t, a, "GET", "/healthz", "localhost:"+port, nil, ""); code != 200 {
		t.Errorf("GET /healthz with Host localhost:%s: %d, want 200", port, code)
	}

	// Same origin without the CSRF token (curl -H Origin alone, as the
	// docs showed before the status page): refused.
	same := map[string]string{"Origin": "http://" + a, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
	if code, body := adminDo(t, a, "POST", drain, "", same, "{}"); code != http.StatusForbidden || !strings.Contains(body, "X-CSRF-Token") {
		t.Errorf("same-origin JSON POST to drain without the CSRF token: %d %s, want 403 naming X-CSRF-Token", code, body)
	}
	if adminDraining(t, a) {
		t.Fatal("b1 is draining after a same-origin POST without the CSRF token")
	}
	// The status page's fetch: same origin with the CSRF token.
	tok, err := adminCSRF(a)
	if err != nil {
		t.Fatal(err)
	}
	same["X-CSRF-Token"] = tok
	if code, body := adminDo(t, a, "POST", drain, "", same, "{}"); code != 200 {
		t.Fatalf("same-origin JSON POST to drain with the CSRF token: %d %s, want 200", code, body)
	}
	if !adminDraining(t, a) {
		t.Fatal("b1 is not draining after a same-origin JSON POST")
	}
	// curl with an Origin header, the CSRF token and no body.
	resp, err := adminPost(a, "/upstreams/app/servers/b1/undrain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("curl -H Origin -H X-CSRF-Token POST to undrain: %s, want 200", resp.Status)
	}
	if adminDraining(t, a) {
		t.Error("b1 still draining after undrain")
	}
}

// TestAdminToken: with a token, curl's POST with the bearer token works
// without any Origin, and nothing else does.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	g := startGatehouse(t, strings.Replace(plainOnly, "[listeners.admin]\n", "[listeners.admin]\ntoken = \"s3cret\"\nhosts = [\"gatehouse.internal\"]\n", 1)+
		twoBackendSite(b1.addr(), b2.addr(), "10r/s"))
	a := g.adminAddr
	drain := "/upstreams/app/servers/b1/drain"
	_, port, _ := strings.Cut(a, ":")

	if code, _ := adminDo(t, a, "POST", drain, "", nil, ""); code != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d, want 401", code)
	}
	if code, _ := adminDo(t, a, "POST", drain, "", map[string]string{"Origin": "http://" + a, "Content-Type": "application/json"}, "{}"); code != http.StatusUnauthorized {
		t.Errorf("same-origin POST without the token: %d, want 401 (a token, once set, is required)", code)
	}
	if code, _ := adminDo(t, a, "POST", drain, "", map[string]string{"Authorization": "Bearer wrong"}, ""); code != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token: %d, want 401", code)
	}
	if adminDraining(t, a) {
		t.Fatal("b1 draining after refused requests")
	}
	if code, body := adminDo(t, a, "POST", drain, "", map[string]string{"Authorization": "Bearer s3cret", "User-Agent": "curl/8.5.0"}, ""); code != 200 {
		t.Fatalf("curl-like POST with the token: %d %s, want 200", code, body)
	}
	if !adminDraining(t, a) {
		t.Error("b1 not draining after an authorized POST")
	}
	// listeners.admin.hosts: a configured name is served, others are not.
	if code, _ := adminDo(t, a, "GET", "/healthz", "gatehouse.internal:"+port, nil, ""); code != 200 {
		t.Errorf("GET with Host gatehouse.internal (configured): %d, want 200", code)
	}
	if code, _ := adminDo(t, a, "GET", "/healthz", "other.internal:"+port, nil, ""); code != http.StatusMisdirectedRequest {
		t.Errorf("GET with Host other.internal: %d, want 421", code)
	}
}
