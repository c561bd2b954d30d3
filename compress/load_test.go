package compress

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// discardWriter is a bare http.ResponseWriter for the in-process tests
// of the Writer's own costs (allocations, memory); it is the connection
// side, not the thing under test.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardWriter) Flush()                      {}

// TestConcurrentResponsesSharePools: many responses at once through one
// Compressor with a small encoder cap, so the pools, the cap and the
// stateless fall-back are all exercised under the race detector (CI runs
// this package with -race). Every body decodes to what was written and
// the cap holds.
func TestConcurrentResponsesSharePools(t *testing.T) {
	const maxEnc = 3
	c := mustNew(t, Options{MaxEncoders: maxEnc})
	srv := serve(t, c, func(w http.ResponseWriter, r *http.Request) {
		var size, pattern int
		fmt.Sscanf(r.URL.Query().Get("p"), "%d-%d", &size, &pattern)
		w.Header().Set("Content-Type", "application/json")
		writePatterns[pattern].write(w, text(size))
		if n := c.EncodersInUse(); n > maxEnc {
			t.Errorf("%d encoders in use, cap %d", n, maxEnc)
		}
	})
	accepts := []string{"gzip", "zstd", "br", "gzip, deflate, br, zstd", "br;q=1, zstd;q=0.5", "identity", ""}
	sizes := []int{100, 1500, 20 << 10, 100 << 10}
	cl := rawClient(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				size := sizes[(g+i)%len(sizes)]
				pattern := (g*7 + i) % len(writePatterns)
				if writePatterns[pattern].name == "7-byte writes" && size > 20<<10 {
					pattern = 0
				}
				ae := accepts[(g+i*3)%len(accepts)]
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/?p=%d-%d", srv.URL, size, pattern), nil)
				if ae != "" {
					req.Header.Set("Accept-Encoding", ae)
				}
				res, err := cl.Do(req)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				var buf bytes.Buffer
				_, err = buf.ReadFrom(res.Body)
				res.Body.Close()
				if err != nil {
					t.Errorf("body: %v", err)
					return
				}
				ce := res.Header.Get("Content-Encoding")
				if ce != "" && !strings.Contains(ae, ce) {
					t.Errorf("Accept-Encoding %q answered with %q", ae, ce)
				}
				r, err := decoder(ce, &buf)
				if err != nil {
					t.Errorf("%s: %v", ce, err)
					return
				}
				var out bytes.Buffer
				if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), text(size)) {
					t.Errorf("%s, %d bytes as %s: decoded %d bytes (%v)", ce, size, writePatterns[pattern].name, out.Len(), err)
				}
			}
		})
	}
	wg.Wait()
	if n := c.EncodersInUse(); n != 0 {
		t.Errorf("%d encoders in use after every response ended, want 0", n)
	}
}

// TestPooledResponseAllocs guards the pooled path: a compressed 4 KiB
// JSON response costs a fixed, small number of allocations (the Writer,
// the Vary value), not an encoder.
func TestPooledResponseAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	body := apiJSON(4 << 10)
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	for _, e := range []Encoding{Gzip, Zstd, Brotli} {
		c := mustNew(t, Options{Encodings: []Encoding{e}})
		rw := &discardWriter{h: http.Header{}}
		one := func() {
			clear(rw.h)
			rw.h.Set("Content-Type", "application/json")
			rw.h.Set("Etag", `"v1"`)
			w := c.Wrap(rw, req)
			w.WriteHeader(http.StatusOK)
			w.Write(body)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Coding() != e {
				t.Fatalf("coding %v, want %v", w.Coding(), e)
			}
		}
		one()
		// Four are the Writer's: itself, Vary's []string, the weak ETag's
		// string and its []string; two are the test's own Content-Type and
		// Etag values. An encoder (hundreds of KiB) is never among them.
		const limit = 6
		if n := testing.AllocsPerRun(200, one); n > limit {
			t.Errorf("%v: %v allocations per pooled response, want at most %d", e, n, limit)
		}
	}
}

