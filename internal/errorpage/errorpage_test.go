package errorpage

import (
	"strings"
	"testing"
)

func TestPages(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Page
		id   string
		want string
	}{
		{"file, no ID", FromFile([]byte("<p>oops $request_id, again $request_id</p>")), "", "<p>oops , again </p>"},
		{"file, ID", FromFile([]byte("<p>oops $request_id, again $request_id</p>")), "3f2a", "<p>oops 3f2a, again 3f2a</p>"},
		{"file without placeholder", FromFile([]byte("plain")), "3f2a", "plain"},
		{"built-in, no ID", Builtin(502), "", "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1><hr><p>gatehouse</p></body></html>\n"},
		{"built-in, ID", Builtin(404), "ab", "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>404 Not Found</h1><hr><p>gatehouse &middot; request ID <code>ab</code></p></body></html>\n"},
	} {
		var b strings.Builder
		tc.p.Write(&b, tc.id)
		if b.String() != tc.want {
			t.Errorf("%s: wrote %q, want %q", tc.name, b.String(), tc.want)
		}
		if n := tc.p.Size(tc.id); n != len(tc.want) {
			t.Errorf("%s: Size %d, wrote %d bytes", tc.name, n, len(tc.want))
		}
	}
	if Builtin(200) != nil || Builtin(418) != nil {
		t.Error("a built-in page for a status that has none")
	}
}
