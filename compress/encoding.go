package compress

import "strings"

// Encoding is a content coding (RFC 9110 §8.4.1) that this package can
// produce. The zero value is Identity: no coding.
type Encoding uint8

// The content codings. Their order here is not a preference: the server's
// order is [Options.Encodings].
const (
	Identity Encoding = iota // no coding
	Zstd                     // "zstd", RFC 8878 §7.2 (window at most 8 MiB, RFC 9659)
	Brotli                   // "br", RFC 7932
	Gzip                     // "gzip", RFC 1952
	numEncodings
)

var encodingNames = [numEncodings]string{Identity: "identity", Zstd: "zstd", Brotli: "br", Gzip: "gzip"}

// String is the coding's token as it appears in Content-Encoding and
// Accept-Encoding: "identity", "zstd", "br" or "gzip".
func (e Encoding) String() string {
	if e < numEncodings {
		return encodingNames[e]
	}
	return "unknown"
}

// Ext is the file-name suffix of a file precompressed with this coding
// (".zst", ".br", ".gz"), as written by [PrecompressDir] and by
// whitenoise and django-compressor; "" for Identity.
func (e Encoding) Ext() string {
	switch e {
	case Zstd:
		return ".zst"
	case Brotli:
		return ".br"
	case Gzip:
		return ".gz"
	}
	return ""
}

// ParseEncoding reads a content-coding token, case-insensitively. It
// accepts "x-gzip" as gzip (RFC 9110 §8.4.1.3). ok is false for codings
// this package does not produce (deflate, compress, ...).
func ParseEncoding(token string) (e Encoding, ok bool) {
	switch {
	case strings.EqualFold(token, "gzip"), strings.EqualFold(token, "x-gzip"):
		return Gzip, true
	case strings.EqualFold(token, "br"):
		return Brotli, true
	case strings.EqualFold(token, "zstd"):
		return Zstd, true
	case strings.EqualFold(token, "identity"):
		return Identity, true
	}
	return Identity, false
}
