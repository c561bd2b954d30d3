// Package coding holds the content codings Gatehouse serves (gzip, zstd,
// brotli) and the one Accept-Encoding negotiation (RFC 9110 §12.5.3) that
// both the response compressor (package compress) and the static file
// server (package staticfile, for precompressed siblings) use, so the two
// can never disagree on what a client accepts.
package coding

import "strings"

// Coding is a content coding (RFC 9110 §8.4.1) that Gatehouse can serve.
// The zero value is Identity: no coding.
type Coding uint8

// The content codings. Their order here is not a preference: the server's
// order is the offers passed to [Negotiate].
const (
	Identity Coding = iota // no coding
	Zstd                   // "zstd", RFC 8878 §7.2 (window at most 8 MiB, RFC 9659)
	Brotli                 // "br", RFC 7932
	Gzip                   // "gzip", RFC 1952
	Count                  // the number of codings, Identity included
)

var names = [Count]string{Identity: "identity", Zstd: "zstd", Brotli: "br", Gzip: "gzip"}

// String is the coding's token as it appears in Content-Encoding and
// Accept-Encoding: "identity", "zstd", "br" or "gzip".
func (e Coding) String() string {
	if e < Count {
		return names[e]
	}
	return "unknown"
}

// Ext is the file-name suffix of a file precompressed with this coding
// (".zst", ".br", ".gz"), as written by `gatehouse compress` and by
// whitenoise and django-compressor; "" for Identity.
func (e Coding) Ext() string {
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

// Parse reads a content-coding token, case-insensitively. It
// accepts "x-gzip" as gzip (RFC 9110 §8.4.1.3). ok is false for codings
// Gatehouse does not serve (deflate, compress, ...).
func Parse(token string) (e Coding, ok bool) {
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
