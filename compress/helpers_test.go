package compress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// mustNew builds a Compressor or fails the test.
func mustNew(tb testing.TB, o Options) *Compressor {
	tb.Helper()
	c, err := New(o)
	if err != nil {
		tb.Fatalf("New(%+v): %v", o, err)
	}
	return c
}

// serve runs h behind c.Handler on a real loopback server.
func serve(tb testing.TB, c *Compressor, h http.HandlerFunc) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(c.Handler(h))
	tb.Cleanup(srv.Close)
	return srv
}

// rawClient does not ask for or undo any coding by itself (Go's transport
// otherwise adds Accept-Encoding: gzip and decompresses).
func rawClient(tb testing.TB) *http.Client {
	tb.Helper()
	tr := &http.Transport{DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get requests url with the given method and headers and returns the
// response with its body read.
func get(tb testing.TB, cl *http.Client, method, url string, hdr ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

// decoder returns a reader that undoes the content coding ce.
func decoder(ce string, r io.Reader) (io.Reader, error) {
	switch ce {
	case "", "identity":
		return r, nil
	case "gzip":
		return gzip.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "br":
		return brotli.NewReader(r), nil
	}
	return nil, fmt.Errorf("unknown content coding %q", ce)
}

// decode undoes the content coding ce of body.
func decode(tb testing.TB, ce string, body []byte) []byte {
	tb.Helper()
	r, err := decoder(ce, bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("decoding %s: %v", ce, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("decoding %s (%d bytes): %v", ce, len(body), err)
	}
	return out
}

// text is n bytes of compressible text that is not all one byte.
func text(n int) []byte {
	const line = "<li class=\"item\"><a href=\"/articles/%05d/\">Article number %05d</a></li>\n"
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, line, i, i*7)
	}
	return b.Bytes()[:n]
}
