package wstunnel

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitFor is how long a test waits for something that should happen at
// once; it only bounds a failing test.
const waitFor = 10 * time.Second

// newTestRegistry returns a registry closed at cleanup, and checks that no
// pipe goroutine survives Close.
func newTestRegistry(t *testing.T, o RegistryOptions) *Registry {
	t.Helper()
	r := NewRegistry(o)
	t.Cleanup(func() {
		r.Close()
		if n := r.Len(); n != 0 {
			t.Errorf("after Close: %d tunnels registered", n)
		}
		checkNoPipes(t)
	})
	return r
}

// checkNoPipes fails if a tunnel goroutine is still running.
func checkNoPipes(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := runtime.Stack(buf, true)
		s := string(buf[:n])
		if !strings.Contains(s, "wstunnel.(*pipe).run") && !strings.Contains(s, "wstunnel.(*Registry).sweeper") &&
			!strings.Contains(s, "wstunnel.(*dormancy).run") {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("leaked tunnel goroutines:\n%s", s)
			return
		}
		<-tick.C
	}
}

// wsBackend is a gorilla WebSocket server on loopback: an echo server, or
// with push set, a server that hands each conn to the test.
type wsBackend struct {
	srv   *httptest.Server
	conns chan *websocket.Conn // push mode
	ends  chan error           // the read error that ended each conn
	pongs atomic.Int64         // Pongs received
}

func newBackend(t *testing.T, push bool) *wsBackend {
	t.Helper()
	b := &wsBackend{conns: make(chan *websocket.Conn, 16), ends: make(chan error, 1024)}
	up := websocket.Upgrader{ReadBufferSize: 512, WriteBufferSize: 512}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPongHandler(func(string) error { b.pongs.Add(1); return nil })
		if push {
			b.conns <- c
			for {
				if _, _, err := c.NextReader(); err != nil {
					b.ends <- err
					return
				}
			}
		}
		for {
			typ, rd, err := c.NextReader()
			if err != nil {
				b.ends <- err
				return
			}
			w, err := c.NextWriter(typ)
			if err != nil {
				b.ends <- err
				return
			}
			if _, err := io.Copy(w, rd); err != nil {
				b.ends <- err
				return
			}
			if err := w.Close(); err != nil {
				b.ends <- err
				return
			}
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *wsBackend) addr() string { return b.srv.Listener.Addr().String() }

func (b *wsBackend) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.ends:
		return err
	case <-time.After(waitFor):
		t.Fatal("backend conn did not end")
		return nil
	}
}

// front is the test's stand-in for the lead's proxy: it accepts a client,
// relays the upgrade request to the backend and the response to the client
// byte for byte, and starts a tunnel with whatever both readers buffered.
type front struct {
	ln      net.Listener
	reg     *Registry
	backend string
	opts    func() Options
	tunnels chan *Tunnel
	wg      sync.WaitGroup
}

func newFront(t *testing.T, reg *Registry, backend string, opts func() Options) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, reg: reg, backend: backend, opts: opts, tunnels: make(chan *Tunnel, 1024)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				if err := f.serve(c); err != nil {
					t.Errorf("front: %v", err)
					c.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

// readHead reads an HTTP head up to the empty line and returns its bytes.
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		head = append(head, line...)
		if len(line) <= 2 {
			return head, nil
		}
	}
}

func (f *front) serve(client net.Conn) error {
	cbr := bufio.NewReader(client)
	req, err := readHead(cbr)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	backend, err := net.Dial("tcp", f.backend)
	if err != nil {
		return err
	}
	if _, err := backend.Write(req); err != nil {
		return err
	}
	bbr := bufio.NewReader(backend)
	resp, err := readHead(bbr)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("backend answered %q", resp)
	}
	if _, err := client.Write(resp); err != nil {
		return err
	}
	cb, _ := cbr.Peek(cbr.Buffered())
	bb, _ := bbr.Peek(bbr.Buffered())
	f.tunnels <- f.reg.Start(client, bytes.Clone(cb), backend, bytes.Clone(bb), f.opts())
	return nil
}

// dial connects a gorilla client through the front and returns it with its
// tunnel.
func (f *front) dial(t *testing.T, d *websocket.Dialer) (*websocket.Conn, *Tunnel) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512}
	}
	c, _, err := d.Dial("ws://"+f.ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case tun := <-f.tunnels:
		return c, tun
	case <-time.After(waitFor):
		t.Fatal("no tunnel started")
		return nil, nil
	}
}

// rawBackend is a hand-written WebSocket server: it completes the handshake
// and hands the raw conn to the test.
func rawBackend(t *testing.T) (addr string, conns chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = make(chan net.Conn, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			head, err := readHead(br)
			if err != nil {
				c.Close()
				continue
			}
			var key string
			for _, l := range strings.Split(string(head), "\r\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
					key = strings.TrimSpace(v)
				}
			}
			h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(h[:]))
			conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), conns
}

