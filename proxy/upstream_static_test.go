package proxy

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// staticBackend is a net.Conn that answers every request written to it
// with one canned response, with no network: benchmarks run the real
// upstream client (request head, response parse, pool) without the
// kernel. A read waits until a request has been written (as http.Transport
// reads on its own goroutine while the connection is idle).
type staticBackend struct {
	resp string

	mu      sync.Mutex
	cond    *sync.Cond
	pending bool
	closed  bool
	off     int
}

func newStaticBackend(resp string) *staticBackend {
	c := &staticBackend{resp: resp}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *staticBackend) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.pending && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
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
	c.mu.Lock()
	c.pending = true
	c.mu.Unlock()
	c.cond.Signal()
	return len(p), nil
}

func (c *staticBackend) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Broadcast()
	return nil
}

func (c *staticBackend) LocalAddr() net.Addr              { return staticAddr{} }
func (c *staticBackend) RemoteAddr() net.Addr             { return staticAddr{} }
func (c *staticBackend) SetDeadline(time.Time) error      { return nil }
func (c *staticBackend) SetReadDeadline(time.Time) error  { return nil }
func (c *staticBackend) SetWriteDeadline(time.Time) error { return nil }

type staticAddr struct{}

func (staticAddr) Network() string { return "tcp" }
func (staticAddr) String() string  { return "192.0.2.1:80" }

const staticOK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

// staticOptions are upstream client options whose connections are
// staticBackends answering resp.
func staticOptions(resp string) uhttp.Options {
	return uhttp.Options{MaxIdle: 4, IdleTimeout: time.Minute,
		Dial: func(context.Context, string) (net.Conn, error) { return newStaticBackend(resp), nil }}
}

// useStaticUpstream makes every upstream of rt answer with resp from
// in-memory connections, with a client of the upstream's configured kind.
func useStaticUpstream(rt *Runtime, resp string) {
	for _, u := range rt.upstreams {
		u.client.Close()
		u.client = newUpstreamClient(u.cfg.Client, staticOptions(resp))
	}
}
