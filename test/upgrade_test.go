package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Upgrade requests that are not upgraded (issue 12 item 5, issue 13 items
// 5 and 6): the framing guard must stay on for the rest of a keep-alive
// connection unless the protocol really switched (101 on a hijacked
// connection), requests pipelined after such a request are answered, and
// WebSockets work as before. These tests run the proxy in-process
// (startLibrary), so they do not call t.Parallel.

// upgradeConfig is a plain-HTTP site "app" with a WebSocket route /ws/
// (upstream ws) and everything else on upstream app.
func upgradeConfig(appAddr, wsAddr string) string {
	return fmt.Sprintf(`
[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = ""

[sites.app]
hosts = ["app.test"]
tls = "off"

[[sites.app.routes]]
path = "/ws/"
upstream = "ws"
websocket.enabled = true

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "b1", address = %q }]

[upstreams.ws]
servers = [{ name = "w1", address = %q }]
`, appAddr, wsAddr)
}

// upgradeGET is a WebSocket handshake for path; on a route without
// websocket.enabled it is served as a plain GET.
func upgradeGET(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: app.test\r\nOrigin: http://app.test\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// pathBackend is a recording backend that answers "ok PATH".
func pathBackend(t *testing.T) *backend {
	return newBackend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	})
}

// exchange writes each part in its own write on one connection, reading
// one response after each part but the last, and then reads responses
// until the server closes the connection; it returns "STATUS BODY" per
// response. A connection left open fails the test when the deadline,
// which only bounds a hang, passes.
func exchange(t *testing.T, addr string, parts ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var got []string
	read := func() bool {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("connection neither answered nor closed after %q: %v", got, err)
			}
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, b))
		return true
	}
	for i, p := range parts {
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
		if i < len(parts)-1 && !read() {
			return got
		}
	}
	for read() {
	}
	return got
}

// TestUpgradeNotSwitchedKeepsGuard: an Upgrade request on a route without
// WebSockets is served as plain HTTP, and the smuggling checks stay on for
// the rest of the keep-alive connection: a CL+TE request, an obs-fold and
// Transfer-Encoding on HTTP/1.0 after it get 400 and the connection is
// closed, whether they come after the response or in the same write, and
// the backend never sees them.
func TestUpgradeNotSwitchedKeepsGuard(t *testing.T) {
	be := pathBackend(t)
	ws := newWSServer(t, "w1")
	addr := startLibrary(t, upgradeConfig(be.addr(), ws.addr()))

	attacks := map[string]string{
		"CL+TE": "POST /clte HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
		"obs-fold":       "GET /fold HTTP/1.1\r\nHost: app.test\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n",
		"TE on HTTP/1.0": "POST /te10 HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	}
	for name, attack := range attacks {
		for _, pipelined := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pipelined=%v", name, pipelined), func(t *testing.T) {
				before := len(be.requests())
				up := upgradeGET("/plain")
				parts := []string{up, attack}
				if pipelined {
					parts = []string{up + attack}
				}
				got := exchange(t, addr, parts...)
				if len(got) != 2 || got[0] != "200 ok /plain" || !strings.HasPrefix(got[1], "400 ") {
					t.Errorf("responses %q, want the upgrade GET served (200), the attack refused (400) and the connection closed", got)
				}
				var uris []string
				for _, s := range be.requests()[before:] {
					uris = append(uris, s.URI)
				}
				if fmt.Sprint(uris) != "[/plain]" {
					t.Errorf("backend saw %q, want only [/plain]", uris)
				}
			})
		}
	}
	if n := ws.count(); n != 0 {
		t.Errorf("the WebSocket backend saw %d requests", n)
	}
}

// TestUpgradePipelinedAnswered: requests pipelined in one write around an
// Upgrade request that is not upgraded are all answered, in order, and the
// connection stays usable (issue 13 item 6). Each stream ends with a
// request that asks the server to close, so the test waits for events
// only.
func TestUpgradePipelinedAnswered(t *testing.T) {
	be := pathBackend(t)
	ws := newWSServer(t, "w1")
	addr := startLibrary(t, upgradeConfig(be.addr(), ws.addr()))

	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: app.test\r\n\r\n" }
	last := "GET /last HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
	for name, tc := range map[string]struct {
		stream string
		want   []string
	}{
		"upgrade then get":             {upgradeGET("/a") + get("/b") + last, []string{"200 ok /a", "200 ok /b", "200 ok /last"}},
		"get then upgrade then get":    {get("/1") + upgradeGET("/2") + get("/3") + last, []string{"200 ok /1", "200 ok /2", "200 ok /3", "200 ok /last"}},
		"two upgrades then get":        {upgradeGET("/x") + upgradeGET("/y") + last, []string{"200 ok /x", "200 ok /y", "200 ok /last"}},
		"h2c upgrade then get":         {"GET /h HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n" + last, []string{"200 ok /h", "200 ok /last"}},
		"upgrade with a body then get": {"GET /p HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabc" + last, []string{"200 ok /p", "200 ok /last"}},
		// A refused handshake on the WebSocket route closes the
		// connection, as it did before.
		"refused websocket origin then get": {strings.Replace(upgradeGET("/ws/echo/"), "http://app.test", "http://evil.test", 1) + last, []string{"403"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := exchange(t, addr, tc.stream)
			if len(got) != len(tc.want) {
				t.Fatalf("responses %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("response %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestUpgradeWebSocketFrameWithHandshake: a client that sends its first
// WebSocket frame in the same write as the handshake (the frame reaches
// the edge before the backend has answered 101) gets the frame echoed:
// the guard holds it until the switch and then hands it to the tunnel
// unparsed. Also on a keep-alive connection that served a request first.
func TestUpgradeWebSocketFrameWithHandshake(t *testing.T) {
	be := pathBackend(t)
	ws := newWSServer(t, "w1")
	addr := startLibrary(t, upgradeConfig(be.addr(), ws.addr()))

	for _, first := range []string{"", "GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n"} {
		t.Run(fmt.Sprintf("after a request=%v", first != ""), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if first != "" {
				io.WriteString(c, first)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			// A masked text frame; its bytes would be rejected as a
			// request head ("\x81..." is no request line).
			payload := []byte("hello in the handshake packet")
			key := [4]byte{0x11, 0x22, 0x33, 0x44}
			frame := []byte{0x81, 0x80 | byte(len(payload))}
			frame = append(frame, key[:]...)
			for i, b := range payload {
				frame = append(frame, b^key[i%4])
			}
			if _, err := io.WriteString(c, upgradeGET("/ws/echo/")+string(frame)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			op, got, err := wsRawFrame(br)
			if err != nil || op != 1 || string(got) != string(payload) {
				t.Fatalf("echo: op %d %q, %v; want a text frame %q", op, got, err, payload)
			}
			// The tunnel carries later frames too.
			frame[len(frame)-1] ^= 1
			c.Write(frame)
			if _, got, err = wsRawFrame(br); err != nil || got[len(got)-1] != payload[len(payload)-1]^1 {
				t.Fatalf("second echo: %q, %v", got, err)
			}
		})
	}
}