// TestMaxEncodersBoundMemory: 10,000 open responses (written, not
// ended) hold at most MaxEncoders stateful encoders, and the heap stays
// within the cap's share plus a few KiB per response, not 10,000 encoders
// (10 GiB at ~1 MiB each). Past the cap, a page gets stateless gzip and an
// event stream gets no coding (stateless gzip cannot shrink small
// flushed events).
func TestMaxEncodersBoundMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("10,000 responses; heap figures mean nothing under the race detector")
	}
	const responses, maxEnc = 10_000, 32
	for _, tt := range []struct {
		name, contentType string
		body              []byte
		flush             bool
		overCap           Encoding
	}{
		{"pages", "text/html", text(2 << 10), false, Gzip},
		{"event streams", "text/event-stream", []byte(sseEvent(1)), true, Identity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustNew(t, Options{MaxEncoders: maxEnc})
			req, _ := http.NewRequest("GET", "/", nil)
			req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
			runtime.GC()
			runtime.GC() // twice: sync.Pool victims of earlier tests go too
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ws := make([]*Writer, responses)
			for i := range ws {
				rw := &discardWriter{h: http.Header{"Content-Type": {tt.contentType}}}
				w := c.Wrap(rw, req)
				w.WriteHeader(http.StatusOK)
				w.Write(tt.body)
				if tt.flush {
					w.Flush()
				}
				want := Gzip
				if i >= maxEnc {
					want = tt.overCap
				}
				if w.Coding() != want {
					t.Fatalf("response %d: coding %v, want %v", i, w.Coding(), want)
				}
				ws[i] = w
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if n := c.EncodersInUse(); n != maxEnc {
				t.Errorf("%d stateful encoders in use, want the cap %d", n, maxEnc)
			}
			grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			const limit = maxEnc*(2<<20) + responses*(6<<10) // 2 MiB per stateful encoder, 6 KiB per response
			t.Logf("%d responses, %d stateful encoders: heap grew %.1f MiB (%.1f KiB per response)", responses, maxEnc, float64(grew)/(1<<20), float64(grew)/responses/1024)
			if grew > limit {
				t.Errorf("heap grew %d MiB for %d responses, want at most %d MiB", grew>>20, responses, limit>>20)
			}
			for _, w := range ws {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if n := c.EncodersInUse(); n != 0 {
				t.Errorf("%d encoders in use after Close, want 0", n)
			}
		})
	}
}

// TestSharedEncoderLimit: Compressors built with one EncoderLimit (every
// route, every reload) share its cap: with a limit of 2, a third stateful
// encoder is refused whichever Compressor asks, and released ones are
// available to the others.
func TestSharedEncoderLimit(t *testing.T) {
	limit := NewEncoderLimit(2)
	a := mustNew(t, Options{Limit: limit})
	b := mustNew(t, Options{Limit: limit, Encodings: []Encoding{Zstd}})
	if _, err := New(Options{Limit: limit, MaxEncoders: 5}); err == nil {
		t.Error("Limit and MaxEncoders both set: no error")
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip, zstd")
	open := func(c *Compressor) *Writer {
		w := c.Wrap(&discardWriter{h: http.Header{"Content-Type": {"text/html"}}}, req)
		w.Write(text(2000))
		return w
	}
	w1, w2 := open(a), open(b)
	if w1.Coding() != Gzip || w2.Coding() != Zstd || limit.InUse() != 2 {
		t.Fatalf("codings %v, %v with %d in use; want gzip, zstd, 2", w1.Coding(), w2.Coding(), limit.InUse())
	}
	w3 := open(b) // over the shared cap: stateless gzip
	if w3.Coding() != Gzip || b.EncodersInUse() != 1 || limit.InUse() != 2 {
		t.Errorf("third response: %v, b holds %d, limit %d; want stateless gzip, 1, 2", w3.Coding(), b.EncodersInUse(), limit.InUse())
	}
	w1.Close()
	w4 := open(b)
	if w4.Coding() != Zstd || b.EncodersInUse() != 2 || a.EncodersInUse() != 0 {
		t.Errorf("after a's response ended: %v, b holds %d, a %d; want zstd, 2, 0", w4.Coding(), b.EncodersInUse(), a.EncodersInUse())
	}
	for _, w := range []*Writer{w2, w3, w4} {
		w.Close()
	}
	if limit.InUse() != 0 {
		t.Errorf("%d in use after every response ended", limit.InUse())
	}
}
