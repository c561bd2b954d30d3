package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoContentTypeAdded: a response without Content-Type is passed on
// without one, over HTTP/1.1 and HTTP/2 (net/http would sniff the body
// and add "text/plain; charset=utf-8"); one with a Content-Type keeps it.
func TestNoContentTypeAdded(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/typed" {
					w.Header().Set("Content-Type", "application/x-thing")
				} else {
					w.Header()["Content-Type"] = nil // the backend sends none
				}
				io.WriteString(w, "hello, plain text")
			}))
			t.Cleanup(backend.Close)
			f := newFwdEdge(t, fwdConfig("gatehouse", strings.TrimPrefix(backend.URL, "http://"), "", "", ""))
			url, c := f.serve(t, h2)
			c = fileClient(c)
			for path, want := range map[string][]string{"/": nil, "/typed": {"application/x-thing"}} {
				resp, body := fileDo(t, c, "GET", url+path, nil)
				if got := resp.Header["Content-Type"]; strings.Join(got, ",") != strings.Join(want, ",") || string(body) != "hello, plain text" {
					t.Errorf("GET %s: Content-Type %q, body %q; want %q", path, got, body, want)
				}
			}
			c.CloseIdleConnections()
		})
	}
}
