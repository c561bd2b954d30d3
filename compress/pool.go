package compress

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// encoder is what the three libraries' stream writers have in common.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(dst io.Writer)
}

// EncoderLimit caps the stateful encoders in use at once across every
// Compressor that shares it: an encoder holds 1-3.5 MiB
// (docs/compression.md), so 10,000 concurrent responses must not each
// get one. Make one per process and pass it (Options.Limit) to each
// Compressor built on every reload, so that the bound holds across
// routes and configuration generations. Safe for concurrent use.
type EncoderLimit struct {
	max   int64
	inUse atomic.Int64
}

// NewEncoderLimit returns a limit of max stateful encoders (0 or less:
// none; every compressed response gets stateless gzip).
func NewEncoderLimit(max int) *EncoderLimit { return &EncoderLimit{max: int64(max)} }

// InUse is the number of stateful encoders held now under this limit.
func (l *EncoderLimit) InUse() int { return int(l.inUse.Load()) }

func (l *EncoderLimit) acquire() bool {
	if l.inUse.Add(1) <= l.max {
		return true
	}
	l.inUse.Add(-1)
	return false
}

func (l *EncoderLimit) release() { l.inUse.Add(-1) }

// encoderPools hands out reset encoders of one level per coding. Encoders
// in use are counted against limit. Over the cap, get offers a stateless gzip writer, which
// keeps about 2 KiB between writes; idle pooled encoders are dropped by
// the garbage collector (sync.Pool). Stateless gzip is no use for small
// flushed pieces (an event stream): those get no coding over the cap.
type encoderPools struct {
	pools     [numEncodings]sync.Pool
	stateless sync.Pool // *gzip.Writer at gzip.StatelessCompression
	limit     *EncoderLimit
	inUse     atomic.Int64 // this pool's share of limit
}

func newEncoderPools(gzipLevel int, zlevel zstd.EncoderLevel, zwindow int, brLevel int, limit *EncoderLimit) *encoderPools {
	p := &encoderPools{limit: limit}
	p.pools[Gzip].New = func() any {
		w, err := gzip.NewWriterLevel(nil, gzipLevel)
		if err != nil {
			panic("compress: gzip level checked in New: " + err.Error())
		}
		return w
	}
	p.pools[Zstd].New = func() any {
		w, err := zstd.NewWriter(nil, zstdOptions(zlevel, zwindow)...)
		if err != nil {
			panic("compress: zstd options checked in New: " + err.Error())
		}
		return w
	}
	p.pools[Brotli].New = func() any {
		return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: brLevel, LGWin: brotliLGWin})
	}
	p.stateless.New = func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.StatelessCompression)
		return w
	}
	return p
}

// zstdOptions are the encoder options for responses: one goroutine (no
// background workers per encoder, so nothing leaks when a pooled encoder
// is collected), a bounded window (RFC 9659 caps HTTP zstd windows at
// 8 MiB; ours is far smaller to keep memory per stream low), a frame even
// for an empty body, and checksums on.
func zstdOptions(level zstd.EncoderLevel, window int) []zstd.EOption {
	return []zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(window),
		zstd.WithLowerEncoderMem(true),
		zstd.WithZeroFrames(true),
	}
}

// get returns an encoder for e writing to dst, with stateful=true when it
// counts against the cap (put it back with put). When the cap is reached
// and statelessOK, it returns a stateless gzip writer; otherwise nil.
func (p *encoderPools) get(e Encoding, dst io.Writer, statelessOK bool) (enc encoder, stateful bool) {
	if p.limit.acquire() {
		p.inUse.Add(1)
		enc = p.pools[e].Get().(encoder)
		enc.Reset(dst)
		return enc, true
	}
	if !statelessOK {
		return nil, false
	}
	enc = p.stateless.Get().(encoder)
	enc.Reset(dst)
	return enc, false
}

// put returns an encoder. It is reset to io.Discard first, so the pool
// holds no reference to a finished response.
func (p *encoderPools) put(e Encoding, enc encoder, stateful bool) {
	enc.Reset(io.Discard)
	if stateful {
		p.pools[e].Put(enc)
		p.inUse.Add(-1)
		p.limit.release()
		return
	}
	p.stateless.Put(enc)
}
