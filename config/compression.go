package config

import (
	"fmt"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
)

// The [compression] section: how responses are compressed, for the whole
// process (package compress's Options, which config cannot import: a
// test in proxy keeps the defaults and the rules for types in step).
// Whether a response may be compressed at all is the site's and route's
// compress key.

// compressionCodings are the codings [compression] encodings may list.
var compressionCodings = map[string]bool{"gzip": true, "zstd": true, "br": true}

func (c *compiler) compression(r configfile.Compression) Compression {
	const key = "compression"
	cc := Compression{
		Encodings:   DefaultCompressionEncodings(),
		Types:       DefaultCompressionTypes(),
		MinLength:   DefaultCompressionMinLength,
		GzipLevel:   DefaultCompressionGzipLevel,
		ZstdLevel:   DefaultCompressionZstdLevel,
		BrotliLevel: DefaultCompressionBrotliLevel,
		MaxEncoders: DefaultCompressionMaxEncoders,
		MaxFileSize: r.MaxFileSize.Or(DefaultCompressionMaxFileSize),
	}
	if r.Encodings != nil {
		cc.Encodings = nil
		seen := map[string]bool{}
		for i, e := range r.Encodings {
			k := fmt.Sprintf("%s.encodings[%d]", key, i)
			switch {
			case !compressionCodings[e]:
				c.errf(k, "unknown coding %q (gzip, zstd or br)", e)
			case seen[e]:
				c.errf(k, "%q is listed twice", e)
			default:
				seen[e] = true
				cc.Encodings = append(cc.Encodings, e)
			}
		}
		if len(r.Encodings) == 0 {
			c.errf(key+".encodings", "must not be empty (to turn compression off, set compress = false on the sites or routes)")
		}
	}
	if r.Types != nil {
		cc.Types = nil
		for i, t := range r.Types {
			p, err := compressionType(t)
			if err != nil {
				c.errf(fmt.Sprintf("%s.types[%d]", key, i), "%v", err)
				continue
			}
			cc.Types = append(cc.Types, p)
		}
		if len(r.Types) == 0 {
			c.errf(key+".types", "must not be empty (to turn compression off, set compress = false on the sites or routes)")
		}
	}
	if n := r.MinLength.Or(DefaultCompressionMinLength); n > MaxCompressionMinLength {
		c.errf(key+".min_length", "at most %s: a body of unknown length is held in memory until it reaches min_length", formatSize(MaxCompressionMinLength))
	} else {
		cc.MinLength = int(n)
	}
	level := func(name string, v *int, lo, hi int, def int, what string) int {
		if v == nil {
			return def
		}
		if *v < lo || *v > hi {
			c.errf(key+"."+name, "must be between %d and %d (%s)", lo, hi, what)
		}
		return *v
	}
	cc.GzipLevel = level("gzip_level", r.GzipLevel, 1, 9, DefaultCompressionGzipLevel, "1 fastest, 9 smallest")
	cc.ZstdLevel = level("zstd_level", r.ZstdLevel, 1, 4, DefaultCompressionZstdLevel, "1 fastest, 2 default, 3 better, 4 best")
	cc.BrotliLevel = level("brotli_level", r.BrotliLevel, 1, 11, DefaultCompressionBrotliLevel, "1 fastest, 11 smallest")
	if v := r.MaxEncoders; v != nil {
		if *v < 0 {
			c.errf(key+".max_encoders", "must not be negative (0: no stateful encoder, stateless gzip only)")
		}
		cc.MaxEncoders = *v
	}
	return cc
}

// compressionType checks a media type pattern of [compression] types and
// returns it lower case: a full type ("application/json"), a whole
// top-level type ("text/*") or a structured-syntax suffix ("*/*+json"),
// the forms package compress matches.
func compressionType(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	top, sub, ok := strings.Cut(p, "/")
	switch {
	case !ok || top == "" || sub == "" || strings.ContainsAny(p, " \t;,") || strings.Count(p, "/") != 1:
		return "", fmt.Errorf("%q is not a media type: want type/subtype, type/* or */*+suffix", p)
	case top == "*" && strings.HasPrefix(sub, "*+") && len(sub) > 2 && !strings.Contains(sub[2:], "*"):
		return p, nil
	case strings.Contains(top, "*"):
		return "", fmt.Errorf("%q: a wildcard type is only allowed as */*+suffix", p)
	case sub == "*":
		return p, nil
	case strings.Contains(sub, "*"):
		return "", fmt.Errorf("%q: a wildcard subtype must be the whole subtype", p)
	}
	return p, nil
}

// formatSize writes n bytes the way sizes are written in messages.
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
