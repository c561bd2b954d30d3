package compress

import "github.com/gatehouse-proxy/gatehouse/internal/coding"

// Encoding is a content coding (RFC 9110 §8.4.1) that this package can
// produce. The zero value is Identity: no coding. Its String is the token
// ("gzip", "zstd", "br", "identity") and its Ext the suffix of a
// precompressed file (".gz", ".zst", ".br").
type Encoding = coding.Coding

// The content codings. Their order here is not a preference: the server's
// order is [Options.Encodings].
const (
	Identity = coding.Identity // no coding
	Zstd     = coding.Zstd     // "zstd", RFC 8878 §7.2 (window at most 8 MiB, RFC 9659)
	Brotli   = coding.Brotli   // "br", RFC 7932
	Gzip     = coding.Gzip     // "gzip", RFC 1952

	numEncodings = coding.Count
)

// ParseEncoding reads a content-coding token, case-insensitively. It
// accepts "x-gzip" as gzip (RFC 9110 §8.4.1.3). ok is false for codings
// this package does not produce (deflate, compress, ...).
func ParseEncoding(token string) (e Encoding, ok bool) { return coding.Parse(token) }

// Negotiate chooses the content coding of a response from the request's
// Accept-Encoding field values (r.Header.Values("Accept-Encoding"); nil
// when the field is absent) among offers, which are in the server's order
// of preference, as RFC 9110 §12.5.3 says; see coding.Negotiate in
// internal/coding for every rule. ok is false when nothing is acceptable,
// not even identity; enc is then Identity and the response is sent
// uncoded anyway. It does not allocate.
func Negotiate(accept []string, offers []Encoding) (enc Encoding, ok bool) {
	return coding.Negotiate(accept, offers)
}
