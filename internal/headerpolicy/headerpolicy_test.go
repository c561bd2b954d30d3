package headerpolicy

import (
	"strings"
	"testing"
)

func TestResponse(t *testing.T) {
	for _, c := range []struct {
		name, requestID, want string // want: a part of the reason, "" for allowed
	}{
		{"X-Frame-Options", "X-Request-Id", ""},
		{"Cache-Control", "", ""},
		{"Set-Cookie", "", ""},
		{"Transfer-Encoding", "", "hop-by-hop"},
		{"Connection", "", "hop-by-hop"},
		{"Content-Length", "", "frames the body"},
		{"Content-Encoding", "", "misread the bytes"},
		{"Strict-Transport-Security", "", "hsts key"},
		{"X-Accel-Redirect", "", "instruction from a backend"},
		{"X-Sendfile", "", "instruction from a backend"},
		{"X-Request-Id", "X-Request-Id", "carries the request ID"},
		{"X-Request-Id", "", ""}, // request IDs off
	} {
		got := Response(c.name, c.requestID)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("Response(%q, %q) = %q, want %q", c.name, c.requestID, got, c.want)
		}
	}
}

func TestRequest(t *testing.T) {
	for _, c := range []struct {
		name, op, want string
	}{
		{"X-Tenant", "set", ""},
		{"Authorization", "remove", ""},
		{"Host", "set", "cannot be changed"},
		{"X-Forwarded-For", "add", "written by Gatehouse from the connection"},
		{"X-Real-Ip", "remove", "written by Gatehouse from the connection"},
		{"Expect", "set", "hop-by-hop or frames the body"},
		{"Te", "remove", "hop-by-hop or frames the body"},
		{"Cookie", "set", "may only remove it"},
		{"Cookie", "remove", ""},
		{"X-Request-Id", "set", "carries the request ID"},
		{"X_Real_Ip", "set", "X-Real-Ip spelled with underscores"},
		{"X_Tenant", "set", ""}, // underscores alone are no alias of a protected field
	} {
		got := Request(c.name, c.op, "X-Request-Id")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("Request(%q, %q) = %q, want %q", c.name, c.op, got, c.want)
		}
	}
}

func TestSyntax(t *testing.T) {
	for s, want := range map[string]bool{"X-A": true, "x_b": true, "a!#$%&'*+.^`|~": true, "": false, "X A": false, "X:A": false, "X\x7f": false, "é": false} {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
	for v, want := range map[string]string{
		"max-age=60": "", "a\tb": "", "": "is empty", "a\r\nSet-Cookie: x": "control character", "a\x7f": "control character",
		" a": "white space", "a\t": "white space",
	} {
		got := CheckValue(v)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("CheckValue(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestReserved(t *testing.T) {
	for name, want := range map[string]bool{"X-Request-Id": false, "X-Correlation-Id": false, "Host": true, "Cookie": true,
		"Set-Cookie": true, "X-Forwarded-For": true, "Upgrade": true, "Content-Length": true, "X-Accel-Buffering": true} {
		if got := Reserved(name); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", name, got, want)
		}
	}
}
