package compress

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Defaults for dynamic responses, chosen by the measurements in
// docs/compression.md (BenchmarkEncode, BenchmarkEncoderMemory).
const (
	// DefaultGzipLevel: klauspost/compress level 5 was 0-15 % cheaper
	// than 6 in most runs for 0.5-1.5 % less ratio; level 9 costs 2-7x
	// for 2-5 %. Caddy's default is 5 too.
	DefaultGzipLevel = 5
	// DefaultZstdLevel is zstd.SpeedDefault (about zstd -3): as cheap
	// per KiB as gzip level 5; SpeedBetterCompression costs 1.2-1.7x for
	// 2-5 %.
	DefaultZstdLevel = 2
	// DefaultBrotliLevel: quality 5 is the first that beats gzip clearly
	// (7-13 % smaller) and costs 4-7x gzip level 5 per KiB; quality 4
	// costs 3-5x for 1-5 %.
	DefaultBrotliLevel = 5
	// DefaultMinLength: below about 1 KiB the coding's framing (18-20
	// bytes), the encoder's fixed cost per response and the lost
	// Content-Length outweigh the bytes saved (a 1 KiB JSON body saves
	// about 600 bytes, less than one packet). Caddy uses 512, nginx's
	// gzip_min_length 20.
	DefaultMinLength = 1024
	// DefaultMaxEncoders caps the stateful encoders in use at once. One
	// holds 1-3.5 MiB (gzip level 5: 1 MiB), so 256 hold at most
	// ~270-900 MiB however many responses are open; past the cap a
	// response gets stateless gzip (a few KiB) or no coding.
	DefaultMaxEncoders = 256
)

// maxMinLength bounds Options.MinLength: the pending body is buffered in
// memory.
const maxMinLength = 64 << 10

// zstdWindow is the zstd window for responses: 64 KiB gives the same
// ratio as 8 MiB on bodies up to 64 KiB and 3 % less on a 1 MiB script,
// and holds 1.5 MiB per encoder instead of 9.5 MiB.
const zstdWindow = 64 << 10

// brotliLGWin is brotli's window for responses, log2: 256 KiB. At
// quality 5 a 64 KiB window is no cheaper and 2-3 % worse on big bodies;
// 4 MiB (the library's default) grows an encoder to 13 MiB.
const brotliLGWin = 18

// DefaultEncodings returns the codings offered when [Options.Encodings]
// is empty, in the server's order of preference (a new slice each call):
// gzip, zstd, brotli. Measured on HTML, JSON, CSS and a 1 MiB script
// (docs/compression.md), gzip at level 5 is as cheap per KiB as zstd's
// default level and compresses these bodies 0-6 % better, with less
// memory per encoder; brotli is last because the levels at which it beats
// gzip cost 4-7x the CPU. Clients that weigh codings (q) still get what
// they ask for.
func DefaultEncodings() []Encoding { return []Encoding{Gzip, Zstd, Brotli} }

// Options configure a [Compressor]. The zero value is the defaults.
type Options struct {
	// Encodings are the codings offered, in the server's order of
	// preference, used when a client weighs several equally (browsers send
	// "gzip, deflate, br, zstd" without q). Default (empty):
	// DefaultEncodings(). Identity may not be listed; an Encoding listed
	// twice is an error.
	Encodings []Encoding

	// GzipLevel is the gzip level, 1 (fastest) to 9 (smallest). Default
	// (0): DefaultGzipLevel.
	GzipLevel int
	// ZstdLevel is the zstd level of klauspost/compress: 1 fastest (zstd
	// -1), 2 default (-3), 3 better (-7), 4 best (-11). Default (0):
	// DefaultZstdLevel.
	ZstdLevel int
	// BrotliLevel is the brotli quality, 1 to 11. Default (0):
	// DefaultBrotliLevel (quality 0 cannot be chosen; it saves little).
	BrotliLevel int

	// MinLength is the smallest body, in bytes, that is compressed. A
	// response with a smaller Content-Length, or without one that ends
	// before this many bytes, goes out as it is (with a Content-Length).
	// A Flush before this many bytes decides at once, for compression:
	// a flushed response is a stream. Default (0): DefaultMinLength;
	// negative: every non-empty body.
	MinLength int

	// Types are the media types compressed (patterns as in
	// DefaultTypes). Default (nil): DefaultTypes(); an empty non-nil list
	// compresses nothing.
	Types []string

	// MaxEncoders caps the responses of this Compressor that hold a
	// stateful encoder at once (memory: see DefaultMaxEncoders). Past it,
	// a response is compressed with stateless gzip if the client takes
	// gzip and it is not a stream, else not at all. Default (0):
	// DefaultMaxEncoders; negative: none (stateless gzip only). Must be 0
	// when Limit is set.
	MaxEncoders int

	// Limit, when set, is the cap shared with other Compressors (all
	// routes, all reloads; see EncoderLimit) instead of MaxEncoders.
	// Default (nil): a cap of MaxEncoders for this Compressor alone.
	Limit *EncoderLimit
}

