package edgeserver

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func v2Header(cmd, famProto byte, addr []byte, tlv []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
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

func TestParseProxyHeader(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name      string
		in        []byte
		wantSrc   netip.AddrPort
		wantLocal bool
		wantN     int
	}{
		{"v1 tcp4", []byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\nGET"), ap("198.51.100.7:51234"), false, 45},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n"), ap("[2001:db8::7]:1"), false, 42},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n\x16\x03"), netip.AddrPort{}, true, 15},
		{"v1 unknown with junk", []byte("PROXY UNKNOWN whatever goes here\r\n"), netip.AddrPort{}, true, 34},
		{"v2 tcp4", append(v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 40000, 443), nil), 0x16), ap("203.0.113.5:40000"), false, 28},
		{"v2 tcp6 with TLV", v2Header(1, 0x21, v2Addr6("2001:db8:5::9", "2001:db8::1", 7, 443), []byte{0x04, 0, 1, 0}), ap("[2001:db8:5::9]:7"), false, 56},
		{"v2 local", v2Header(0, 0x00, nil, nil), netip.AddrPort{}, true, 16},
		{"v2 unspec proxy", v2Header(1, 0x00, nil, nil), netip.AddrPort{}, true, 16},
		{"v2 udp4", v2Header(1, 0x12, v2Addr4("203.0.113.5", "192.0.2.1", 1, 2), nil), ap("203.0.113.5:1"), false, 28},
	}
	for _, tt := range tests {
		h, n, err := ParseProxyHeader(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if h.Source != tt.wantSrc || h.Local != tt.wantLocal || n != tt.wantN {
			t.Errorf("%s: got src %v local %v n %d, want %v %v %d", tt.name, h.Source, h.Local, n, tt.wantSrc, tt.wantLocal, tt.wantN)
		}
		// Every proper prefix is incomplete, never an error or a header.
		for i := range n {
			if _, _, err := ParseProxyHeader(tt.in[:i]); !errors.Is(err, ErrProxyIncomplete) {
				t.Errorf("%s: prefix of %d bytes: %v, want ErrProxyIncomplete", tt.name, i, err)
				break
			}
		}
	}
}

func TestParseProxyHeaderErrors(t *testing.T) {
	long := []byte("PROXY TCP4 ")
	for len(long) < 120 {
		long = append(long, '1')
	}
	bad := map[string][]byte{
		"tls hello":      {0x16, 0x03, 0x01, 0x00},
		"http":           []byte("GET / HTTP/1.1\r\n"),
		"v1 lf only":     []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
		"v1 too long":    long,
		"v1 family":      []byte("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n"),
		"v1 fields":      []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
		"v1 port":        []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
		"v1 port zero":   []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
		"v1 proto":       []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
		"v1 lower":       []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
		"v1 zone":        []byte("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"),
		"v2 version":     append(append([]byte{}, proxyV2Sig...), 0x11, 0x11, 0, 0),
		"v2 command":     v2Header(2, 0x11, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil),
		"v2 family":      v2Header(1, 0x41, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil),
		"v2 short block": v2Header(1, 0x21, v2Addr4("1.2.3.4", "5.6.7.8", 1, 2), nil),
		"v2 too long":    append(append([]byte{}, proxyV2Sig...), 0x21, 0x11, 0xff, 0xff),
		"v2 bad sig":     []byte("\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00"),
	}
	for name, in := range bad {
		if h, n, err := ParseProxyHeader(in); err == nil || errors.Is(err, ErrProxyIncomplete) {
			t.Errorf("%s: got %+v n=%d err=%v, want an error", name, h, n, err)
		}
	}
	if _, _, err := ParseProxyHeader([]byte{0x16, 3, 1}); !errors.Is(err, ErrNotProxy) {
		t.Errorf("TLS record: %v, want ErrNotProxy", err)
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, v2Addr4("203.0.113.5", "192.0.2.1", 40000, 443), nil))
	f.Add(v2Header(1, 0x21, v2Addr6("2001:db8:5::9", "2001:db8::1", 7, 443), []byte{4, 0, 1, 0}))
	f.Add(v2Header(0, 0, nil, nil))
	f.Add([]byte{0x16, 3, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseProxyHeader(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxProxyHeaderLen {
			t.Fatalf("n = %d for %d input bytes", n, len(b))
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		if !h.Local && (!h.Source.IsValid() || !h.Destination.IsValid() || h.Source.Addr().Is4In6()) {
			t.Fatalf("non-local header with source %v destination %v", h.Source, h.Destination)
		}
		// Parsing is a function of the header bytes alone.
		h2, n2, err2 := ParseProxyHeader(b[:n])
		if err2 != nil || h2 != h || n2 != n {
			t.Fatalf("reparse of the header alone: %+v %d %v, want %+v %d", h2, n2, err2, h, n)
		}
	})
}
