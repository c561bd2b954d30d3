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

// encoderPools hands out reset encoders of one level per coding. Encoders
// that are in use are counted and capped at max: an encoder holds
// 0.5-2 MiB (docs/compression.md), so 10,000 concurrent responses must not
// each get one. Over the cap, get offers a stateless gzip writer, which
// keeps about 2 KiB between writes; idle pooled encoders are dropped by
// the garbage collector (sync.Pool). Stateless gzip is no use for small
// flushed pieces (an event stream): those get no coding over the cap.
type encoderPools struct {
	pools     [numEncodings]sync.Pool
	stateless sync.Pool // *gzip.Writer at gzip.StatelessCompression
	max       int64
	inUse     atomic.Int64
}

func newEncoderPools(gzipLevel int, zlevel zstd.EncoderLevel, zwindow int, brLevel int, max int) *encoderPools {
	p := &encoderPools{max: int64(max)}
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
	if p.inUse.Add(1) <= p.max {
		enc = p.pools[e].Get().(encoder)
		enc.Reset(dst)
		return enc, true
	}
	p.inUse.Add(-1)
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
		return
	}
	p.stateless.Put(enc)
}
