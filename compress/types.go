package compress

import (
	"fmt"
	"strings"
)

// DefaultTypes returns the media types compressed when [Options.Types] is
// nil (a new slice each call):
// text, the text-based application formats a Django site serves (JSON
// APIs, JavaScript, XML feeds, source maps, web manifests), SVG, WebAssembly
// and the uncompressed font and icon formats. Already-compressed formats
// are never on it: raster images (PNG, JPEG, WebP, AVIF, GIF), video,
// audio, WOFF/WOFF2 fonts, archives, PDF, and application/octet-stream
// (unknown bytes).
//
// A pattern is a full media type ("application/json"), a whole top-level
// type ("text/*"), or a structured-syntax suffix ("*/*+json" matches
// application/ld+json, application/problem+json, application/manifest+json,
// ...). Matching is case-insensitive and ignores parameters (charset).
func DefaultTypes() []string {
	return []string{
		"text/*", // html, css, plain, csv, xml, javascript, event-stream, markdown, calendar
		"*/*+json",
		"*/*+xml", // image/svg+xml, application/atom+xml, rss+xml, xhtml+xml
		"*/*+yaml",
		"application/json",
		"application/x-ndjson",
		"application/javascript",
		"application/x-javascript",
		"application/ecmascript",
		"application/xml",
		"application/yaml",
		"application/x-yaml",
		"application/toml",
		"application/wasm", // 2-4x smaller with gzip; browsers stream-compile it either way
		"application/graphql",
		"application/x-www-form-urlencoded",
		"application/vnd.ms-fontobject", // EOT
		"application/x-font-ttf",
		"application/x-font-otf",
		"application/x-font-opentype",
		"font/ttf",
		"font/otf",
		"font/collection",
		"font/sfnt",
		"image/x-icon",             // favicon.ico is usually uncompressed BMP
		"image/vnd.microsoft.icon", // the registered name of the same
		"image/bmp",
	}
}

// typeMatcher is a compiled list of type patterns.
type typeMatcher struct {
	exact    map[string]struct{}
	top      []string // "text/" for "text/*"
	suffixes []string // "+json" for "*/*+json"
}

func compileTypes(patterns []string) (typeMatcher, error) {
	m := typeMatcher{exact: make(map[string]struct{}, len(patterns))}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		top, sub, ok := strings.Cut(p, "/")
		switch {
		case !ok || top == "" || sub == "" || strings.ContainsAny(p, " \t;,") || strings.Count(p, "/") != 1:
			return typeMatcher{}, fmt.Errorf("type %q: want type/subtype, type/* or */*+suffix", p)
		case top == "*" && strings.HasPrefix(sub, "*+") && len(sub) > 2 && !strings.Contains(sub[2:], "*"):
			m.suffixes = append(m.suffixes, sub[1:])
		case top == "*" || strings.Contains(top, "*"):
			return typeMatcher{}, fmt.Errorf("type %q: a wildcard type is only allowed as */*+suffix", p)
		case sub == "*":
			m.top = append(m.top, top+"/")
		case strings.Contains(sub, "*"):
			return typeMatcher{}, fmt.Errorf("type %q: a wildcard subtype must be the whole subtype", p)
		default:
			m.exact[p] = struct{}{}
		}
	}
	return m, nil
}

// match reports whether the Content-Type value ct (parameters allowed)
// is on the list. It does not allocate for the usual lowercase values.
func (m *typeMatcher) match(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.Trim(ct, " \t")
	if ct == "" {
		return false
	}
	if hasUpper(ct) {
		ct = strings.ToLower(ct)
	}
	if _, ok := m.exact[ct]; ok {
		return true
	}
	for _, t := range m.top {
		if strings.HasPrefix(ct, t) {
			return true
		}
	}
	for _, s := range m.suffixes {
		if strings.HasSuffix(ct, s) {
			return true
		}
	}
	return false
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}
