package accesslog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestFormats: both formats escape what the client sent, so no value can
// end a line or a field, and JSON lines carry the optional fields only
// when they are set.
func TestFormats(t *testing.T) {
	start := time.Date(2026, 12, 5, 11, 30, 0, 0, time.FixedZone("", 3600))
	e := Entry{Start: start, Duration: 1500 * time.Microsecond, Client: "2001:db8::1", Method: "GET",
		Host: "app.test", URI: "/x\"\n\\\xff", Proto: "HTTP/2.0", Status: 404, Bytes: 7,
		UserAgent: "a\x00b", Site: "app", Route: "/", TLS: true}
	for _, tc := range []struct {
		format string
		e      Entry
		want   string
	}{
		{"combined", e, `2001:db8::1 - - [05/Dec/2026:11:30:00 +0100] "GET /x\x22\x0A\x5C\xFF HTTP/2.0" 404 7 "-" "a\x00b"` + "\n"},
		{"json", e, `{"time":"2026-12-05T10:30:00Z","client":"2001:db8::1","method":"GET","host":"app.test","uri":"/x\"\u000a\\\ufffd",` +
			`"proto":"HTTP/2.0","status":404,"bytes":7,"duration_ms":1.500,"site":"app","route":"/","upstream":"","tls":true,` +
			`"referer":"","user_agent":"a\u0000b"}` + "\n"},
		{"json", Entry{Start: start, Status: 101, RequestID: "r1", WS: true, WSBytesIn: 3, WSCode: 1000, WSCause: "client"},
			`{"time":"2026-12-05T10:30:00Z","client":"","method":"","host":"","uri":"","proto":"","status":101,"bytes":0,` +
				`"duration_ms":0.000,"site":"","route":"","upstream":"","tls":false,"referer":"","user_agent":"",` +
				`"request_id":"r1","ws_bytes_in":3,"ws_close_code":1000,"ws_close_cause":"client"}` + "\n"},
	} {
		var buf strings.Builder
		logs := New()
		logs.Stdout = &buf
		l, err := logs.Open("stdout", tc.format)
		if err != nil {
			t.Fatal(err)
		}
		l.Write(&tc.e)
		if got := buf.String(); got != tc.want {
			t.Errorf("%s line:\n got %s\nwant %s", tc.format, got, tc.want)
		}
		if tc.format == "json" && !json.Valid([]byte(buf.String())) {
			t.Errorf("not valid JSON: %s", buf.String())
		}
	}
}
