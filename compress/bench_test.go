package compress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchEncoder is one coding at one level, as a pool would build it.
type benchEncoder struct {
	name string
	new  func() encoder
}

func levelEncoders(gzipLevels, zstdLevels, brLevels []int, zwin, brwin int) []benchEncoder {
	var out []benchEncoder
	for _, l := range zstdLevels {
		out = append(out, benchEncoder{fmt.Sprintf("zstd-%d", l), func() encoder {
			w, err := zstd.NewWriter(nil, zstdOptions(zstd.EncoderLevel(l), zwin)...)
			if err != nil {
				panic(err)
			}
			return w
		}})
	}
	for _, l := range brLevels {
		out = append(out, benchEncoder{fmt.Sprintf("br-%d", l), func() encoder {
			return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: l, LGWin: brwin})
		}})
	}
	for _, l := range gzipLevels {
		out = append(out, benchEncoder{fmt.Sprintf("gzip-%d", l), func() encoder {
			w, err := gzip.NewWriterLevel(nil, l)
			if err != nil {
				panic(err)
			}
			return w
		}})
	}
	return out
}

// BenchmarkEncode measures CPU per KiB and ratio of each coding and level
// on the corpora, with one reused (pooled) encoder as a response would
// get it: ns/KiB is the CPU cost, ratio is input/output.
//
//	go test -run '^$' -bench 'Encode/' -benchtime 20x ./compress/
func BenchmarkEncode(b *testing.B) {
	encs := levelEncoders([]int{1, 5, 6, 9}, []int{1, 2, 3, 4}, []int{1, 3, 4, 5, 6, 11}, zstdWindow, brotliLGWin)
	for _, c := range corpora(b) {
		for _, be := range encs {
			b.Run(c.name+"/"+be.name, func(b *testing.B) { benchOne(b, be.new(), c.data, 32<<10) })
		}
	}
}

// BenchmarkEncodeWindow compares the response windows (64 KiB) with the
// libraries' defaults (zstd 8 MiB, brotli 4 MiB) at the default levels.
func BenchmarkEncodeWindow(b *testing.B) {
	encs := append(levelEncoders(nil, []int{DefaultZstdLevel}, []int{DefaultBrotliLevel}, 8<<20, 22),
		levelEncoders(nil, []int{DefaultZstdLevel}, []int{DefaultBrotliLevel}, zstdWindow, brotliLGWin)...)
	for _, c := range corpora(b) {
		for i, be := range encs {
			win := "default-window"
			if i >= 2 {
				win = "64k-window"
			}
			b.Run(c.name+"/"+be.name+"/"+win, func(b *testing.B) { benchOne(b, be.new(), c.data, 32<<10) })
		}
	}
}

// BenchmarkPrecompress measures the maximum levels PrecompressDir uses,
// with the encoder reused from file to file as PrecompressDir does.
func BenchmarkPrecompress(b *testing.B) {
	for _, c := range corpora(b) {
		for _, e := range []Encoding{Zstd, Brotli, Gzip} {
			b.Run(c.name+"/"+e.String()+"-max", func(b *testing.B) {
				var out bytes.Buffer
				var encs maxEncoders
				if err := encs.encodeMax(&out, bytes.NewReader(c.data), e); err != nil {
					b.Fatal(err)
				}
				cpu, unlock := threadCPU()
				defer unlock()
				b.SetBytes(int64(len(c.data)))
				start := cpu()
				for b.Loop() {
					out.Reset()
					if err := encs.encodeMax(&out, bytes.NewReader(c.data), e); err != nil {
						b.Fatal(err)
					}
				}
				reportRatio(b, cpu()-start, len(c.data), out.Len())
			})
		}
	}
}

func benchOne(b *testing.B, enc encoder, data []byte, chunk int) {
	var out countWriter
	one := func() {
		out.n = 0
		enc.Reset(&out)
		for p := data; len(p) > 0; {
			n := min(chunk, len(p))
			if _, err := enc.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	one() // the pooled case: the encoder's tables already exist
	cpu, unlock := threadCPU()
	defer unlock()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := cpu()
	for b.Loop() {
		one()
	}
	reportRatio(b, cpu()-start, len(data), out.n)
}

// reportRatio reports CPU ns per KiB of input (thread CPU time, not wall
// time) and the ratio input/output.
func reportRatio(b *testing.B, cpu time.Duration, in, out int) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/(float64(in)/1024), "cpu-ns/KiB")
	b.ReportMetric(float64(in)/float64(out), "ratio")
}

