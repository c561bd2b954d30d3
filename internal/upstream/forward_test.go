package upstream

import (
	"bufio"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestForwardRewrite: the header rewrite gives the same header to both
// field writers (the connection buffer and a header map), drops what
// only the proxy or a trusted proxy may set, and keeps the rest.
func TestForwardRewrite(t *testing.T) {
	in := http.Header{
		"Accept":              {"text/html"},
		"Cookie":              {"sessionid=abc; SERVERID=s1; csrftoken=x"},
		"Connection":          {"keep-alive, X-Hop"},
		"X-Hop":               {"1"},
		"Keep-Alive":          {"timeout=5"},
		"Te":                  {"trailers, deflate"},
		"Expect":              {"100-continue"},
		"X-Forwarded-For":     {"6.6.6.6"},
		"X-Forwarded-Proto":   {"https"},
		"X-Forwarded-Host":    {"evil.test"},
		"X-Forwarded-Port":    {"8443"},
		"Forwarded":           {"for=6.6.6.6"},
		"X-Original-Url":      {"/admin/"},
		"Cf-Connecting-Ip":    {"6.6.6.6"},
		"X_forwarded_for":     {"6.6.6.6"}, // as net/http canonicalises X_Forwarded_For
		"X-Forwarded_for":     {"6.6.6.6"}, // X-Forwarded_For
		"X_real_ip":           {"6.6.6.6"}, // x_real_ip
		"X_original_url":      {"/admin/"}, // X_Original_URL
		"X_custom_thing":      {"kept"},    // underscores, but no alias of ours
		"X-Request-Id":        {"r1"},
		"User-Agent":          {"test/1"},
		"Content-Length":      {"3"},
		"Transfer-Encoding":   {"chunked"},
		"Proxy-Authorization": {"Basic x"},
	}
	f := &Forward{In: in, Host: "app.test", Peer: netip.MustParseAddr("192.0.2.10"), Client: netip.MustParseAddr("192.0.2.10"),
		Port: 443, TLS: true, Sticky: "SERVERID"}
	want := http.Header{
		"Accept":            {"text/html"},
		"Cookie":            {"sessionid=abc; csrftoken=x"},
		"Te":                {"trailers"},
		"X_custom_thing":    {"kept"},
		"X-Request-Id":      {"r1"},
		"User-Agent":        {"test/1"},
		"X-Forwarded-For":   {"192.0.2.10"},
		"X-Real-Ip":         {"192.0.2.10"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"app.test"},
		"X-Forwarded-Port":  {"443"},
	}
	check := func(name string, got http.Header) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %d fields, want %d:\n got %v\nwant %v", name, len(got), len(want), got, want)
		}
		for k, v := range want {
			if !slices.Equal(got[k], v) {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
	h := http.Header{}
	f.WriteFields(headerMap(h))
	check("header map", h)

	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	WriteHead(bw, "GET", "/", "app.test", f)
	bw.WriteString("\r\n")
	bw.Flush()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sb.String())))
	if err != nil {
		t.Fatalf("the written head does not parse: %v\n%s", err, sb.String())
	}
	check("connection buffer", r.Header)

	// From a trusted proxy its forwarding headers are kept (the chain
	// extended); the underscore spellings still go.
	f.Trusted = true
	h = http.Header{}
	f.WriteFields(headerMap(h))
	for k, v := range map[string]string{"X-Forwarded-For": "6.6.6.6, 192.0.2.10", "X-Forwarded-Proto": "https",
		"X-Forwarded-Host": "evil.test", "X-Forwarded-Port": "8443", "Forwarded": "for=6.6.6.6",
		"X-Original-Url": "/admin/", "Cf-Connecting-Ip": "6.6.6.6"} {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("trusted: %s = %q, want [%q]", k, got, v)
		}
	}
	for _, k := range []string{"X_forwarded_for", "X-Forwarded_for", "X_real_ip", "X_original_url"} {
		if got, ok := h[k]; ok {
			t.Errorf("trusted: %s = %q passed; an underscore alias is dropped from anyone", k, got)
		}
	}
}

// extraFields writes fixed fields, as the proxy's header rules do.
type extraFields http.Header

func (e extraFields) WriteFields(w FieldWriter) {
	for _, k := range slices.Sorted(maps.Keys(e)) {
		if k == "X-Bytes" {
			w.FieldBytes(k, []byte(e[k][0]))
			continue
		}
		w.Field(k, e[k])
	}
}

// TestForwardOmitExtra: the client's fields named in Omit are dropped,
// with their underscore spellings (which Django reads as the same
// header), and Extra's fields follow the forwarding headers, in both
// field writers.
func TestForwardOmitExtra(t *testing.T) {
	in := http.Header{
		"Accept":         {"*/*"},
		"X-Request-Id":   {"spoofed"},
		"X_request_id":   {"spoofed-too"},
		"X-Debug":        {"1"},
		"X-Debug-Level":  {"kept"},
		"X_custom_thing": {"kept"},
	}
	f := &Forward{In: in, Host: "app.test", Peer: netip.MustParseAddr("192.0.2.10"), Client: netip.MustParseAddr("192.0.2.10"), Port: 80,
		Omit:  map[string]bool{"X-Request-Id": true, "X-Debug": true},
		Extra: extraFields{"X-Request-Id": {"0123abcd"}, "X-Bytes": {"from bytes"}, "X-Added": {"a", "b"}}}
	want := http.Header{
		"Accept":            {"*/*"},
		"X-Debug-Level":     {"kept"},
		"X_custom_thing":    {"kept"},
		"X-Request-Id":      {"0123abcd"},
		"X-Bytes":           {"from bytes"},
		"X-Added":           {"a", "b"},
		"X-Forwarded-For":   {"192.0.2.10"},
		"X-Real-Ip":         {"192.0.2.10"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-Host":  {"app.test"},
		"X-Forwarded-Port":  {"80"},
	}
	h := http.Header{}
	f.WriteFields(headerMap(h))
	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	WriteHead(bw, "GET", "/", "app.test", f)
	bw.WriteString("\r\n")
	bw.Flush()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sb.String())))
	if err != nil {
		t.Fatalf("the written head does not parse: %v\n%s", err, sb.String())
	}
	for name, got := range map[string]http.Header{"header map": h, "connection buffer": r.Header} {
		if len(got) != len(want) {
			t.Errorf("%s: %d fields, want %d:\n got %v\nwant %v", name, len(got), len(want), got, want)
		}
		for k, v := range want {
			if !slices.Equal(got[k], v) {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}
