package staticfile

import (
	"mime"
	"path"
	"strings"
)

// contentType returns the Content-Type for a file name: the built-in table
// of the web's types first (the same on every host), then the host's
// table through mime.TypeByExtension, then application/octet-stream.
// Content is never sniffed: responses carry X-Content-Type-Options:
// nosniff, and a sniffed type would let an uploaded file choose to be
// HTML.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t := builtinType(ext); t != "" {
		return t
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return "application/octet-stream"
}

// builtinType is the table of types a web site's static and media files
// use, after the WHATWG and IANA registrations (text types in UTF-8, as
// Django writes them).
func builtinType(ext string) string {
	switch ext {
	// Text and code.
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs", ".cjs":
		return "text/javascript; charset=utf-8" // RFC 9239
	case ".json", ".map":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	case ".xml":
		return "text/xml; charset=utf-8"
	case ".rss":
		return "application/rss+xml"
	case ".atom":
		return "application/atom+xml"
	case ".vtt":
		return "text/vtt; charset=utf-8"
	case ".ics":
		return "text/calendar; charset=utf-8"
	case ".wasm":
		return "application/wasm"
	// Images.
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".apng":
		return "image/apng"
	case ".jpg", ".jpeg", ".jfif", ".pjpeg", ".pjp":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".avif":
		return "image/avif"
	case ".jxl":
		return "image/jxl"
	case ".ico", ".cur":
		return "image/vnd.microsoft.icon"
	case ".bmp":
		return "image/bmp"
	case ".tif", ".tiff":
		return "image/tiff"
	// Fonts.
	case ".woff":
		return "font/woff"
	case ".woff2":
		return "font/woff2"
	case ".ttf":
		return "font/ttf"
	case ".otf":
		return "font/otf"
	case ".eot":
		return "application/vnd.ms-fontobject"
	// Audio and video.
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".ogv":
		return "video/ogg"
	case ".mov":
		return "video/quicktime"
	case ".mp3":
		return "audio/mpeg"
	case ".m4a":
		return "audio/mp4"
	case ".ogg", ".oga", ".opus":
		return "audio/ogg"
	case ".wav":
		return "audio/wav"
	case ".flac":
		return "audio/flac"
	// Documents and archives.
	case ".pdf":
		return "application/pdf"
	case ".zip":
		return "application/zip"
	case ".gz":
		return "application/gzip"
	case ".br":
		return "application/x-brotli"
	case ".zst":
		return "application/zstd"
	case ".tar":
		return "application/x-tar"
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".odt":
		return "application/vnd.oasis.opendocument.text"
	case ".ods":
		return "application/vnd.oasis.opendocument.spreadsheet"
	case ".epub":
		return "application/epub+zip"
	}
	return ""
}