// BenchmarkResponse is one whole response through the Writer with pooled
// encoders (the proxy's path, minus the network): allocations per
// response and CPU per response.
func BenchmarkResponse(b *testing.B) {
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	for _, c := range corpora(b) {
		for _, e := range []Encoding{Gzip, Zstd, Brotli} {
			b.Run(c.name+"/"+e.String(), func(b *testing.B) {
				comp := mustNew(b, Options{Encodings: []Encoding{e}})
				rw := &discardWriter{h: http.Header{}}
				one := func() {
					clear(rw.h)
					rw.n = 0
					rw.h["Content-Type"] = []string{c.contentType}
					w := comp.Wrap(rw, req)
					w.WriteHeader(http.StatusOK)
					for p := c.data; len(p) > 0; {
						n := min(32<<10, len(p))
						w.Write(p[:n])
						p = p[n:]
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				one()
				cpu, unlock := threadCPU()
				defer unlock()
				b.SetBytes(int64(len(c.data)))
				b.ReportAllocs()
				start := cpu()
				for b.Loop() {
					one()
				}
				b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(b.N)/1000, "cpu-µs/resp")
				reportRatio(b, cpu()-start, len(c.data), rw.n)
			})
		}
	}
}

// BenchmarkEncoderMemory reports the heap one encoder of each pool holds
// after a response of the given size (its tables and window), which is
// what MaxEncoders multiplies.
//
//	go test -run '^$' -bench EncoderMemory -benchtime 1x ./compress/
func BenchmarkEncoderMemory(b *testing.B) {
	const n = 40
	for _, size := range []int{2 << 10, 1 << 20} {
		data := text(size)
		for _, e := range []Encoding{Gzip, Zstd, Brotli, Identity} {
			name := e.String()
			if e == Identity {
				name = "gzip-stateless"
			}
			b.Run(fmt.Sprintf("%s/after-%dKiB", name, size>>10), func(b *testing.B) {
				for b.Loop() {
					pools := newEncoderPools(DefaultGzipLevel, zstd.EncoderLevel(DefaultZstdLevel), zstdWindow, DefaultBrotliLevel, NewEncoderLimit(n))
					runtime.GC()
					runtime.GC() // twice: pooled encoders of earlier runs go too
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					encs := make([]encoder, n)
					for i := range encs {
						if e == Identity {
							encs[i] = gzipStateless(b)
						} else {
							encs[i], _ = pools.get(e, io.Discard, false)
						}
						encs[i].Write(data)
						encs[i].Flush()
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n/1024, "KiB/encoder")
					runtime.KeepAlive(encs)
					for _, enc := range encs {
						if e != Identity {
							pools.put(e, enc, true)
						}
					}
				}
			})
		}
	}
}

func gzipStateless(tb testing.TB) encoder {
	w, err := gzip.NewWriterLevel(io.Discard, gzip.StatelessCompression)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// BenchmarkSSE is an event stream: small JSON events, each written and
// flushed through the encoder (as Writer.Flush does). It reports bytes on
// the wire per event against the event's own size, and CPU per event.
func BenchmarkSSE(b *testing.B) {
	const events = 200
	var raw int
	for i := range events {
		raw += len(sseEvent(i))
	}
	encs := append(levelEncoders([]int{DefaultGzipLevel}, []int{DefaultZstdLevel}, []int{DefaultBrotliLevel}, zstdWindow, brotliLGWin),
		benchEncoder{"gzip-stateless", func() encoder { return gzipStateless(b) }})
	for _, be := range encs {
		b.Run(be.name, func(b *testing.B) {
			enc := be.new()
			var out countWriter
			stream := func() {
				out.n = 0
				enc.Reset(&out)
				for i := range events {
					io.WriteString(enc, sseEvent(i))
					enc.Flush()
				}
				enc.Close()
			}
			stream()
			cpu, unlock := threadCPU()
			defer unlock()
			start := cpu()
			for b.Loop() {
				stream()
			}
			b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(b.N)/events, "cpu-ns/event")
			b.ReportMetric(float64(raw)/events, "raw-B/event")
			b.ReportMetric(float64(out.n)/events, "wire-B/event")
			b.ReportMetric(float64(raw)/float64(out.n), "ratio")
		})
	}
}
