package edgeserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pires/go-proxyproto"
)

func v2Header(cmd, famProto byte, addr []byte, tlv []byte) []byte {
	b := append([]byte{}, proxyproto.SIGV2...)
	b = append(b, 0x20|cmd, famProto, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addr)+len(tlv)))
	b = append(b, addr...)
	return append(b, tlv...)
}

func v2Addr4(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sp), dp)
}

func v2Addr6(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sp), dp)
}

// chunkReader returns its chunks one Read at a time, as a socket returns
// the segments of a header that arrived in pieces.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

func (r *chunkReader) rest() int {
	n := 0
	for _, c := range r.chunks {
		n += len(c)
	}
	return n
}

// parseAll reads a header from r over in and returns it with the number
// of bytes of in that the header took: those read from r, less those
// returned as leftover. It checks that the leftover is exactly the bytes
// that followed the header.
func parseAll(t *testing.T, in []byte, r io.Reader, rest func() int) (ProxyHeader, int, error) {
	t.Helper()
	h, left, err := readProxyHeader(r)
	if err != nil {
		if left != nil || h != (ProxyHeader{}) {
			t.Errorf("error %v with header %+v and %d leftover bytes", err, h, len(left))
		}
		return h, 0, err
	}
	n := len(in) - rest() - len(left)
	if n <= 0 || !bytes.Equal(left, in[n:n+len(left)]) {
		t.Errorf("leftover %q does not follow a header of %d bytes in %q", left, n, in)
	}
	if left != nil && len(left) == 0 {
		t.Error("empty leftover is not nil")
	}
	return h, n, nil
}

// TestProxyHeaderAccepted: the headers a PROXY listener takes, what it
// makes of them, and that it takes exactly the header's bytes, however
// the header is split across reads.
func TestProxyHeaderAccepted(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name      string
		in        []byte
		wantSrc   netip.AddrPort
		wantDst   netip.AddrPort
		wantLocal bool
		wantN     int
	}{
		{"v1 tcp4", []byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\nGET"), ap("198.51.100.7:51234"), ap("192.0.2.1:443"), false, 45},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n"), ap("[2001:db8::7]:1"), ap("[2001:db8::1]:443"), false, 42},
		{"v1 tcp6 mapped", []byte("PROXY TCP6 ::ffff:198.51.100.7 2001:db8::1 1 443\r\n"), ap("198.51.100.7:1"), ap("[2001:db8::1]:443"), false, 50},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n\x16\x03"), netip.AddrPort{}, netip.AddrPort{}, true, 15},
		{"v1 unknown with junk", []byte("PROXY UNKNOWN whatever goes here\r\n"), netip.AddrPort{}, netip.AddrPort{}, true, 34},
		{"v1 longest", []byte("PROXY UNKNOWN " + strings.Repeat("f", 91) + "\r\n"), netip.AddrPort{}, netip.AddrPort{}, true, 107},
		{"v2 tcp4", append(v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 40000, 443), nil), 0x16), ap("203.0.113.5:40000"), ap("192.0.2.1:443"), false, 28},
		{"v2 tcp6 with TLV", v2Header(1, 0x21, v2Addr6("2001:db8:5::9", "2001:db8::1", 7, 443), []byte{0x04, 0, 1, 0}), ap("[2001:db8:5::9]:7"), ap("[2001:db8::1]:443"), false, 56},
		{"v2 tcp6 mapped", v2Header(1, 0x21, v2Addr6("::ffff:203.0.113.5", "2001:db8::1", 7, 443), nil), ap("203.0.113.5:7"), ap("[2001:db8::1]:443"), false, 52},
		{"v2 malformed TLV", v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), []byte{0xff, 0xff}), ap("203.0.113.5:1"), ap("192.0.2.1:2"), false, 30},
		{"v2 4 KiB of TLV", v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), make([]byte, 4096-12)), ap("203.0.113.5:1"), ap("192.0.2.1:2"), false, 16 + 4096},
		{"v2 local", v2Header(0, 0x00, nil, nil), netip.AddrPort{}, netip.AddrPort{}, true, 16},
		{"v2 local with TLV", v2Header(0, 0x00, nil, []byte{1, 0, 2, 'h', '2'}), netip.AddrPort{}, netip.AddrPort{}, true, 21},
		{"v2 local with addresses", v2Header(0, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), nil), netip.AddrPort{}, netip.AddrPort{}, true, 28},
		{"v2 local short block", v2Header(0, 0x21, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), nil), netip.AddrPort{}, netip.AddrPort{}, true, 28},
		{"v2 unix", v2Header(1, 0x31, make([]byte, 216), nil), netip.AddrPort{}, netip.AddrPort{}, true, 232},
		{"v2 udp4", v2Header(1, 0x12, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), nil), ap("203.0.113.5:1"), ap("192.0.2.1:2"), false, 28},
	}
	for _, tt := range tests {
		in := append(append([]byte{}, tt.in...), "and the client's bytes"...)
		check := func(how string, r io.Reader, rest func() int) {
			t.Helper()
			h, n, err := parseAll(t, in, r, rest)
			if err != nil {
				t.Errorf("%s, %s: %v", tt.name, how, err)
				return
			}
			wantV := 1
			if tt.in[0] == '\r' {
				wantV = 2
			}
			if h.Source != tt.wantSrc || h.Destination != tt.wantDst || h.Local != tt.wantLocal || h.Version != wantV || n != tt.wantN {
				t.Errorf("%s, %s: got %+v n %d, want src %v dst %v local %v version %d n %d",
					tt.name, how, h, n, tt.wantSrc, tt.wantDst, tt.wantLocal, wantV, tt.wantN)
			}
		}
		r := bytes.NewReader(in)
		check("one read", r, r.Len)
		r = bytes.NewReader(in)
		check("byte by byte", iotest.OneByteReader(r), r.Len)
		// go-proxyproto alone refuses a v1 header that its first read
		// did not bring whole; every split must be taken.
		for i := 1; i < tt.wantN; i++ {
			cr := &chunkReader{chunks: [][]byte{in[:i:i], in[i:]}}
			check("split", cr, cr.rest)
		}
	}
}

