package ratelimit

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		addr   string
		v6Bits int
		want   string
	}{
		{"192.0.2.1", 0, "192.0.2.1/32"},
		{"::ffff:192.0.2.1", 0, "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6%eth0", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56"},
		{"2001:db8:1:2ff:3:4:5:6", 60, "2001:db8:1:2f0::/60"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"},
		{"2001:db8:1:2:3:4:5:6", 500, "2001:db8:1:2:3:4:5:6/128"},
	}
	for _, tt := range tests {
		k := KeyOf(netip.MustParseAddr(tt.addr), tt.v6Bits)
		if got := k.String(); got != tt.want {
			t.Errorf("KeyOf(%s, %d) = %s, want %s", tt.addr, tt.v6Bits, got, tt.want)
		}
		if !k.Contains(netip.MustParseAddr(tt.addr)) {
			t.Errorf("KeyOf(%s, %d).Contains(itself) = false", tt.addr, tt.v6Bits)
		}
	}
	if k := KeyOf(netip.Addr{}, 0); k.IsValid() || k != (Key{}) {
		t.Errorf("KeyOf(invalid) = %v, want the zero Key", k)
	}
}

func TestKeySameAndDifferentSlash64(t *testing.T) {
	a := KeyOf(netip.MustParseAddr("2001:db8:0:1::1"), 64)
	b := KeyOf(netip.MustParseAddr("2001:db8:0:1:ffff:ffff:ffff:ffff"), 64)
	c := KeyOf(netip.MustParseAddr("2001:db8:0:2::1"), 64)
	if a != b {
		t.Errorf("same /64: %v != %v", a, b)
	}
	if a == c {
		t.Errorf("different /64 share key %v", a)
	}
	// An IPv4 key never equals an IPv6 key with the same leading bytes.
	v4 := KeyOf(netip.MustParseAddr("32.1.13.184"), 0) // 0x2001:0db8
	v6 := KeyOf(netip.MustParseAddr("2001:db8::"), 32)
	if v4 == v6 {
		t.Errorf("IPv4 key equals IPv6 key %v", v6)
	}
}

func TestParseKeyAndText(t *testing.T) {
	good := map[string]string{
		"192.0.2.7":               "192.0.2.7/32",
		"192.0.2.7/32":            "192.0.2.7/32",
		"::ffff:192.0.2.7/128":    "192.0.2.7/32",
		"2001:db8::1":             "2001:db8::/64",
		"2001:db8:aa::/48":        "2001:db8:aa::/48",
		"2001:db8::5/128":         "2001:db8::5/128",
		"2001:db8:0:0:1::/80":     "2001:db8:0:0:1::/80",
		"192.0.2.0/24":            "192.0.2.0/24",
		"10.0.0.0/8":              "10.0.0.0/8",
		"::ffff:192.0.2.0/120":    "192.0.2.0/24",
		"2001:db8:0:0:1:2:3:4/80": "",
	}
	for in, want := range good {
		if want == "" {
			continue
		}
		k, err := ParseKey(in, 64)
		if err != nil || k.String() != want {
			t.Errorf("ParseKey(%q) = %v, %v; want %s", in, k, err, want)
			continue
		}
		b, _ := json.Marshal(k)
		var back Key
		if err := json.Unmarshal(b, &back); err != nil || back != k {
			t.Errorf("JSON round trip of %v: %s -> %v, %v", k, b, back, err)
		}
	}
	for in, msg := range map[string]string{
		"":                        "",
		"nope":                    "",
		"::/0":                    "/0",
		"0.0.0.0/0":               "/0",
		"::ffff:0.0.0.0/96":       "/0",
		"1.2.3.4/33":              "",
		"192.0.2.7/24":            "the /24 prefix is 192.0.2.0/24",
		"2001:db8:0:0:1::/64":     "the /64 prefix is 2001:db8::/64",
		"2001:db8:0:0:1:2:3:4/80": "the /80 prefix is 2001:db8:0:0:1::/80",
	} {
		k, err := ParseKey(in, 64)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseKey(%q) = %v, %v; want an error containing %q", in, k, err, msg)
		}
	}
	var k Key
	if err := k.UnmarshalText([]byte("192.0.2.1")); err == nil {
		t.Error("UnmarshalText of a bare address succeeded, want error (the file form is a prefix)")
	}
}

func TestKeyContains(t *testing.T) {
	tests := []struct {
		key     string
		in, out []string
	}{
		{"192.0.2.0/24", []string{"192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9"}, []string{"192.0.1.255", "192.0.3.0", "::c000:209"}},
		{"192.0.2.7/32", []string{"192.0.2.7"}, []string{"192.0.2.6", "192.0.2.8"}},
		{"2001:db8:aa::/48", []string{"2001:db8:aa::", "2001:db8:aa:ffff:ffff:ffff:ffff:ffff", "2001:db8:aa::1%eth0"}, []string{"2001:db8:ab::", "2001:db8:a9:ffff:ffff:ffff:ffff:ffff"}},
		{"2001:db8::5/128", []string{"2001:db8::5"}, []string{"2001:db8::4", "2001:db8::6"}},
	}
	for _, tt := range tests {
		k, err := ParseKey(tt.key, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range tt.in {
			if !k.Contains(mustAddr(a)) {
				t.Errorf("%v.Contains(%s) = false, want true", k, a)
			}
		}
		for _, a := range tt.out {
			if k.Contains(mustAddr(a)) {
				t.Errorf("%v.Contains(%s) = true, want false", k, a)
			}
		}
	}
}

func TestKeyHashSpreads(t *testing.T) {
	const shards = 16
	var count [shards]int
	for i := range 16000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		count[KeyOf(a, 0).hash(42)%shards]++
	}
	for i, c := range count {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d got %d of 16000 sequential keys, want about 1000", i, c)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
