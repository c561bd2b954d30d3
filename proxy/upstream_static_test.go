package proxy

import (
	"context"
	"io"
	"net"
	"time"
)

// staticBackend is a net.Conn that answers every request written to it
// with one canned response, with no network: benchmarks run the real
// upstream client (request head, response parse, pool) without the
// kernel.
type staticBackend struct {
	resp    string
	pending bool
	off     int
}

func (c *staticBackend) Read(p []byte) (int, error) {
	if !c.pending {
		return 0, io.EOF
	}
	n := copy(p, c.resp[c.off:])
	c.off += n
	if c.off == len(c.resp) {
		c.pending, c.off = false, 0
	}
	return n, nil
}

func (c *staticBackend) Write(p []byte) (int, error) {
	c.pending = true
	return len(p), nil
}

func (c *staticBackend) Close() error                     { return nil }
func (c *staticBackend) LocalAddr() net.Addr              { return staticAddr{} }
func (c *staticBackend) RemoteAddr() net.Addr             { return staticAddr{} }
func (c *staticBackend) SetDeadline(time.Time) error      { return nil }
func (c *staticBackend) SetReadDeadline(time.Time) error  { return nil }
func (c *staticBackend) SetWriteDeadline(time.Time) error { return nil }

type staticAddr struct{}

func (staticAddr) Network() string { return "tcp" }
func (staticAddr) String() string  { return "192.0.2.1:80" }

const staticOK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

// useStaticUpstream makes every upstream of rt answer with resp from an
// in-memory connection.
func useStaticUpstream(rt *Runtime, resp string) {
	for _, u := range rt.upstreams {
		useStaticClient(u.client, resp)
	}
}

// useStaticClient makes c dial in-memory connections answering resp.
func useStaticClient(c *upstreamClient, resp string) {
	c.dial = func(context.Context, string) (net.Conn, error) {
		return &staticBackend{resp: resp}, nil
	}
}
