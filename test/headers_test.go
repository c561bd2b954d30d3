package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// appSite is one site "app" for app.test with a files certificate, no
// redirect (so the plain listener proxies too), and one upstream.
func appSite(certFile, keyFile, backendAddr string) string {
	return fmt.Sprintf(`
[sites.app]
hosts = ["app.test"]
tls = "files"
cert_file = %q
key_file = %q
redirect_https = false
hsts = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "b1", address = %q }]
`, certFile, keyFile, backendAddr)
}

// TestForwardingHeaders runs the binary with a files certificate from a
// test CA and checks what the backend receives over TLS and over the plain
// listener: Host kept, X-Real-IP/X-Forwarded-* set from the connection and
// never from spoofed client headers, hop-by-hop headers removed.
func TestForwardingHeaders(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, dir, "app.test")
	g := startGatehouseIn(t, dir, baseListeners+appSite(certFile, keyFile, be.addr()))

	spoof := map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "ftp"}

	check := func(t *testing.T, s seen, proto string) {
		t.Helper()
		if s.Host != "app.test" {
			t.Errorf("backend Host = %q, want app.test (preserved)", s.Host)
		}
		if got := s.Header.Get("X-Real-Ip"); got != "127.0.0.1" {
			t.Errorf("backend X-Real-IP = %q, want 127.0.0.1 (the peer; a spoofed 6.6.6.6 must not pass)", got)
		}
		xff := s.Header.Values("X-Forwarded-For")
		if len(xff) != 1 || xff[0] != "127.0.0.1" {
			t.Errorf("backend X-Forwarded-For = %q, want exactly [127.0.0.1] (untrusted client's chain dropped)", xff)
		}
		if first, _, _ := strings.Cut(strings.Join(xff, ","), ","); strings.TrimSpace(first) == "6.6.6.6" {
			t.Errorf("spoofed 6.6.6.6 reached the backend as the first X-Forwarded-For address")
		}
		if got := s.Header.Get("X-Forwarded-Proto"); got != proto {
			t.Errorf("backend X-Forwarded-Proto = %q, want %q", got, proto)
		}
		if got := s.Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != "app.test" {
			t.Errorf("backend X-Forwarded-Host = %q, want [app.test]", got)
		}
	}

	t.Run("https", func(t *testing.T) {
		c := tlsClient(ca.pool, "app.test")
		code, body := get(t, c, "https://"+g.httpsAddr+"/tls?x=1", "app.test", spoof)
		if code != 200 || !strings.Contains(body, "ok from b1") {
			t.Fatalf("GET over TLS: %d %q, want 200 from b1", code, body)
		}
		s := be.last(t)
		if s.URI != "/tls?x=1" {
			t.Errorf("backend URI = %q, want /tls?x=1", s.URI)
		}
		check(t, s, "https")
	})

	t.Run("https-h2", func(t *testing.T) {
		c := tlsClient(ca.pool, "app.test")
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
		req := mustRequest("GET", "https://"+g.httpsAddr+"/h2", "app.test")
		for k, v := range spoof {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("GET over TLS with h2: status %d over HTTP/%d, want 200 over HTTP/2", resp.StatusCode, resp.ProtoMajor)
		}
		s := be.last(t)
		if s.URI != "/h2" {
			t.Fatalf("backend last URI = %q, want /h2", s.URI)
		}
		check(t, s, "https")
	})

	t.Run("plain", func(t *testing.T) {
		code, body := get(t, plainClient(), "http://"+g.httpAddr+"/plain", "app.test", spoof)
		if code != 200 || !strings.Contains(body, "ok from b1") {
			t.Fatalf("GET over plain HTTP: %d %q, want 200 from b1", code, body)
		}
		check(t, be.last(t), "http")
	})

	t.Run("hop-by-hop", func(t *testing.T) {
		for _, req := range []string{
			"GET /hop1 HTTP/1.1\r\nHost: app.test\r\nConnection: X-Foo\r\nX-Foo: bar\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n",
			"GET /hop2 HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nX-Kept: yes\r\n\r\n",
		} {
			before := be.count()
			resp, body, _ := rawExchange(t, g.httpAddr, req, 0)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d %q, want 200", firstLine(req), resp.StatusCode, body)
			}
			if be.count() != before+1 {
				t.Fatalf("%s: backend saw %d requests, want 1", firstLine(req), be.count()-before)
			}
			s := be.last(t)
			for _, h := range []string{"X-Foo", "Keep-Alive", "Proxy-Connection", "Upgrade", "Http2-Settings"} {
				if v, ok := s.Header[h]; ok {
					t.Errorf("%s: hop-by-hop header %s: %q reached the backend", firstLine(req), h, v)
				}
			}
			if c := strings.ToLower(strings.Join(s.Header.Values("Connection"), ",")); strings.Contains(c, "x-foo") || strings.Contains(c, "upgrade") || strings.Contains(c, "http2-settings") {
				t.Errorf("%s: backend Connection = %q still names client hop-by-hop headers", firstLine(req), c)
			}
			if s.Header.Get("X-Kept") != "yes" {
				t.Errorf("%s: end-to-end header X-Kept lost (backend headers %v)", firstLine(req), s.Header)
			}
		}
	})

	t.Run("unknown-host-421", func(t *testing.T) {
		before := be.count()
		resp, body, _ := rawExchange(t, g.httpAddr, "GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n", 0)
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host nobody.test on plain listener: %d %q, want 421", resp.StatusCode, body)
		}
		c := tlsClient(ca.pool, "app.test")
		code, _ := get(t, c, "https://"+g.httpsAddr+"/", "nobody.test", nil)
		if code != http.StatusMisdirectedRequest {
			t.Errorf("Host nobody.test over TLS (SNI app.test): %d, want 421", code)
		}
		if n := be.count() - before; n != 0 {
			t.Errorf("backend received %d requests for an unclaimed Host, want 0", n)
		}
	})
}

