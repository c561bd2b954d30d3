package h1guard

import (
	"io"
	"strings"
	"testing"
)

// loopConn returns data over and over, as if a client sent the same
// request forever.
type loopConn struct {
	scriptConn
	data []byte
	off  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off += n
	if c.off == len(c.data) {
		c.off = 0
	}
	return n, nil
}

// smallGET is a typical 300-byte browser GET head.
var smallGET = func() string {
	h := "GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n" +
		"Host: app.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: application/json\r\n" +
		"Accept-Language: en-GB,en;q=0.5\r\n" +
		"Cookie: sessionid=abc123\r\n"
	pad := 300 - len(h) - len("X-Pad: \r\n\r\n")
	return h + "X-Pad: " + strings.Repeat("p", pad) + "\r\n\r\n"
}()

// TestFastPathAllocs checks that a head arriving whole in one read, and a
// Content-Length body, cost no allocation.
func TestFastPathAllocs(t *testing.T) {
	if len(smallGET) != 300 {
		t.Fatalf("smallGET is %d bytes", len(smallGET))
	}
	for name, data := range map[string]string{
		"small GET":           smallGET,
		"content-length body": "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 10000\r\n\r\n" + strings.Repeat("b", 10000),
	} {
		c := Wrap(&loopConn{data: []byte(data)}, Options{})
		buf := make([]byte, 4096)
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Read, want 0", name, allocs)
		}
		if _, ok := c.Rejected(); ok {
			t.Errorf("%s: rejected", name)
		}
	}
}

// BenchmarkGuardSmallGET measures one 300-byte GET head through Read with
// net/http's 4 KiB buffer: the fast path, validated in place.
func BenchmarkGuardSmallGET(b *testing.B) {
	c := Wrap(&loopConn{data: []byte(smallGET)}, Options{})
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(smallGET)))
	for b.Loop() {
		if n, err := c.Read(buf); n != len(smallGET) || err != nil {
			b.Fatalf("read %d, %v", n, err)
		}
	}
}

// BenchmarkGuardSmallGETSplit measures the same head arriving in two reads,
// which goes through the pooled buffer.
func BenchmarkGuardSmallGETSplit(b *testing.B) {
	c := Wrap(&cycleConn{parts: [][]byte{[]byte(smallGET[:150]), []byte(smallGET[150:])}}, Options{})
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(smallGET)))
	for b.Loop() {
		if n, err := c.Read(buf); n != len(smallGET) || err != nil {
			b.Fatalf("read %d, %v", n, err)
		}
	}
}

// cycleConn returns its parts one per Read, over and over.
type cycleConn struct {
	scriptConn
	parts [][]byte
	i     int
}

func (c *cycleConn) Read(p []byte) (int, error) {
	n := copy(p, c.parts[c.i%len(c.parts)])
	c.i++
	return n, nil
}

// BenchmarkGuardBody measures body throughput: an endless series of
// requests with 1 MiB bodies read with 32 KiB reads, against the same reads
// without the guard.
func BenchmarkGuardBody(b *testing.B) {
	body := strings.Repeat("x", 1<<20)
	cases := map[string]string{
		"content-length": "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" + body,
		"chunked":        "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("4000\r\n"+body[:0x4000]+"\r\n", 64) + "0\r\n\r\n",
	}
	for name, data := range cases {
		for _, guarded := range []bool{true, false} {
			label := name + "/raw"
			if guarded {
				label = name + "/guard"
			}
			b.Run(label, func(b *testing.B) {
				var r io.Reader = &loopConn{data: []byte(data)}
				if guarded {
					r = Wrap(r.(*loopConn), Options{})
				}
				buf := make([]byte, 32<<10)
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					for n := 0; n < len(data); {
						k, err := r.Read(buf[:min(len(buf), len(data)-n)])
						if err != nil {
							b.Fatal(err)
						}
						n += k
					}
				}
			})
		}
	}
}
