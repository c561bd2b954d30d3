package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDemoPageExplains: to a browser the demo backend answers a page
// saying which backend answered, the headers Gatehouse added (with their
// values), how the sticky cookie works and how to see it, and where the
// event stream, the WebSocket echo and the status page are; to curl it
// answers JSON.
func TestDemoPageExplains(t *testing.T) {
	info := &demoInfo{}
	info.setAdmin("http://127.0.0.1:9180/")
	h := demoBackend("demo-2", info)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	r.Header.Set("X-Forwarded-For", "192.0.2.7")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Request-Id", "0123abcd")
	r.Header.Set("User-Agent", "<script>alert(1)</script>")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	page := w.Body.String()
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q, want HTML", ct)
	}
	for _, want := range []string{
		"Answered by <span class=\"b\">demo-2</span>",
		"<th>X-Forwarded-For</th><td class=\"v\">192.0.2.7</td>",
		"<th>X-Forwarded-Proto</th><td class=\"v\">https</td>",
		"<th>X-Request-Id</th><td class=\"v\">0123abcd</td>",
		"<code>SERVERID</code>",
		"curl -k -c - -o /dev/null https://localhost:8443/",
		`<a href="/events/">`,
		`/ws/echo`,
		`<a href="http://127.0.0.1:9180/">The status page</a>`,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a header value is not escaped")
	}

	r = httptest.NewRequest("GET", "/", nil) // curl: Accept: */*
	r.Header.Set("Accept", "*/*")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var got struct{ Backend string }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Backend != "demo-2" || w.Code != http.StatusOK {
		t.Errorf("curl gets %d %q, want JSON naming demo-2", w.Code, w.Body.String())
	}
}
