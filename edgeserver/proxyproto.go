package edgeserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// ProxyHeader is a parsed PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2).
type ProxyHeader struct {
	// Version is 1 (text) or 2 (binary).
	Version int
	// Local is true when the header carries no client address: a v2 LOCAL
	// command (the balancer's own health check), a v1 "UNKNOWN" line, or a
	// v2 UNSPEC or Unix-socket address. The connection's own addresses
	// apply then, as the specification requires.
	Local bool
	// Source and Destination are the client's and the balancer's addresses
	// as the balancer saw them; valid only when !Local.
	Source, Destination netip.AddrPort
}

// ErrProxyIncomplete is returned by [ParseProxyHeader] when b is a valid
// beginning of a header and more bytes are needed.
var ErrProxyIncomplete = errors.New("edgeserver: incomplete PROXY protocol header")

// ErrNotProxy is wrapped by the errors of [ParseProxyHeader] (and of a
// PROXY listener's handshake) when the input is not a PROXY protocol header
// at all, for example a TLS ClientHello sent straight to the listener.
var ErrNotProxy = errors.New("not a PROXY protocol header")

const (
	proxyV1Max = 107 // the longest v1 line, CRLF included
	// proxyV2MaxLen bounds the v2 address-and-TLV block we accept; the
	// specification lets senders assume 536 bytes of header fit, we take 4 KiB.
	proxyV2MaxLen = 4096
	// MaxProxyHeaderLen is the longest header ParseProxyHeader accepts.
	MaxProxyHeaderLen = 16 + proxyV2MaxLen
)

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// ParseProxyHeader parses the PROXY protocol header at the start of b and
// returns it with its length n (the bytes after it belong to the client's
// stream). It returns [ErrProxyIncomplete] when b is a proper prefix of a
// header, and an error wrapping [ErrNotProxy] or describing the defect
// otherwise. TLVs of v2 headers are skipped.
func ParseProxyHeader(b []byte) (h ProxyHeader, n int, err error) {
	if len(b) == 0 {
		return h, 0, ErrProxyIncomplete
	}
	switch b[0] {
	case 'P':
		return parseProxyV1(b)
	case '\r':
		return parseProxyV2(b)
	}
	return h, 0, fmt.Errorf("edgeserver: %w (first byte %#02x)", ErrNotProxy, b[0])
}

func parseProxyV1(b []byte) (h ProxyHeader, n int, err error) {
	const sig = "PROXY "
	if len(b) < len(sig) {
		if bytes.HasPrefix([]byte(sig), b) {
			return h, 0, ErrProxyIncomplete
		}
		return h, 0, fmt.Errorf("edgeserver: %w", ErrNotProxy)
	}
	if string(b[:len(sig)]) != sig {
		return h, 0, fmt.Errorf("edgeserver: %w", ErrNotProxy)
	}
	end := bytes.IndexByte(b[:min(len(b), proxyV1Max)], '\n')
	if end < 0 {
		if len(b) >= proxyV1Max {
			return h, 0, errors.New("edgeserver: PROXY v1 header longer than 107 bytes")
		}
		return h, 0, ErrProxyIncomplete
	}
	if end == 0 || b[end-1] != '\r' {
		return h, 0, errors.New("edgeserver: PROXY v1 header not ended by CRLF")
	}
	h.Version = 1
	n = end + 1
	f := bytes.Split(b[len(sig):end-1], []byte{' '})
	switch string(f[0]) {
	case "UNKNOWN":
		h.Local = true
		return h, n, nil
	case "TCP4", "TCP6":
	default:
		return h, 0, fmt.Errorf("edgeserver: PROXY v1 header: unknown protocol %q", f[0])
	}
	if len(f) != 5 {
		return h, 0, fmt.Errorf("edgeserver: PROXY v1 header: %d fields, want 5", len(f))
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	if err := errors.Join(err1, err2); err != nil {
		return h, 0, fmt.Errorf("edgeserver: PROXY v1 header: %w", err)
	}
	want4 := f[0][3] == '4'
	for _, a := range []netip.Addr{src, dst} {
		if a.Is4() != want4 || a.Zone() != "" {
			return h, 0, fmt.Errorf("edgeserver: PROXY v1 header: address %s does not match %s", a, f[0])
		}
	}
	sp, ok1 := parsePort(f[3])
	dp, ok2 := parsePort(f[4])
	if !ok1 || !ok2 {
		return h, 0, fmt.Errorf("edgeserver: PROXY v1 header: bad port in %q %q", f[3], f[4])
	}
	h.Source = netip.AddrPortFrom(src, sp)
	h.Destination = netip.AddrPortFrom(dst, dp)
	return h, n, nil
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(p), err == nil
}

func parseProxyV2(b []byte) (h ProxyHeader, n int, err error) {
	if len(b) < 16 {
		if bytes.HasPrefix(proxyV2Sig, b[:min(len(b), len(proxyV2Sig))]) {
			return h, 0, ErrProxyIncomplete
		}
		return h, 0, fmt.Errorf("edgeserver: %w", ErrNotProxy)
	}
	if !bytes.Equal(b[:12], proxyV2Sig) {
		return h, 0, fmt.Errorf("edgeserver: %w", ErrNotProxy)
	}
	if b[12]>>4 != 2 {
		return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: version %d", b[12]>>4)
	}
	cmd, fam, proto := b[12]&0xf, b[13]>>4, b[13]&0xf
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if length > proxyV2MaxLen {
		return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: %d bytes of addresses and TLVs, more than %d", length, proxyV2MaxLen)
	}
	if len(b) < 16+length {
		return h, 0, ErrProxyIncomplete
	}
	h.Version = 2
	n = 16 + length
	if cmd > 1 {
		return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: unknown command %d", cmd)
	}
	if fam > 3 || proto > 2 {
		return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: unknown family/protocol %#02x", b[13])
	}
	if cmd == 0 { // LOCAL
		h.Local = true
		return h, n, nil
	}
	a := b[16:n]
	switch {
	case fam == 1 && proto != 0: // AF_INET
		if len(a) < 12 {
			return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: IPv4 block of %d bytes", len(a))
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	case fam == 2 && proto != 0: // AF_INET6
		if len(a) < 36 {
			return h, 0, fmt.Errorf("edgeserver: PROXY v2 header: IPv6 block of %d bytes", len(a))
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])).Unmap(), binary.BigEndian.Uint16(a[34:36]))
	default: // UNSPEC or AF_UNIX: no IP address to use
		h.Local = true
	}
	return h, n, nil
}
