package compress

import (
	"bytes"
	"fmt"
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

// BenchmarkPrecompress measures the maximum levels PrecompressDir uses.
func BenchmarkPrecompress(b *testing.B) {
	for _, c := range corpora(b) {
		for _, e := range []Encoding{Zstd, Brotli, Gzip} {
			b.Run(c.name+"/"+e.String()+"-max", func(b *testing.B) {
				var out bytes.Buffer
				cpu, unlock := threadCPU()
				defer unlock()
				b.SetBytes(int64(len(c.data)))
				start := cpu()
				for b.Loop() {
					out.Reset()
					if err := encodeMax(&out, bytes.NewReader(c.data), e); err != nil {
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
