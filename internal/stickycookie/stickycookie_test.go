package stickycookie

import (
	"net/http"
	"testing"
	"time"
)

// TestValue: the named cookie in any Cookie line, quotes trimmed; a name
// that only ends like it does not match.
func TestValue(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; xgh=no", ` gh="b2" ; c=3`}}
	if got := Value(h, "gh"); got != "b2" {
		t.Errorf("Value(gh) = %q, want b2", got)
	}
	if got := Value(h, "missing"); got != "" {
		t.Errorf("Value(missing) = %q, want empty", got)
	}
	if got := Value(http.Header{}, "gh"); got != "" {
		t.Errorf("Value without a Cookie header = %q, want empty", got)
	}
}

// TestMergePrivate: "private" first, "public" dropped, the rest kept.
func TestMergePrivate(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "private"},
		{[]string{"public, max-age=60"}, "private, max-age=60"},
		{[]string{"no-cache", "Private, must-revalidate"}, "private, no-cache, must-revalidate"},
	} {
		if got := MergePrivate(tc.in); got != tc.want {
			t.Errorf("MergePrivate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFor: HttpOnly for the whole site, Secure over TLS or with
// SameSite=None, Lax by default, MaxAge in seconds.
func TestFor(t *testing.T) {
	c := Cookie{Name: "gh", Domain: "example.com", MaxAge: 90 * time.Second}
	got := c.For("b1", false)
	if got.String() != "gh=b1; Path=/; Domain=example.com; Max-Age=90; HttpOnly; SameSite=Lax" {
		t.Errorf("plain HTTP: %s", got)
	}
	if !c.For("b1", true).Secure {
		t.Error("over TLS: not Secure")
	}
	c.SameSite = "none"
	if got := c.For("b1", false); !got.Secure || got.SameSite != http.SameSiteNoneMode {
		t.Errorf("SameSite=None: %s, want Secure", got)
	}
	c.SameSite = "strict"
	if got := c.For("b1", false); got.SameSite != http.SameSiteStrictMode {
		t.Errorf("strict: %s", got)
	}
}
