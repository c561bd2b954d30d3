package wstunnel

import (
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2) that the tunnel looks at.
const (
	opContinuation = 0x0
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxHeader is the longest RFC 6455 frame header: 2 bytes, a 64-bit
// extended length and a 4-byte mask key.
const maxHeader = 14

// maxControlPayload is the largest payload a control frame may carry.
const maxControlPayload = 125

// Events reported by frameParser.scan.
const (
	evHeader uint8 = 1 << iota // the frame header was completed by the consumed bytes
	evEnd                      // the frame ended with the consumed bytes
)

// frameParser tracks RFC 6455 frame boundaries in a byte stream without
// buffering payloads. It reads headers only: payload bytes are skipped by
// arithmetic, except the first two bytes of a Close frame (the status code),
// which it records unmasked.
//
// The zero value is a parser positioned at a frame boundary.
type frameParser struct {
	hdr   [maxHeader]byte
	hn    uint8 // header bytes collected in hdr
	need  uint8 // header length, known once hn >= 2
	inPay bool  // the header is complete and payload bytes remain

	// The current (or, after evEnd, the last) frame.
	fin    bool
	op     byte
	masked bool
	key    [4]byte
	plen   uint64 // payload length
	pos    uint64 // payload bytes seen so far
	cc     [2]byte
	ccN    uint8 // close-code bytes captured in cc
}

// atBoundary reports whether the stream is between two frames.
func (f *frameParser) atBoundary() bool { return f.hn == 0 && !f.inPay }

// headerLen returns the length of the current frame's header.
func (f *frameParser) headerLen() int { return int(f.need) }

// headerSize returns the header length implied by the second header byte.
func headerSize(b1 byte) uint8 {
	n := uint8(2)
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// scan consumes a prefix of p: header bytes up to the end of the header, or
// payload bytes up to the end of the frame. It returns how many bytes it
// consumed and which events the consumed bytes completed. A frame with an
// empty payload reports evHeader|evEnd at once.
func (f *frameParser) scan(p []byte) (n int, ev uint8) {
	if !f.inPay {
		for n < len(p) {
			f.hdr[f.hn] = p[n]
			f.hn++
			n++
			if f.hn == 2 {
				f.need = headerSize(f.hdr[1])
			}
			if f.hn >= 2 && f.hn == f.need {
				f.parseHeader()
				if f.plen == 0 {
					f.hn = 0
					return n, evHeader | evEnd
				}
				f.inPay = true
				return n, evHeader
			}
		}
		return n, 0
	}
	take := uint64(len(p))
	if rem := f.plen - f.pos; take >= rem {
		take = rem
		ev = evEnd
	}
	if f.op == opClose && f.pos < 2 {
		for i := uint64(0); i < take && f.pos+i < 2; i++ {
			b := p[i]
			if f.masked {
				b ^= f.key[(f.pos+i)&3]
			}
			f.cc[f.pos+i] = b
			f.ccN++
		}
	}
	f.pos += take
	if ev == evEnd {
		f.hn = 0
		f.inPay = false
	}
	return int(take), ev
}

// parseHeader decodes the collected header bytes.
func (f *frameParser) parseHeader() {
	h := f.hdr[:f.need]
	f.fin = h[0]&0x80 != 0
	f.op = h[0] & 0x0f
	f.masked = h[1]&0x80 != 0
	i := 2
	switch l := h[1] & 0x7f; l {
	case 126:
		f.plen = uint64(h[2])<<8 | uint64(h[3])
		i = 4
	case 127:
		f.plen = 0
		for _, b := range h[2:10] {
			f.plen = f.plen<<8 | uint64(b)
		}
		i = 10
	default:
		f.plen = uint64(l)
	}
	if f.masked {
		copy(f.key[:], h[i:i+4])
	} else {
		f.key = [4]byte{}
	}
	f.pos = 0
	f.ccN = 0
}

// closeCode returns the status code of the last Close frame, or
// CloseNoStatus when the frame carried none.
func (f *frameParser) closeCode() uint16 {
	if f.ccN < 2 {
		return CloseNoStatus
	}
	return uint16(f.cc[0])<<8 | uint16(f.cc[1])
}

// appendFrame appends one unfragmented frame with the given opcode and
// payload. When masked is true the payload is masked with key, as RFC 6455
// requires of every client-to-server frame. The payload must be at most
// maxControlPayload bytes (only control frames are built here).
func appendFrame(dst []byte, op byte, payload []byte, masked bool, key [4]byte) []byte {
	b1 := byte(len(payload))
	if masked {
		b1 |= 0x80
	}
	dst = append(dst, 0x80|op, b1)
	if !masked {
		return append(dst, payload...)
	}
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i&3])
	}
	return dst
}

// closePayload returns the payload of a Close frame: the code and the
// reason, cut to fit a control frame on a UTF-8 boundary. Code 0 yields an
// empty payload (a Close without status).
func closePayload(code uint16, reason string) []byte {
	if code == 0 {
		return nil
	}
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 0, 2+len(reason))
	p = append(p, byte(code>>8), byte(code))
	return append(p, reason...)
}
