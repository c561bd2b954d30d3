package upstream

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

// TestReuseCheckAllocs: a round trip on a pooled TCP connection — the
// check that the idle connection is still open and empty (one MSG_PEEK
// receive) included — allocates only the response head's value string
// and slice. The backend is a raw loop that allocates nothing per
// request, so the process's count is the client's.
func TestReuseCheckAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var buf [4096]byte
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			// One request at a time: answer each complete head.
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				n = copy(buf[:], buf[i+4:n])
			}
		}
	}()
	c := testClient(4)
	defer c.Close()
	req := Request{Addr: ln.Addr().String(), Method: "GET", Target: "/", Host: "a",
		Header: HeaderFields{"Accept": {"*/*"}}, HeaderTimeout: time.Minute}
	var buf [64]byte
	roundTrip := func() {
		r, err := c.Do(context.Background(), &req)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		r.Body.Close()
	}
	roundTrip() // dial; the connection is pooled from now on
	if got := testing.AllocsPerRun(200, roundTrip); got > 2 {
		t.Errorf("round trip on a pooled TCP connection: %.1f allocs/op, want at most 2 (the response head's value)", got)
	} else {
		t.Logf("round trip on a pooled TCP connection: %.1f allocs/op", got)
	}
}