// TestTrustedProxyChain (library style) checks trusted_proxies: from a
// trusted peer the inbound X-Forwarded-For chain is kept and appended to,
// and X-Real-IP is the first untrusted address in it.
func TestTrustedProxyChain(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startLibrary(t, libraryConfig(`trusted_proxies = ["127.0.0.0/8"]`, be.addr()))

	code, _ := get(t, plainClient(), "http://"+addr+"/chain", "app.test", map[string]string{"X-Forwarded-For": "1.2.3.4"})
	if code != 200 {
		t.Fatalf("GET with X-Forwarded-For from a trusted peer: %d, want 200", code)
	}
	s := be.last(t)
	if got := s.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "1.2.3.4, 127.0.0.1" {
		t.Errorf("backend X-Forwarded-For = %q, want [\"1.2.3.4, 127.0.0.1\"]", got)
	}
	if got := s.Header.Get("X-Real-Ip"); got != "1.2.3.4" {
		t.Errorf("backend X-Real-IP = %q, want 1.2.3.4", got)
	}
	if got := s.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("backend X-Forwarded-Proto = %q, want http", got)
	}

	// A chain with a trusted hop on the right: the client is the first
	// untrusted address from the right.
	get(t, plainClient(), "http://"+addr+"/chain2", "app.test", map[string]string{"X-Forwarded-For": "9.9.9.9, 1.2.3.4, 127.0.0.5"})
	s = be.last(t)
	if got := s.Header.Get("X-Real-Ip"); got != "1.2.3.4" {
		t.Errorf("chain 9.9.9.9, 1.2.3.4, 127.0.0.5: X-Real-IP = %q, want 1.2.3.4", got)
	}
	if got := s.Header.Get("X-Forwarded-For"); got != "9.9.9.9, 1.2.3.4, 127.0.0.5, 127.0.0.1" {
		t.Errorf("chain 9.9.9.9, 1.2.3.4, 127.0.0.5: X-Forwarded-For = %q, want it kept and 127.0.0.1 appended", got)
	}
}

// TestUnknownHostLibrary (library style): a Host no site claims gets 421
// and no backend request, for several spellings.
func TestUnknownHostLibrary(t *testing.T) {
	be := newBackend(t, "b1", nil)
	addr := startLibrary(t, libraryConfig("", be.addr()))
	for _, host := range []string{"nobody.test", "app.test.evil", "sub.app.test", "127.0.0.1"} {
		code, _ := get(t, plainClient(), "http://"+addr+"/", host, nil)
		if code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: status %d, want 421", host, code)
		}
	}
	if n := be.count(); n != 0 {
		t.Errorf("backend received %d requests, want 0", n)
	}
	// Host matching ignores case and port.
	if code, _ := get(t, plainClient(), "http://"+addr+"/", "APP.test:8080", nil); code != 200 {
		t.Errorf("Host APP.test:8080: status %d, want 200", code)
	}
}