// Compressor compresses responses. It holds the compiled options and the
// encoder pools; build one per distinct Options (for example per route
// configuration) and share it: it is safe for concurrent use, and
// sharing it shares its pools.
type Compressor struct {
	offers []Encoding
	minLen int
	types  typeMatcher
	pools  *encoderPools

	// codingValues are the Content-Encoding header values, shared by
	// every response (cap = len, so an Add copies rather than writes
	// into them).
	codingValues [numEncodings][]string

	bufs     sync.Pool // *[]byte, cap max(minLen, sniffLen): pending bodies
	copyBufs sync.Pool // *[]byte of 32 KiB: ReadFrom
}

// New checks o and builds a Compressor.
func New(o Options) (*Compressor, error) {
	var errs []error
	c := &Compressor{offers: DefaultEncodings()}
	if len(o.Encodings) > 0 {
		seen := map[Encoding]bool{}
		c.offers = make([]Encoding, 0, len(o.Encodings))
		for _, e := range o.Encodings {
			switch {
			case e == Identity || e >= numEncodings:
				errs = append(errs, fmt.Errorf("encodings: %v cannot be offered", e))
			case seen[e]:
				errs = append(errs, fmt.Errorf("encodings: %v listed twice", e))
			default:
				seen[e] = true
				c.offers = append(c.offers, e)
			}
		}
	}
	gz := orDefault(o.GzipLevel, DefaultGzipLevel)
	if gz < gzip.BestSpeed || gz > gzip.BestCompression {
		errs = append(errs, fmt.Errorf("gzip level %d: want 1 to 9", gz))
	}
	zl := orDefault(o.ZstdLevel, DefaultZstdLevel)
	if zl < int(zstd.SpeedFastest) || zl > int(zstd.SpeedBestCompression) {
		errs = append(errs, fmt.Errorf("zstd level %d: want 1 to 4", zl))
	}
	br := orDefault(o.BrotliLevel, DefaultBrotliLevel)
	if br < 1 || br > brotli.BestCompression {
		errs = append(errs, fmt.Errorf("brotli level %d: want 1 to 11", br))
	}
	c.minLen = orDefault(o.MinLength, DefaultMinLength)
	if c.minLen < 1 {
		c.minLen = 1
	}
	if c.minLen > maxMinLength {
		errs = append(errs, fmt.Errorf("min length %d: at most %d bytes", c.minLen, maxMinLength))
	}
	types := o.Types
	if types == nil {
		types = DefaultTypes()
	}
	var err error
	if c.types, err = compileTypes(types); err != nil {
		errs = append(errs, fmt.Errorf("types: %w", err))
	}
	limit := o.Limit
	if limit == nil {
		limit = NewEncoderLimit(orDefault(o.MaxEncoders, DefaultMaxEncoders))
	} else if o.MaxEncoders != 0 {
		errs = append(errs, errors.New("max encoders: set on the shared Limit, not here"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.pools = newEncoderPools(gz, zstd.EncoderLevel(zl), zstdWindow, br, limit)
	for e := Zstd; e < numEncodings; e++ {
		c.codingValues[e] = []string{e.String()}
	}
	bufCap := max(c.minLen, sniffLen)
	c.bufs.New = func() any { b := make([]byte, 0, bufCap); return &b }
	c.copyBufs.New = func() any { b := make([]byte, 32<<10); return &b }
	return c, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Compressible reports whether a response with this Content-Type value
// would be compressed (parameters such as charset are ignored).
func (c *Compressor) Compressible(contentType string) bool { return c.types.match(contentType) }

// Negotiate is [Negotiate] over c's offered codings, for the request r.
func (c *Compressor) Negotiate(r *http.Request) (Encoding, bool) {
	return Negotiate(r.Header.Values("Accept-Encoding"), c.offers)
}

// EncodersInUse is the number of stateful encoders held by this
// Compressor's responses now (for a gauge; at most the cap).
func (c *Compressor) EncodersInUse() int { return int(c.pools.inUse.Load()) }

// Handler compresses next's responses: it wraps the ResponseWriter with
// [Compressor.Wrap] and closes the wrapper when next returns. If next
// panics (http.ErrAbortHandler from a proxy whose upstream broke), the
// body is not completed, so the client cannot mistake a cut-off response
// for a whole one, and the encoder is still released.
func (c *Compressor) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := c.Wrap(w, r)
		defer cw.Abort()
		next.ServeHTTP(cw, r)
		_ = cw.Close()
	})
}
