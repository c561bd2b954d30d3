package wsproxy

import (
	"crypto/tls"
	"net"
	"testing"
)

// layer is a client conn wrapper as the listeners stack them: it can be
// bypassed (pass) and may hold unread bytes (held).
type layer struct {
	net.Conn
	pass bool
	held int
}

func (l *layer) Unwrap() net.Conn {
	if !l.pass {
		return nil
	}
	return l.Conn
}

func (l *layer) Buffered() int { return l.held }

// TestTLSUnder: the tunnel is given the *tls.Conn under a hijacked HTTPS
// client conn (issue 17.4: it then waits for the client on the socket,
// holding no buffer) only when every wrapper above it can be bypassed and
// holds nothing; otherwise the tunnel reads through the wrappers.
func TestTLSUnder(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := tls.Server(a, &tls.Config{})
	for _, tc2 := range []struct {
		name string
		c    net.Conn
		want bool
	}{
		{"tls conn", tc, true},
		{"guard passing through", &layer{Conn: tc, pass: true}, true},
		{"two layers", &layer{Conn: &layer{Conn: tc, pass: true}, pass: true}, true},
		{"guard still inspecting", &layer{Conn: tc}, false},
		{"guard holding a frame", &layer{Conn: tc, pass: true, held: 6}, false},
		{"plain socket", a, false},
		{"wrapper over a plain socket", &layer{Conn: a, pass: true}, false},
	} {
		got := tlsUnder(tc2.c)
		if (got != nil) != tc2.want || got != nil && got != tc {
			t.Errorf("%s: tlsUnder = %v, want the TLS conn: %v", tc2.name, got, tc2.want)
		}
	}
}
