package staticfile

import "strings"

// cleanName checks a request name (slash-separated, relative to the root,
// with at most one leading slash) without trusting that the caller has
// normalised it. It returns the name without the leading slash and
// whether it names a directory (ends with a slash, or is empty). ok is
// false for a name that must not reach the file system: an empty
// segment ("a//b"), a "." or ".." segment, a segment starting with "."
// unless allowDot, a NUL byte or a backslash (a separator on Windows,
// refused everywhere so that the rules do not depend on the OS).
func cleanName(name string, allowDot bool) (clean string, dir, ok bool) {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		return "", true, true
	}
	dir = name[len(name)-1] == '/'
	body := name
	if dir {
		body = name[:len(name)-1]
	}
	start := 0
	for i := 0; i <= len(body); i++ {
		if i < len(body) {
			switch body[i] {
			case 0, '\\':
				return "", false, false
			case '/':
			default:
				continue
			}
		}
		seg := body[start:i]
		if seg == "" || seg == "." || seg == ".." || (seg[0] == '.' && !allowDot) {
			return "", false, false
		}
		start = i + 1
	}
	return name, dir, true
}

// IsHashed reports whether a file name carries a content hash, so that
// its content never changes under that name and it may be cached for a
// year (Cache-Control: immutable). The hash is a dot-separated segment of
// the base name that is neither its first segment (the stem) nor its last
// (the extension), made of 8 to 64 lowercase hexadecimal digits of which
// at least one is a letter:
//
//	app.3f2a1b9c4d5e.css     Django ManifestStaticFilesStorage (12 digits), whitenoise
//	main.a1b2c3d4.chunk.js   webpack [name].[contenthash:8].chunk.js
//	output.3f2a1b9c4d5e.css  django-compressor
//
// The letter rule keeps dates and version numbers (report.20240101.pdf)
// out; the rare hash made of digits only is simply cached for the short
// time. Hashes that are not dot-separated hex (Vite's index-BdX3sJ2a.js)
// are not recognised.
func IsHashed(name string) bool {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	first := strings.IndexByte(name, '.')
	last := strings.LastIndexByte(name, '.')
	if first < 0 || first == last {
		return false
	}
	mid := name[first+1 : last]
	for mid != "" {
		seg := mid
		if i := strings.IndexByte(mid, '.'); i >= 0 {
			seg, mid = mid[:i], mid[i+1:]
		} else {
			mid = ""
		}
		if isHash(seg) {
			return true
		}
	}
	return false
}

func isHash(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f':
			letter = true
		default:
			return false
		}
	}
	return letter
}