// TestProxyHeaderRefused: what a PROXY listener refuses, each with a
// reason that says what was wrong.
func TestProxyHeaderRefused(t *testing.T) {
	sig := string(proxyproto.SIGV2)
	tests := []struct {
		name, in, why string
	}{
		{"tls hello", "\x16\x03\x01\x00\x05hello", `not a PROXY protocol header: starts "\x16`},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", `not a PROXY protocol header: starts "G`},
		{"http post", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", `not a PROXY protocol header: starts "POST`},
		{"empty", "", "no PROXY header: EOF"},
		{"v1 cut", "PROXY TCP4 1.2.3.4 5.6", "incomplete after 22 bytes: EOF"},
		{"v1 lower", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
		{"v1 junk after PROXY", "PROXYjunk TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "can't read version 1 header"},
		{"v1 lf only", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "must end with \\r\\n"},
		{"v1 cr inside", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n", "invalid port number"},
		{"v1 too long", "PROXY UNKNOWN " + strings.Repeat("f", 92) + "\r\n", "107 bytes or less"},
		{"v1 no newline", "PROXY TCP4 " + strings.Repeat("1", 200), "107 bytes or less"},
		{"v1 family", "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", "invalid address"},
		{"v1 ipv4 in tcp6", "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", "invalid address"},
		{"v1 zone", "PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n", "invalid address"},
		{"v1 octet with leading zero", "PROXY TCP4 001.2.3.4 5.6.7.8 1 2\r\n", "invalid address"},
		{"v1 fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "can't read address family or protocol"},
		{"v1 extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "can't read address family or protocol"},
		{"v1 double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "can't read address family or protocol"},
		{"v1 port", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "invalid port number"},
		{"v1 port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "invalid port number"},
		{"v1 port sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "invalid port number"},
		{"v1 proto", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "can't read address family or protocol"},
		{"v1 bare", "PROXY\r\n", "can't read address family or protocol"},
		{"v2 version", sig + "\x11\x11\x00\x00", "unsupported proxy protocol version and command"},
		{"v2 command", string(v2Header(2, 0x11, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil)), "unsupported proxy protocol version and command"},
		{"v2 family", string(v2Header(1, 0x41, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil)), "unsupported address family and protocol"},
		{"v2 transport", string(v2Header(1, 0x13, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil)), "unsupported address family and protocol"},
		{"v2 local undefined family", string(v2Header(0, 0x10, nil, nil)), "unsupported address family and protocol"},
		{"v2 proxy unspec", string(v2Header(1, 0x00, nil, nil)), "unsupported address family and protocol"},
		{"v2 short block", string(v2Header(1, 0x21, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil)), "invalid length"},
		{"v2 short unix block", string(v2Header(1, 0x31, nil, nil)), "invalid length"},
		{"v2 too long", sig + "\x21\x11\x10\x01" + strings.Repeat("\x00", 4097), "invalid length"},
		{"v2 far too long", sig + "\x21\x11\xff\xff", "invalid length"},
		{"v2 cut", string(v2Header(1, 0x11, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil)[:20]), "invalid address"},
		{"v2 bad sig", "\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00", "not a PROXY protocol header"},
	}
	for _, tt := range tests {
		for how, r := range map[string]io.Reader{
			"one read":     strings.NewReader(tt.in),
			"byte by byte": iotest.OneByteReader(strings.NewReader(tt.in)),
		} {
			h, left, err := readProxyHeader(r)
			if err == nil {
				t.Errorf("%s, %s: accepted as %+v", tt.name, how, h)
				continue
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("%s, %s: error %q, want it to say %q", tt.name, how, err, tt.why)
			}
			if h != (ProxyHeader{}) || left != nil {
				t.Errorf("%s, %s: error with header %+v, leftover %q", tt.name, how, h, left)
			}
			if strings.Contains(tt.why, "not a PROXY") != errors.Is(err, ErrNotProxy) {
				t.Errorf("%s, %s: errors.Is(%v, ErrNotProxy) = %v", tt.name, how, err, errors.Is(err, ErrNotProxy))
			}
		}
	}
}

// FuzzProxyHeader: whatever the input, a header is either refused or
// taken whole, the same however the bytes arrive, and the bytes after
// it are handed back, not lost.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\nGET"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 40000, 443), nil))
	f.Add(v2Header(1, 0x21, v2Addr6("2001:db8:5::9", "2001:db8::1", 7, 443), []byte{4, 0, 1, 0}))
	f.Add(v2Header(1, 0x31, make([]byte, 216), nil))
	f.Add(v2Header(0, 0, nil, nil))
	f.Add([]byte{0x16, 3, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, n, err := parseAll(t, b, r, r.Len)
		r1 := bytes.NewReader(b)
		h1, n1, err1 := parseAll(t, b, iotest.OneByteReader(r1), r1.Len)
		if (err == nil) != (err1 == nil) || h != h1 || n != n1 {
			t.Fatalf("one read: %+v n=%d err=%v; byte by byte: %+v n=%d err=%v", h, n, err, h1, n1, err1)
		}
		if err != nil {
			return
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		if max := map[int]int{1: proxyV1Max, 2: 16 + int(proxyproto.MaxV2HeaderSize)}[h.Version]; n > max {
			t.Fatalf("v%d header of %d bytes, more than %d", h.Version, n, max)
		}
		if h.Local != (h.Source == netip.AddrPort{}) || h.Local != (h.Destination == netip.AddrPort{}) {
			t.Fatalf("local %v with source %v destination %v", h.Local, h.Source, h.Destination)
		}
		if !h.Local && (h.Source.Addr().Is4In6() || h.Source.Addr().Zone() != "" || h.Destination.Addr().Is4In6()) {
			t.Fatalf("source %v destination %v not unmapped, or zoned", h.Source, h.Destination)
		}
		// The header is a function of its own bytes alone.
		r2 := bytes.NewReader(b[:n])
		if h2, n2, err2 := parseAll(t, b[:n], r2, r2.Len); err2 != nil || h2 != h || n2 != n {
			t.Fatalf("reparse of the header alone: %+v %d %v, want %+v %d", h2, n2, err2, h, n)
		}
	})
}
