// Package errorpage holds the bodies of the error pages Gatehouse answers
// with itself: the built-in ones ([Builtin], short HTML like nginx's) and
// a site's own files ([FromFile]), each with the request ID put in where
// the page asks for it, precomputed so that sending one costs no more
// than its writes.
package errorpage

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// Page is an error page body, precomputed: plain is the page sent when
// request IDs are off, parts the page split where the request ID goes
// (parts[0] ID parts[1] ID ... parts[n]). A Page is never modified once
// made, so it is safe for concurrent use.
type Page struct {
	plain []byte
	parts [][]byte
}

// Placeholder is replaced by the request ID in a site's error page files
// (error_pages): "$request_id", as in header rules. Without request IDs
// it is removed.
const Placeholder = "$request_id"

// FromFile is the Page of an error page file's contents b.
func FromFile(b []byte) *Page {
	return &Page{
		plain: bytes.ReplaceAll(b, []byte(Placeholder), nil),
		parts: bytes.Split(b, []byte(Placeholder)),
	}
}

// builtin are the built-in pages by status, made once and never modified.
var builtin = func() map[int]*Page {
	m := map[int]*Page{}
	for _, code := range []int{400, 403, 404, 405, 408, 413, 416, 421, 429, 431, 500, 501, 502, 503, 504} {
		text := strconv.Itoa(code) + " " + http.StatusText(code)
		head := "<!DOCTYPE html>\n<html><head><title>" + text + "</title></head>\n<body><h1>" + text + "</h1><hr><p>gatehouse"
		tail := "</p></body></html>\n"
		m[code] = &Page{
			plain: []byte(head + tail),
			parts: [][]byte{[]byte(head + " &middot; request ID <code>"), []byte("</code>" + tail)},
		}
	}
	return m
}()

// Builtin is the default page for status code, short HTML like nginx's
// with the request ID when there is one; nil for a status without one
// (the response then has no body).
func Builtin(code int) *Page { return builtin[code] }

// Size is the page's length with id in it ("": request IDs are off).
func (p *Page) Size(id string) int {
	if id == "" {
		return len(p.plain)
	}
	n := (len(p.parts) - 1) * len(id)
	for _, b := range p.parts {
		n += len(b)
	}
	return n
}

// Write writes the page with id in it ("": request IDs are off). Write
// errors are the caller's to notice (the response writer's state).
func (p *Page) Write(w io.Writer, id string) {
	if id == "" {
		_, _ = w.Write(p.plain)
		return
	}
	for i, b := range p.parts {
		if i > 0 {
			_, _ = io.WriteString(w, id)
		}
		_, _ = w.Write(b)
	}
}
