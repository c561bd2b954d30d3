package ratelimit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultIPv6Bits is the prefix length IPv6 clients are keyed by when a
// caller passes 0: the /64 that one subscriber line usually gets.
const DefaultIPv6Bits = 64

// Key identifies one client for rate limits, connection caps and bans: an
// IPv4 address, or an IPv6 prefix. The zero Key is invalid. Keys are
// comparable and small (18 bytes), so they are cheap map keys.
type Key struct {
	a    [16]byte // IPv4 in the first 4 bytes; IPv6 masked to bits
	bits uint8    // prefix length within the family; 0 for the zero Key
	v4   bool
}

// KeyOf returns the key of client address a: a itself for IPv4 (an
// IPv4-mapped IPv6 address is unmapped first), the enclosing /v6Bits prefix
// for IPv6. v6Bits ≤ 0 means [DefaultIPv6Bits]; values over 128 mean 128.
// The IPv6 zone is ignored. An invalid a gives the zero Key.
func KeyOf(a netip.Addr, v6Bits int) Key {
	if !a.IsValid() {
		return Key{}
	}
	a = a.Unmap()
	var k Key
	if a.Is4() {
		b := a.As4()
		copy(k.a[:4], b[:])
		k.bits = 32
		k.v4 = true
		return k
	}
	switch {
	case v6Bits <= 0:
		v6Bits = DefaultIPv6Bits
	case v6Bits > 128:
		v6Bits = 128
	}
	k.a = a.As16()
	// Clear every bit past v6Bits.
	full := v6Bits / 8
	if rem := v6Bits % 8; rem != 0 {
		k.a[full] &= ^byte(0xff >> rem)
		full++
	}
	for i := full; i < 16; i++ {
		k.a[i] = 0
	}
	k.bits = uint8(v6Bits)
	return k
}

// IsValid reports whether k is not the zero Key.
func (k Key) IsValid() bool { return k.bits != 0 }

// Is4 reports whether k is an IPv4 key.
func (k Key) Is4() bool { return k.v4 }

// Prefix returns k as a prefix: a /32 for IPv4 keys, the masked IPv6
// prefix otherwise, and the zero Prefix for the zero Key.
func (k Key) Prefix() netip.Prefix {
	switch {
	case !k.IsValid():
		return netip.Prefix{}
	case k.v4:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.a[:4])), 32)
	default:
		return netip.PrefixFrom(netip.AddrFrom16(k.a), int(k.bits))
	}
}

// Contains reports whether client address a maps into k's prefix (with the
// same IPv6 prefix length as k).
func (k Key) Contains(a netip.Addr) bool {
	return k.IsValid() && KeyOf(a, int(k.bits)) == k
}

// String returns k in prefix notation ("192.0.2.1/32", "2001:db8::/64"),
// or "invalid Key" for the zero Key.
func (k Key) String() string {
	if !k.IsValid() {
		return "invalid Key"
	}
	return k.Prefix().String()
}

// MarshalText implements encoding.TextMarshaler with [Key.String]'s form.
func (k Key) MarshalText() ([]byte, error) {
	if !k.IsValid() {
		return []byte{}, nil
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. It accepts only the
// prefix form written by MarshalText (an IPv4 /32 or an IPv6 prefix); the
// empty text gives the zero Key.
func (k *Key) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = Key{}
		return nil
	}
	nk, err := ParseKey(string(b), 0)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), "/") {
		return fmt.Errorf("ratelimit: key %q: want a prefix such as 192.0.2.1/32", b)
	}
	*k = nk
	return nil
}

// ParseKey parses a key as an operator types it, for example in a ban
// command: an address ("192.0.2.1", "2001:db8::1", keyed with v6Bits as in
// [KeyOf]) or a prefix ("192.0.2.1/32", "2001:db8::/64"; IPv4 prefixes must
// be /32 because IPv4 keys are single addresses).
func ParseKey(s string, v6Bits int) (Key, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Key{}, fmt.Errorf("ratelimit: parse key: %w", err)
		}
		return KeyOf(a, v6Bits), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Key{}, fmt.Errorf("ratelimit: parse key: %w", err)
	}
	a := p.Addr()
	if a.Is4() || a.Is4In6() {
		if bits := p.Bits(); bits != 32 && !(a.Is4In6() && bits == 128) {
			return Key{}, fmt.Errorf("ratelimit: parse key %q: %w", s, errIPv4Prefix)
		}
		return KeyOf(a, 0), nil
	}
	if p.Bits() == 0 {
		return Key{}, fmt.Errorf("ratelimit: parse key %q: prefix length 0 is not a client", s)
	}
	return KeyOf(a, p.Bits()), nil
}

var errIPv4Prefix = errors.New("an IPv4 key must be a /32")

// hash mixes k with seed (splitmix64 finaliser); it does not allocate.
func (k Key) hash(seed uint64) uint64 {
	lo := binary.LittleEndian.Uint64(k.a[:8])
	hi := binary.LittleEndian.Uint64(k.a[8:])
	h := mix64(seed ^ lo ^ uint64(k.bits)<<56)
	return mix64(h ^ hi)
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
