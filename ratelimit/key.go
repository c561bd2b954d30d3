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
// IPv4 address, or an IPv6 prefix, as [KeyOf] makes them. A ban's Key may
// also be a shorter IPv4 prefix (192.0.2.0/24), from [ParseKey]. The zero
// Key is invalid. Keys are comparable and small (18 bytes), so they are
// cheap map keys.
type Key struct {
	a    [16]byte // IPv4 in the first 4 bytes; masked to bits
	bits uint8    // prefix length within the family; 0 for the zero Key
	v4   bool
}

// KeyOf returns the key of client address a: a itself for IPv4 (an
// IPv4-mapped IPv6 address is unmapped first), the enclosing /v6Bits prefix
// for IPv6. v6Bits ≤ 0 means [DefaultIPv6Bits]; values over 128 mean 128.
// The IPv6 zone is ignored. An invalid a gives the zero Key.
func KeyOf(a netip.Addr, v6Bits int) Key {
	switch {
	case v6Bits <= 0:
		v6Bits = DefaultIPv6Bits
	case v6Bits > 128:
		v6Bits = 128
	}
	return keyIn(a, 32, v6Bits)
}

// AddrKey returns the key of address a alone: an IPv4 /32 (after
// unmapping) or an IPv6 /128. It is the key to ask [Jail.BannedAt] with
// where the address is known, as it decides bans of every prefix length.
// An invalid a gives the zero Key.
func AddrKey(a netip.Addr) Key { return keyIn(a, 32, 128) }

// keyIn returns the key of the prefix of a that is v4Bits long for IPv4
// (after unmapping) and v6Bits long for IPv6; both must be in range and
// not 0. An invalid a gives the zero Key. It does not allocate.
func keyIn(a netip.Addr, v4Bits, v6Bits int) Key {
	if !a.IsValid() {
		return Key{}
	}
	a = a.Unmap()
	var k Key
	if a.Is4() {
		b := a.As4()
		copy(k.a[:4], b[:])
		k.v4 = true
		k.bits = uint8(v4Bits)
	} else {
		k.a = a.As16()
		k.bits = uint8(v6Bits)
	}
	maskBits(&k.a, int(k.bits))
	return k
}

// maskBits clears every bit of a past the first bits.
func maskBits(a *[16]byte, bits int) {
	full := bits / 8
	if rem := bits % 8; rem != 0 {
		a[full] &= ^byte(0xff >> rem)
		full++
	}
	for i := full; i < 16; i++ {
		a[i] = 0
	}
}

// IsValid reports whether k is not the zero Key.
func (k Key) IsValid() bool { return k.bits != 0 }

// Is4 reports whether k is an IPv4 key.
func (k Key) Is4() bool { return k.v4 }

// Bits returns the prefix length of k within its family: 32 for the IPv4
// keys KeyOf makes, up to 128 for IPv6, and 0 for the zero Key.
func (k Key) Bits() int { return int(k.bits) }

// Prefix returns k as a masked prefix (an IPv4 prefix for IPv4 keys), and
// the zero Prefix for the zero Key.
func (k Key) Prefix() netip.Prefix {
	switch {
	case !k.IsValid():
		return netip.Prefix{}
	case k.v4:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.a[:4])), int(k.bits))
	default:
		return netip.PrefixFrom(netip.AddrFrom16(k.a), int(k.bits))
	}
}

// Contains reports whether client address a (unmapped, its IPv6 zone
// ignored) lies inside k's prefix.
func (k Key) Contains(a netip.Addr) bool {
	return k.IsValid() && keyIn(a, int(k.bits), int(k.bits)) == k
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
// prefix form written by MarshalText, with [ParseKey]'s rules; the empty
// text gives the zero Key.
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
// command: an address ("192.0.2.1", "2001:db8::1"; IPv6 is widened to
// v6Bits as in [KeyOf]) or a prefix of any length but 0 ("192.0.2.0/24",
// "2001:db8::/48", "2001:db8::5/128"). A prefix with bits set past its
// length ("192.0.2.7/24") is refused, with the masked prefix in the error,
// rather than silently widened. IPv4-mapped IPv6 addresses and prefixes
// ("::ffff:192.0.2.0/120") are read as IPv4.
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
	if p != p.Masked() {
		return Key{}, fmt.Errorf("ratelimit: parse key %q: bits are set past the prefix length; the /%d prefix is %s", s, p.Bits(), p.Masked())
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() { // masked, so bits ≥ 96
		a, bits = a.Unmap(), bits-96
	}
	if bits == 0 {
		return Key{}, fmt.Errorf("ratelimit: parse key %q: %w", s, errZeroPrefix)
	}
	return keyIn(a, bits, bits), nil
}

var errZeroPrefix = errors.New("a /0 prefix is every address, not a client")

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
