package wstunnel

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// encodeHeader builds an RFC 6455 frame header, the reference for the parser.
func encodeHeader(fin bool, op byte, masked bool, key [4]byte, n uint64) []byte {
	b0 := op & 0x0f
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, m|byte(n))
	case n <= 0xffff:
		h = append(h, m|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, m|127)
		h = binary.BigEndian.AppendUint64(h, n)
	}
	if masked {
		h = append(h, key[:]...)
	}
	return h
}

// frame builds a whole frame, masking the payload if masked.
func frame(fin bool, op byte, masked bool, payload []byte) []byte {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	b := encodeHeader(fin, op, masked, key, uint64(len(payload)))
	for i, c := range payload {
		if masked {
			c ^= key[i&3]
		}
		b = append(b, c)
	}
	return b
}

type seenFrame struct {
	fin    bool
	op     byte
	masked bool
	plen   uint64
	code   uint16
}

// scanAll feeds b to a parser in chunks of size step and returns the frames
// it reported, checking that every byte is consumed exactly once.
func scanAll(t *testing.T, b []byte, step int) ([]seenFrame, *frameParser) {
	t.Helper()
	var f frameParser
	var got []seenFrame
	for off := 0; off < len(b); {
		end := min(off+step, len(b))
		chunk := b[off:end]
		for len(chunk) > 0 {
			n, ev := f.scan(chunk)
			if n <= 0 || n > len(chunk) {
				t.Fatalf("scan consumed %d of %d bytes", n, len(chunk))
			}
			chunk = chunk[n:]
			if ev&evEnd != 0 {
				s := seenFrame{f.fin, f.op, f.masked, f.plen, 0}
				if f.op == opClose {
					s.code = f.closeCode()
				}
				got = append(got, s)
				if !f.atBoundary() {
					t.Fatalf("not at boundary after evEnd")
				}
			}
		}
		off = end
	}
	return got, &f
}

func TestFrameParser(t *testing.T) {
	var stream []byte
	want := []seenFrame{}
	add := func(fin bool, op byte, masked bool, payload []byte) {
		stream = append(stream, frame(fin, op, masked, payload)...)
		s := seenFrame{fin, op, masked, uint64(len(payload)), 0}
		if op == opClose {
			s.code = CloseNoStatus
			if len(payload) >= 2 {
				s.code = binary.BigEndian.Uint16(payload)
			}
		}
		want = append(want, s)
	}
	add(true, 1, false, []byte("hello"))
	add(true, 1, true, []byte("hello"))
	add(false, 2, true, bytes.Repeat([]byte{7}, 125))
	add(false, 0, true, bytes.Repeat([]byte{8}, 126))
	add(true, opPing, false, nil)
	add(true, 0, false, bytes.Repeat([]byte{9}, 65535))
	add(true, 2, true, bytes.Repeat([]byte{9}, 65536))
	add(true, opClose, true, []byte{0x03, 0xf4, 'x'})
	add(true, opClose, false, []byte{0x03, 0xf9})
	add(true, opClose, true, nil)
	add(true, opPong, true, []byte("12345678"))

	for _, step := range []int{1, 2, 3, 5, 13, 14, 100, 4096, len(stream)} {
		got, f := scanAll(t, stream, step)
		if len(got) != len(want) {
			t.Fatalf("step %d: got %d frames, want %d", step, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d frame %d: got %+v, want %+v", step, i, got[i], want[i])
			}
		}
		if !f.atBoundary() {
			t.Errorf("step %d: not at boundary at end", step)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	payload := closePayload(CloseServiceRestart, "service restart")
	for _, masked := range []bool{false, true} {
		b := appendFrame(nil, opClose, payload, masked, key)
		got, _ := scanAll(t, b, 1)
		if len(got) != 1 || got[0].op != opClose || got[0].masked != masked || got[0].code != CloseServiceRestart || !got[0].fin {
			t.Errorf("masked=%v: got %+v", masked, got)
		}
		if masked && bytes.Contains(b, []byte("restart")) {
			t.Errorf("masked frame carries the reason in clear")
		}
	}
	long := closePayload(CloseGoingAway, string(bytes.Repeat([]byte("é"), 100)))
	if len(long) > maxControlPayload || len(long) != 2+122 {
		t.Errorf("long close payload is %d bytes, want %d", len(long), 2+122)
	}
	if p := closePayload(0, "x"); len(p) != 0 {
		t.Errorf("code 0: payload %q, want empty", p)
	}
}

// FuzzFrameHeader feeds arbitrary bytes to the parser in arbitrary chunks and
// checks that it consumes every byte once, that each header it decodes
// re-encodes to the bytes it read (for minimal encodings), and that chunking
// does not change what it sees.
func FuzzFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'}, uint8(1))
	f.Add(encodeHeader(true, 2, false, [4]byte{}, 1<<20), uint8(3))
	f.Add(encodeHeader(false, 0, true, [4]byte{9, 9, 9, 9}, 70000), uint8(7))
	f.Add(frame(true, opClose, true, []byte{3, 0xe8}), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		st := int(step%32) + 1
		var whole, chunked frameParser
		var evWhole, evChunked []uint8
		for p := b; len(p) > 0; {
			n, ev := whole.scan(p)
			if n <= 0 || n > len(p) {
				t.Fatalf("scan consumed %d of %d", n, len(p))
			}
			if ev&evHeader != 0 {
				h := whole.hdr[:whole.need]
				re := encodeHeader(whole.fin, whole.op, whole.masked, whole.key, whole.plen)
				if int(whole.need) != len(h) || (len(re) == len(h) && !bytes.Equal(re[2:], h[2:])) {
					t.Fatalf("header %x re-encodes to %x", h, re)
				}
				if h[0]&0x0f != whole.op || (h[0]&0x80 != 0) != whole.fin || (h[1]&0x80 != 0) != whole.masked {
					t.Fatalf("header %x decoded as fin=%v op=%d masked=%v", h, whole.fin, whole.op, whole.masked)
				}
			}
			if ev != 0 {
				evWhole = append(evWhole, ev)
			}
			p = p[n:]
		}
		for off := 0; off < len(b); off += st {
			c := b[off:min(off+st, len(b))]
			for len(c) > 0 {
				n, ev := chunked.scan(c)
				if n <= 0 || n > len(c) {
					t.Fatalf("chunked scan consumed %d of %d", n, len(c))
				}
				if ev != 0 {
					evChunked = append(evChunked, ev)
				}
				c = c[n:]
			}
		}
		if !bytes.Equal(evWhole, evChunked) {
			t.Fatalf("events differ by chunking: %v vs %v", evWhole, evChunked)
		}
		if whole.atBoundary() != chunked.atBoundary() || whole.pos != chunked.pos || whole.hn != chunked.hn {
			t.Fatalf("final state differs by chunking")
		}
	})
}
