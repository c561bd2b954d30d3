package compress_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/klauspost/compress/gzip"
)

func Example() {
	// Once per process: the encoder cap shared by every route and reload.
	limit := compress.NewEncoderLimit(compress.DefaultMaxEncoders)
	// Once per route configuration; safe to share between requests.
	// Defaults: gzip, zstd, br; text types; 1 KiB minimum.
	comp, err := compress.New(compress.Options{Limit: limit})
	if err != nil {
		panic(err)
	}
	page := strings.Repeat("<p>Hello from Django</p>\n", 200)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, page)
	})
	srv := httptest.NewServer(comp.Handler(app))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd") // as a browser sends it
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(zr)

	fmt.Println("Content-Encoding:", res.Header.Get("Content-Encoding"))
	fmt.Println("Vary:", res.Header.Get("Vary"))
	fmt.Println("ETag:", res.Header.Get("ETag"))
	fmt.Println("body intact:", string(body) == page)
	// Output:
	// Content-Encoding: gzip
	// Vary: Accept-Encoding
	// ETag: W/"v1"
	// body intact: true
}

func ExampleNegotiate() {
	offers := []compress.Encoding{compress.Zstd, compress.Brotli, compress.Gzip}
	for _, ae := range []string{"gzip, deflate, br, zstd", "gzip;q=1, br;q=0.5", "zstd;q=0, *", "identity"} {
		enc, _ := compress.Negotiate([]string{ae}, offers)
		fmt.Printf("%-24q -> %v\n", ae, enc)
	}
	// Output:
	// "gzip, deflate, br, zstd" -> zstd
	// "gzip;q=1, br;q=0.5"     -> gzip
	// "zstd;q=0, *"            -> br
	// "identity"               -> identity
}
