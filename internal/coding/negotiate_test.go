package coding

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	all := []Coding{Gzip, Zstd, Brotli}
	zbg := []Coding{Zstd, Brotli, Gzip}
	tests := []struct {
		name   string
		accept []string // nil: no Accept-Coding field
		offers []Coding
		want   Coding
		wantOK bool
	}{
		{"no field: identity", nil, all, Identity, true},
		{"empty field: identity", []string{""}, all, Identity, true},
		{"browser: server order decides", []string{"gzip, deflate, br, zstd"}, all, Gzip, true},
		{"browser: other server order", []string{"gzip, deflate, br, zstd"}, zbg, Zstd, true},
		{"only gzip", []string{"gzip"}, zbg, Gzip, true},
		{"q picks br over server order", []string{"gzip;q=0.5, br;q=0.9, zstd;q=0.1"}, all, Brotli, true},
		{"q=0 excludes", []string{"gzip;q=0, br"}, all, Brotli, true},
		{"all excluded: identity", []string{"gzip;q=0, br;q=0, zstd;q=0"}, all, Identity, true},
		{"not offered: identity", []string{"deflate, compress"}, all, Identity, true},
		{"star matches all", []string{"*"}, zbg, Zstd, true},
		{"star with exclusion", []string{"*, zstd;q=0"}, zbg, Brotli, true},
		{"star weight vs named", []string{"*;q=0.2, br;q=0.1"}, []Coding{Brotli, Gzip}, Gzip, true},
		{"star q=0 excludes identity", []string{"*;q=0"}, all, Identity, false},
		{"star q=0 but identity named", []string{"*;q=0, identity"}, all, Identity, true},
		{"star q=0 but gzip named", []string{"gzip, *;q=0"}, all, Gzip, true},
		{"identity q=0 and nothing offered", []string{"identity;q=0, deflate"}, all, Identity, false},
		{"identity q=0 with gzip", []string{"identity;q=0, gzip"}, all, Gzip, true},
		{"identity higher than gzip", []string{"gzip;q=0.5, identity"}, all, Identity, true},
		{"identity equal to gzip: coding wins", []string{"gzip;q=0.5, identity;q=0.5"}, all, Gzip, true},
		{"case-insensitive token and q", []string{"GZIP;Q=0.5, Br;q=0.6"}, all, Brotli, true},
		{"x-gzip is gzip", []string{"x-gzip"}, all, Gzip, true},
		{"whitespace", []string{"  br \t; \tq=1.0 ,\tgzip ; q=0.3  "}, all, Brotli, true},
		{"empty elements", []string{",,, ,zstd,,"}, all, Zstd, true},
		{"duplicate: the exclusion stands", []string{"gzip;q=0, gzip"}, all, Identity, true},
		{"duplicate: smaller weight", []string{"br;q=0.9, gzip;q=0.8, br;q=0.1"}, all, Gzip, true},
		{"several field lines", []string{"gzip;q=0.1", "zstd"}, all, Zstd, true},
		{"malformed q ignored: q>1", []string{"br;q=2, gzip"}, zbg, Gzip, true},
		{"malformed q ignored: four digits", []string{"br;q=0.5000, gzip;q=0.1"}, zbg, Gzip, true},
		{"malformed q ignored: word", []string{"zstd;q=high"}, all, Identity, true},
		{"malformed q ignored: empty", []string{"zstd;q="}, all, Identity, true},
		{"malformed q ignored: 1.5", []string{"zstd;q=1.5"}, all, Identity, true},
		{"malformed q does not exclude", []string{"gzip;q=0x"}, all, Identity, true},
		{"q 1.000 ok", []string{"zstd;q=1.000"}, all, Zstd, true},
		{"q 0.001 is acceptable", []string{"zstd;q=0.001"}, all, Zstd, true},
		{"q 0.000 excludes", []string{"zstd;q=0.000"}, all, Identity, true},
		{"q 0. is zero", []string{"zstd;q=0."}, all, Identity, true},
		{"other parameter ignored", []string{"gzip;level=9"}, all, Gzip, true},
		{"bad token ignored", []string{"gz ip, br"}, all, Brotli, true},
		{"quoted token ignored", []string{"\"gzip\""}, all, Identity, true},
		{"offers limit", []string{"zstd, br"}, []Coding{Gzip}, Identity, true},
		{"no offers", []string{"gzip"}, nil, Identity, true},
		{"identity offer ignored", []string{"identity;q=0"}, []Coding{Identity}, Identity, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Negotiate(tt.accept, tt.offers)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Negotiate(%q, %v) = %v, %v; want %v, %v", tt.accept, tt.offers, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseQ(t *testing.T) {
	for s, want := range map[string]int{"0": 0, "1": 1000, "0.5": 500, "0.25": 250, "0.125": 125, "1.0": 1000, "1.00": 1000, "1.000": 1000, "0.": 0, "1.": 1000} {
		if got, ok := parseQ(s); !ok || got != want {
			t.Errorf("parseQ(%q) = %d, %v; want %d, true", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "2", "0.1234", "1.001", "1.5", ".5", "-0", "0,5", "0.5 ", "00", "1e0"} {
		if got, ok := parseQ(s); ok {
			t.Errorf("parseQ(%q) = %d, true; want not ok", s, got)
		}
	}
}

func TestNegotiateDoesNotAllocate(t *testing.T) {
	accept := []string{"gzip;q=0.8, deflate, br;q=0.9, zstd, *;q=0.1, identity;q=0.5"}
	offers := []Coding{Gzip, Zstd, Brotli}
	if n := testing.AllocsPerRun(100, func() { Negotiate(accept, offers) }); n != 0 {
		t.Errorf("Negotiate allocates %v times per call, want 0", n)
	}
}

// FuzzAcceptEncoding checks the parser's invariants on any field value:
// no panic, the result is one of the offers or Identity, a coding chosen
// is acceptable by the header's own words, and an explicit q=0 for a
// coding is never overridden.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{
		"", "gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8, *;q=0.1",
		"identity;q=0", "*;q=0", "gzip;q=0, gzip", "x-gzip", " ,\t,", "zstd;q=0.001",
		"br;q=2", "GZIP;Q=0.5", "gzip;q=0.5000", ";q=1", "gzip;;q=0", "*, zstd;q=0",
		"gzip;level=9;q=0.3", "\"gzip\"", "gzip;q", "gzip;q=0.5;q=0",
	} {
		f.Add(s)
	}
	offers := []Coding{Gzip, Zstd, Brotli}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := Negotiate([]string{v}, offers)
		if got != Identity {
			found := false
			for _, o := range offers {
				found = found || o == got
			}
			if !found {
				t.Fatalf("Negotiate(%q) = %v, not offered", v, got)
			}
			if !ok {
				t.Fatalf("Negotiate(%q) = %v with ok=false", v, got)
			}
		}
		// An element "<coding>;q=0" (in exactly this form) excludes it.
		for _, elem := range strings.Split(v, ",") {
			tok, q, valid := parseElement(elem)
			if !valid || q != 0 {
				continue
			}
			if e, known := Parse(tok); known && e == got && e != Identity {
				t.Fatalf("Negotiate(%q) = %v, which the field excludes (%q)", v, got, elem)
			}
		}
		// Splitting the value over two field lines at a comma changes nothing.
		if i := strings.IndexByte(v, ','); i >= 0 {
			got2, ok2 := Negotiate([]string{v[:i], v[i+1:]}, offers)
			if got2 != got || ok2 != ok {
				t.Fatalf("Negotiate(%q) = %v, %v but split at the first comma = %v, %v", v, got, ok, got2, ok2)
			}
		}
	})
}