// readFrame reads one frame from r and returns it with its payload unmasked.
func readFrame(r io.Reader) (op byte, masked bool, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, false, nil, err
	}
	op, masked = h[0]&0x0f, h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, false, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, false, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, false, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, false, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return op, masked, payload, nil
}

// tcpPairs returns n connected loopback TCP pairs, closed at cleanup.
func tcpPairs(t testing.TB, n int) (a, b []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c1, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		a, b = append(a, c1), append(b, c2)
	}
	t.Cleanup(func() {
		for i := range a {
			a[i].Close()
			b[i].Close()
		}
	})
	return a, b
}

func waitDone(t *testing.T, tun *Tunnel, within time.Duration) Result {
	t.Helper()
	select {
	case <-tun.Done():
	case <-time.After(within):
		t.Fatalf("tunnel did not end within %v", within)
	}
	res, ok := tun.Result()
	if !ok {
		t.Fatal("Result not ok after Done")
	}
	return res
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// pipePeer is one end of an in-memory tunnel (net.Pipe) as a peer sees it:
// a goroutine reads its frames (as a socket buffer would hold them even
// for a peer that does not look) and reports them on frames, optionally
// answering a Close with one of its own, so a graceful close can finish.
// Usable inside a synctest bubble, where every wait is on the fake clock.
type pipePeer struct {
	c      net.Conn
	frames chan peerFrame // closed when the conn fails
}

type peerFrame struct {
	op      byte
	payload []byte
	at      time.Time
}

// newPipePeer starts reading c; masked is how this peer must mask what it
// writes (a client masks, a backend does not).
func newPipePeer(c net.Conn, masked, answerClose bool) *pipePeer {
	p := &pipePeer{c: c, frames: make(chan peerFrame, 1024)}
	go func() {
		defer close(p.frames)
		for {
			op, _, payload, err := readFrame(c)
			if err != nil {
				return
			}
			p.frames <- peerFrame{op, payload, time.Now()}
			if op == opClose && answerClose {
				c.Write(frame(true, opClose, masked, payload[:min(2, len(payload))]))
			}
		}
	}()
	return p
}

// drain discards whatever arrives on c, so writes to the other end never
// block, until c fails.
func drain(c net.Conn) { go io.Copy(io.Discard, c) }

// pipeTunnel starts a tunnel over two in-memory conn pairs and returns the
// client's and the backend's ends, closed when the test ends.
func pipeTunnel(t *testing.T, reg *Registry, o Options) (client, backend net.Conn, tun *Tunnel) {
	t.Helper()
	cl, cp := net.Pipe()
	bp, bl := net.Pipe()
	t.Cleanup(func() { cl.Close(); bl.Close() })
	return cl, bl, reg.Start(cp, nil, bp, nil, o)
}

// awakePipes counts the pipes of reg that wait on a socket and are not
// dormant, and describes up to four of them.
func awakePipes(reg *Registry) (n int, which []string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for tun := range reg.tunnels {
		for i, p := range []*pipe{&tun.c2b, &tun.b2c} {
			if p.raw == nil || p.state.Load() == pipeDormant {
				continue
			}
			n++
			if len(which) < 4 {
				which = append(which, fmt.Sprintf("%s: state %d, asked %v", [2]string{"client to backend", "backend to client"}[i], p.state.Load(), p.sleep.Load()))
			}
		}
	}
	return n, which
}

// waitDormant waits until every pipe of reg that waits on a socket is
// dormant (no goroutine).
func waitDormant(t testing.TB, reg *Registry) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		awake, which := awakePipes(reg)
		if awake == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pipes did not go dormant, among them %q", awake, which)
		}
		<-tick.C
	}
}

// sweepUntil runs sweeps of reg, each a sweep interval after the last,
// until done reports true. (A tunnel is quiet once a sweep finds nothing
// moved since the one before; bytes a test has just seen may still be
// stamped by the pipe after a first sweep, and a pipe still dormant when
// a sweep looks, about to be woken by bytes just sent, is asked at the
// next one.)
func sweepUntil(t testing.TB, reg *Registry, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	at := time.Unix(0, reg.clock.Load())
	for n := 1; ; n++ {
		at = at.Add(reg.sweepEvery)
		reg.sweep(at)
		if done() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %d sweeps", what, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// sleepAll sweeps reg until every pipe is dormant.
func sleepAll(t testing.TB, reg *Registry) {
	t.Helper()
	sweepUntil(t, reg, "pipes dormant", func() bool {
		awake, _ := awakePipes(reg)
		return awake == 0
	})
}
