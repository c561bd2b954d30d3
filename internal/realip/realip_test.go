package realip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

var trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}

func TestClient(t *testing.T) {
	for _, tc := range []struct {
		peer    string
		xff     []string
		xRealIP string
		want    string
	}{
		{"192.0.2.1", []string{"198.51.100.7"}, "", "192.0.2.1"},               // untrusted peer: its headers are ignored
		{"10.0.0.1", nil, "", "10.0.0.1"},                                      // trusted peer, no header
		{"10.0.0.1", nil, " 198.51.100.7 ", "198.51.100.7"},                    // X-Real-IP without X-Forwarded-For
		{"10.0.0.1", []string{"198.51.100.8"}, "198.51.100.7", "198.51.100.8"}, // X-Forwarded-For wins
		{"10.0.0.1", []string{"203.0.113.5, 198.51.100.7, 10.1.1.1"}, "", "198.51.100.7"},
		{"10.0.0.1", []string{"203.0.113.5", "198.51.100.7", "10.1.1.1"}, "", "198.51.100.7"}, // several fields, one list
		{"10.0.0.1", []string{"10.2.2.2, 10.1.1.1"}, "", "10.2.2.2"},                          // all trusted: the leftmost
		{"10.0.0.1", []string{"203.0.113.5, junk, 10.1.1.1"}, "", "10.1.1.1"},                 // junk stops the walk
		{"10.0.0.1", []string{"198.51.100.7:4711"}, "", "198.51.100.7"},                       // with a port
		{"10.0.0.1", []string{"[2001:db9::1]:80"}, "", "2001:db9::1"},
		{"10.0.0.1", []string{"::ffff:198.51.100.7"}, "", "198.51.100.7"}, // mapped addresses are unmapped
		{"::ffff:10.0.0.1", []string{"198.51.100.7"}, "", "198.51.100.7"},
		{"10.0.0.1", []string{" , ,198.51.100.7,"}, "", "198.51.100.7"}, // empty entries are skipped
	} {
		got := Client(trusted, netip.MustParseAddr(tc.peer), forwarded(tc.xff, tc.xRealIP))
		if got.String() != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q, X-Real-IP %q: client %s, want %s", tc.peer, tc.xff, tc.xRealIP, got, tc.want)
		}
	}
	if got := Client(nil, netip.MustParseAddr("10.0.0.1"), forwarded([]string{"198.51.100.7"}, "")); got.String() != "10.0.0.1" {
		t.Errorf("no trusted proxies: client %s, want the peer", got)
	}
}

// forwarded is a request header with the X-Forwarded-For fields xff and,
// when not empty, X-Real-IP.
func forwarded(xff []string, xRealIP string) http.Header {
	h := http.Header{}
	if len(xff) > 0 {
		h["X-Forwarded-For"] = xff
	}
	if xRealIP != "" {
		h["X-Real-Ip"] = []string{xRealIP}
	}
	return h
}

func TestAllowed(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	deny := []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}
	for _, tc := range []struct {
		allow, deny []netip.Prefix
		addr        string
		want        bool
	}{
		{nil, nil, "198.51.100.1", true},
		{allow, nil, "192.0.2.1", true},
		{allow, nil, "198.51.100.1", false},
		{nil, deny, "192.0.2.200", false},
		{allow, deny, "192.0.2.200", false}, // deny wins
		{allow, deny, "192.0.2.1", true},
	} {
		if got := Allowed(tc.allow, tc.deny, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("allow %v deny %v: Allowed(%s) = %v, want %v", tc.allow, tc.deny, tc.addr, got, tc.want)
		}
	}
}

// FuzzClient: whatever the headers say, an untrusted peer is the client,
// and otherwise the client is the peer or an address the headers name.
func FuzzClient(f *testing.F) {
	f.Add("10.0.0.1", "203.0.113.5, 198.51.100.7, 10.1.1.1", "")
	f.Add("192.0.2.1", "198.51.100.7", "198.51.100.8")
	f.Add("2001:db8::1", "[2001:db9::1]:80,junk", "")
	f.Fuzz(func(t *testing.T, peer, xff, xRealIP string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		got := Client(trusted, p, forwarded([]string{xff}, xRealIP))
		if !got.IsValid() || got.Is4In6() {
			t.Fatalf("Client(%s, %q, %q) = %v: not a valid unmapped address", peer, xff, xRealIP, got)
		}
		if !Trusted(trusted, p) {
			if got != p.Unmap() {
				t.Fatalf("untrusted peer %s: client %s, want the peer", peer, got)
			}
			return
		}
		if got == p.Unmap() {
			return
		}
		for _, part := range strings.Split(xff, ",") {
			if a, err := parseForwardedAddr(strings.TrimSpace(part)); err == nil && a == got {
				return
			}
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(xRealIP)); err == nil && a.Unmap() == got {
			return
		}
		t.Fatalf("Client(%s, %q, %q) = %s: neither the peer nor an address of the headers", peer, xff, xRealIP, got)
	})
}
