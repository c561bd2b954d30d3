package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestCompression: [compression]'s defaults and overrides, and compress
// on sites and routes (a route inherits its site's; false is kept).
func TestCompression(t *testing.T) {
	const sites = `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
[[sites.a.routes]]
path = "/"
upstream = "app"
[[sites.a.routes]]
path = "/account/"
upstream = "app"
compress = false
[sites.b]
hosts = ["b.example"]
tls = "self_signed"
compress = false
[[sites.b.routes]]
path = "/"
upstream = "app"
[[sites.b.routes]]
path = "/api/"
upstream = "app"
compress = true
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
	c, err := Parse([]byte(sites))
	if err != nil {
		t.Fatal(err)
	}
	want := Compression{
		Encodings:   []string{"gzip", "zstd", "br"},
		Types:       DefaultCompressionTypes(),
		MinLength:   1024,
		GzipLevel:   5,
		ZstdLevel:   2,
		BrotliLevel: 5,
		MaxEncoders: 256,
		MaxFileSize: 256 << 10,
	}
	if !reflect.DeepEqual(c.Compression, want) {
		t.Errorf("defaults: %+v\nwant %+v", c.Compression, want)
	}
	compress := map[string]bool{}
	for _, s := range c.Sites {
		compress[s.Name] = s.Compress
		for _, r := range s.Routes {
			compress[s.Name+r.Path] = r.Compress
		}
	}
	if w := map[string]bool{"a": true, "a/": true, "a/account/": false, "b": false, "b/": false, "b/api/": true}; !reflect.DeepEqual(compress, w) {
		t.Errorf("compress by site and route: %v, want %v", compress, w)
	}

	c, err = Parse([]byte(`
[compression]
encodings = ["br", "gzip"]
types = ["Text/HTML", "application/*", "*/*+json"]
min_length = 0
gzip_level = 9
zstd_level = 1
brotli_level = 11
max_encoders = 0
max_file_size = "1M"
` + sites))
	if err != nil {
		t.Fatal(err)
	}
	want = Compression{
		Encodings:   []string{"br", "gzip"},
		Types:       []string{"text/html", "application/*", "*/*+json"},
		MinLength:   0,
		GzipLevel:   9,
		ZstdLevel:   1,
		BrotliLevel: 11,
		MaxEncoders: 0,
		MaxFileSize: 1 << 20,
	}
	if !reflect.DeepEqual(c.Compression, want) {
		t.Errorf("set: %+v\nwant %+v", c.Compression, want)
	}

	for text, msg := range map[string]string{
		"[compression]\nencodings = []\n":     "compression.encodings: must not be empty",
		"[compression]\ntypes = []\n":         "compression.types: must not be empty",
		"[compression]\nmin_length = 65537\n": "compression.min_length: at most 64 KiB",
	} {
		_, err := Parse([]byte(text + sites))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one with %q", text, err, msg)
		}
	}
}
