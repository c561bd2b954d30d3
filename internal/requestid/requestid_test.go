package requestid

import (
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		var b [Len]byte
		Generate(&b)
		id := string(b[:])
		if strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("ID %q: not lower-case hex", id)
		}
		if !Valid(id) {
			t.Fatalf("generated ID %q is not Valid", id)
		}
		if seen[id] {
			t.Fatalf("ID %q generated twice", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"3f2a9c", true},
		{"123e4567-e89b-12d3-a456-426614174000", true},
		{"Root=1-67891233-abcdef012345678912345678", true}, // AWS trace ID
		{"aGVsbG8?d29ybGQ", false},                         // "?" is not kept
		{"aGVsbG8+d29ybGQ/Cg~._:=", true},
		{strings.Repeat("a", MaxLen), true},
		{strings.Repeat("a", MaxLen+1), false},
		{"", false},
		{"a b", false},
		{"a\r\nX-Injected: 1", false},
		{"<script>", false},
		{`"quoted"`, false},
		{"é", false},
	} {
		if got := Valid(tc.v); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// BenchmarkRequestID is the cost of a fresh ID: the random bytes in hex
// (generate), and with the string and header slice the response needs
// (with-value).
func BenchmarkRequestID(b *testing.B) {
	b.Run("generate", func(b *testing.B) {
		b.ReportAllocs()
		var id [Len]byte
		for i := 0; i < b.N; i++ {
			Generate(&id)
		}
	})
	b.Run("with-value", func(b *testing.B) {
		b.ReportAllocs()
		var sink []string
		for i := 0; i < b.N; i++ {
			var id [Len]byte
			Generate(&id)
			sink = []string{string(id[:])}
		}
		_ = sink
	})
}
