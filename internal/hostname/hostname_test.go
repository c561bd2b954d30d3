package hostname

import (
	"strings"
	"testing"
)

// TestCanonical: the Host forms a request can carry and the name each is
// looked up by (ok = false: 400).
func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"secret.test", "secret.test", true},
		{"secret.test.", "secret.test", true},
		{"SECRET.Test.", "secret.test", true},
		{"secret.test:8443", "secret.test", true},
		{"secret.test.:8443", "secret.test", true},
		{"secret.test:", "secret.test", true},
		{"", "", true},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"[::1]:443", "::1", true},
		{"[0:0:0::1]", "::1", true},
		{"[2001:DB8::A]", "2001:db8::a", true},
		{"::1", "::1", true},
		{"under_score.test", "under_score.test", true},

		{"secret.test..", "", false},
		{"secret..test", "", false},
		{".secret.test", "", false},
		{".", "", false},
		{":80", "", false},
		{"[]", "", false},
		{"secret.test:abc", "", false},
		{"secret.test:8443:1", "", false},
		{"secret.test:1234567", "", false},
		{"user@secret.test", "", false},
		{"secret.test/x", "", false},
		{`secret.test\x`, "", false},
		{"secret.test x", "", false},
		{"secret%2etest", "", false},
		{"[::1]junk", "", false},
		{"[::1", "", false},
		{"[127.0.0.1]", "", false},
		{"[fe80::1%25eth0]", "", false},
		{"[secret.test]", "", false},
	} {
		got, ok := Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Canonical("www.example.com:443") }); n != 0 && !raceEnabled {
		t.Errorf("Canonical of a canonical name: %.1f allocs, want 0", n)
	}
}

// FuzzSiteHost (named for the function it fuzzed in proxy): Canonical never panics, and an accepted name is lower
// case, has no port, no trailing dot and no empty label, and is its own
// canonical form.
func FuzzSiteHost(f *testing.F) {
	for _, s := range []string{"secret.test.", "A.B:80", "[::1]:443", "::ffff:1.2.3.4", ":80", "a..b", "[]", "x:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, ok := Canonical(in)
		if !ok {
			return
		}
		if in != "" && h == "" {
			t.Fatalf("Canonical(%q) = \"\", true", in)
		}
		if h != strings.ToLower(h) || strings.HasSuffix(h, ".") || strings.Contains(h, "..") || strings.HasPrefix(h, ".") {
			t.Fatalf("Canonical(%q) = %q: not canonical", in, h)
		}
		if h2, ok2 := Canonical(h); h2 != h || !ok2 {
			t.Fatalf("Canonical(%q) = %q, but Canonical(%q) = %q, %v", in, h, h, h2, ok2)
		}
	})
}
