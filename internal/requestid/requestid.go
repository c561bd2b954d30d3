// Package requestid makes and checks request IDs ([request_id] in
// docs/config.md). Every request gets one, sent to the backend (so
// Django's logs can carry it), returned to the client, written in the
// access log and shown on error pages, so that a user's support report
// ("request ID 3f2a...") finds both log lines.
//
// A generated ID ([Generate]) is 16 random bytes in lower-case hex (32
// characters), the shape of nginx's $request_id. The bytes come from
// math/rand/v2's global generator, the runtime's per-thread ChaCha8
// stream seeded from the kernel: unique in practice (two IDs collide with
// probability 2^-128 per pair), unpredictable, no lock and no system
// call: about 30 ns, and about 120 ns with the string and header slice
// the response needs, its two allocations (BenchmarkRequestID, on the
// shared development VM).
//
// The proxy keeps a client's own ID header only when the TCP peer is a
// trusted proxy (trusted_proxies: a load balancer in front that already
// assigned one) and the value is a sane token ([Valid]); anyone else's is
// replaced, so a client can neither forge another request's ID in the
// logs nor inject text into them or into an error page.
package requestid

import "math/rand/v2"

// Len is the length of a generated request ID.
const Len = 32

// MaxLen bounds a kept client ID: a UUID is 36 characters, an AWS trace
// ID 40; nothing legitimate needs more than 128.
const MaxLen = 128

// Generate writes a fresh ID into b.
func Generate(b *[Len]byte) {
	const hex = "0123456789abcdef"
	for i, x := range [2]uint64{rand.Uint64(), rand.Uint64()} {
		for j := range 8 {
			v := byte(x >> (8 * j))
			b[16*i+2*j] = hex[v>>4]
			b[16*i+2*j+1] = hex[v&0xf]
		}
	}
}

// Valid reports whether a client's ID may be kept: 1 to MaxLen bytes of
// letters, digits and "-._~:+/=" (UUIDs, hex, base64 and the usual trace
// formats), nothing that could split a log line or a header, or mean
// anything in HTML.
func Valid(v string) bool {
	if v == "" || len(v) > MaxLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == ':', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}
