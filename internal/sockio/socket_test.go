package sockio

import (
	"crypto/tls"
	"net"
	"testing"
)

// layer is a wrapper as the connection stack has them: it may refuse to be
// bypassed (Unwrap nil) or hold bytes of its own.
type layer struct {
	net.Conn
	bypass   bool
	buffered int
}

func (l *layer) Unwrap() net.Conn {
	if !l.bypass {
		return nil
	}
	return l.Conn
}

func (l *layer) Buffered() int { return l.buffered }

// plain is a wrapper that does not say what it is: Socket must not look
// through it.
type plain struct{ net.Conn }

func TestSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tcp := c.(*net.TCPConn)
	for _, tc := range []struct {
		name string
		conn net.Conn
		want net.Conn
	}{
		{"the socket itself", tcp, tcp},
		{"through two wrappers", &layer{Conn: Wrap(&layer{Conn: tcp, bypass: true}), bypass: true}, tcp},
		{"a wrapper still inspecting", &layer{Conn: tcp}, nil},
		{"a wrapper holding bytes", &layer{Conn: tcp, bypass: true, buffered: 3}, nil},
		{"holding bytes further down", &layer{Conn: &layer{Conn: tcp, bypass: true, buffered: 1}, bypass: true}, nil},
		{"an unknown wrapper", plain{tcp}, nil},
		{"TLS", tls.Client(tcp, &tls.Config{}), nil},
		{"nil", nil, nil},
	} {
		if got := Socket(tc.conn); got != tc.want {
			t.Errorf("%s: Socket = %v, want %v", tc.name, got, tc.want)
		}
	}
}
