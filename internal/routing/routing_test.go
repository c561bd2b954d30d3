package routing

import "testing"

// TestHosts: exact names first, then one-label wildcards, then the
// default; Claiming knows no default.
func TestHosts(t *testing.T) {
	var h Hosts[string]
	h.Add("a.example", "a")
	h.Add("*.b.example", "b")
	h.Add("x.b.example", "x")
	h.SetDefault("d")
	for host, want := range map[string]string{
		"a.example": "a", "y.b.example": "b", "x.b.example": "x", "b.example": "d",
		"z.y.b.example": "d", "other.test": "d", "": "d",
	} {
		if got := h.Lookup(host); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", host, got, want)
		}
	}
	if _, ok := h.Claiming("other.test"); ok {
		t.Error("Claiming(other.test) found a site; only the default serves it")
	}
	if s, ok := h.Claiming("y.b.example"); !ok || s != "b" {
		t.Errorf("Claiming(y.b.example) = %q, %v; want b, true", s, ok)
	}
	var empty Hosts[*int]
	if empty.Lookup("a.example") != nil || empty.Default() != nil {
		t.Error("an empty table found something")
	}
}

// TestPrefixes: the first entry added that matches wins (longest first),
// with case unless added with fold.
func TestPrefixes(t *testing.T) {
	var p Prefixes[string]
	p.Add("/static/admin/", false, "admin")
	p.Add("/Media/", true, "media")
	p.Add("/static/", false, "static")
	p.Add("/", false, "root")
	for path, want := range map[string]string{
		"/static/admin/x.css": "admin", "/static/x.css": "static", "/STATIC/x.css": "root",
		"/media/a.png": "media", "/MEDIA/a.png": "media", "/": "root",
	} {
		if got, ok := p.Match(path); !ok || got != want {
			t.Errorf("Match(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	var none Prefixes[string]
	if _, ok := none.Match("/"); ok {
		t.Error("an empty table matched")
	}
}
