package proxy

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestUpstreamTarget: what goes to the backend for targets as net/http
// parses them off the wire, HTTP/1 absolute-form included.
func TestUpstreamTarget(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"GET /a/b?x=1 HTTP/1.1", "/a/b?x=1"},
		{"GET /static/x/../admin/x?q=%2e%2e/.. HTTP/1.1", "/static/admin/x?q=%2e%2e/.."},
		{"GET //api/x? HTTP/1.1", "/api/x?"},
		{"GET /static%2Fadmin/x HTTP/1.1", "/static%2Fadmin/x"},
		{"GET /a%7e%41 HTTP/1.1", "/a~A"},
		{"GET http://other.test/x/./y?z HTTP/1.1", "/x/y?z"},
		{"GET http://other.test HTTP/1.1", "/"},
		{"GET http://other.test?q HTTP/1.1", "/?q"},
		{"GET http://other.test/a%2Fb HTTP/1.1", "/a%2Fb"},
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.line + "\r\nHost: app.test\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if got := upstreamTarget(r); got != tc.want {
			t.Errorf("%s: upstreamTarget = %q, want %q", tc.line, got, tc.want)
		}
	}
	// HTTP/2 requests as net/http builds them: RequestURI is :path as
	// sent, which may hold bytes HTTP/1 cannot carry raw.
	r := &http.Request{Method: "GET", RequestURI: "/a b/../c?x y\x7f", URL: &url.URL{Path: "/a b/../c", RawQuery: "x y\x7f"}}
	if got, want := upstreamTarget(r), "/c?x%20y%7F"; got != want {
		t.Errorf("HTTP/2 :path %q: upstreamTarget = %q, want %q", r.RequestURI, got, want)
	}
}

// TestUpstreamTargetAllocs: the target of a request whose path is already
// in normal form is forwarded without allocating.
func TestUpstreamTargetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET /static/app.css?v=3 HTTP/1.1\r\nHost: a\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		upstreamTarget(r)
	}); n != 0 {
		t.Errorf("a path in normal form: %.1f allocs, want 0", n)
	}
}
