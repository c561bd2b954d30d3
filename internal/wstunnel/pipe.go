package wstunnel

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/sockio"
)

// bufSize is the size of the pooled read buffers lent to a pipe while data
// is moving. An idle pipe on a conn with a RawConn holds none.
const bufSize = 16 << 10

// fallbackBufSize is the per-direction buffer of a pipe whose source has no
// RawConn (a net.Pipe, a wrapper, a *tls.Conn whose socket is not known):
// such a pipe has to block in Read with a buffer in hand, so the buffer is
// kept small.
const fallbackBufSize = 2 << 10

// markerLen is the length of the payload of the tunnel's own Pings.
const markerLen = 8

// side names one peer of the tunnel.
type side uint8

const (
	sideClient side = iota
	sideBackend
)

// Injection requests, set in pipe.pending.
const (
	injClose uint32 = 1 << iota
	injPing
)

// mode says what a pipe does with the bytes of the current frame.
type mode uint8

const (
	modeForward mode = iota // copy to dst
	modeHold                // keep in pipe.hold until we know whether it is our Pong
	modeDiscard             // drop: we already sent dst a Close
)

// pipe copies one direction of a tunnel frame by frame. All fields except
// pending are owned by the pipe's goroutine; the close flags live in Tunnel
// under its mutex.
type pipe struct {
	t         *Tunnel
	src, dst  net.Conn
	rd        net.Conn // the conn read through raw and woken by deadlines: src or the socket under it
	srcSide   side
	toBackend bool // dst is the backend: injected frames are masked

	raw    syscall.RawConn    // src's RawConn (the socket under tls, if set), or nil
	readFn func(uintptr) bool // p.rawRead, bound once; with tls, p.waitTLS
	tls    *tls.Conn          // src read through crypto/tls; raw is its socket's
	drain  bool               // tls: the last read filled the buffer; more may be held
	one    [1]byte            // tls: the first byte of a chunk, read before a buffer is borrowed

	buf  *[bufSize]byte // borrowed while a chunk is being processed
	rn   int
	rerr error

	// handoff: this pipe's work runs through crypto/tls (it reads or
	// writes a TLS client), which grows the goroutine's stack to 4 KiB
	// and more, and a parked goroutine's stack never shrinks back to 2
	// KiB (the runtime halves a stack only while less than a quarter of
	// it is in use, counting 800 bytes of margin). grown says the
	// goroutine has done such work; when the tunnel has then been idle
	// for a sweep interval, the sweeper sets shrink and wakes the pipe,
	// which hands over to a fresh goroutine (small stack) and ends. A
	// busy tunnel never hands over; an idle one once per quiet spell.
	handoff bool
	grown   atomic.Bool
	shrink  atomic.Bool
	waited  bool // tls: the socket wait has parked once in this read

	w     net.Conn // dst, or its socket written with raw system calls (sockio)
	small []byte   // fallback read buffer when raw is nil
	first []byte   // bytes the caller had buffered from src

	fp      frameParser
	mode    mode
	discard bool // every further frame from src is dropped
	injDone bool // a requested Close has been handled
	hold    [maxHeader + markerLen]byte
	holdN   uint8

	pending atomic.Uint32 // injection requests (injClose, injPing)

	// Dormancy (see dormancy): state is pipeRunning while a goroutine
	// owns the pipe, pipeWoken when something woke it since it last
	// looked (a park then fails), pipeDormant while no goroutine does.
	// sleep is the sweeper's request to park; slot and armed are the
	// pipe's registration in the registry's epoll set (owned by whoever
	// runs the pipe).
	state atomic.Uint32
	sleep atomic.Bool
	slot  uint64
	armed bool

	bytes int64 // bytes read from src; read by the tunnel after the pipe ends
}

// init sets the pipe up. srcSocket and dstSocket, if not nil, are the
// sockets under src and dst, read and written in their place. srcTLS, if
// not nil, is the *tls.Conn under src, read in its place and waited for on
// the socket under it (srcSocket is then nil).
func (p *pipe) init(t *Tunnel, src, dst, srcSocket, dstSocket net.Conn, srcTLS *tls.Conn, srcSide side, first []byte) {
	p.t, p.src, p.dst, p.srcSide, p.first = t, src, dst, srcSide, first
	p.toBackend = srcSide == sideClient
	p.rd = src
	if srcSocket != nil {
		p.rd = srcSocket
	}
	if dstSocket == nil {
		dstSocket = dst
	}
	if srcTLS != nil && srcSocket == nil {
		if raw := rawConn(sockio.Socket(srcTLS.NetConn())); raw != nil {
			// Deadlines set on the TLS conn reach the socket, so wake
			// interrupts a wait on raw as well as a read through tls.
			p.tls, p.rd, p.raw = srcTLS, srcTLS, raw
			p.readFn = p.waitTLS
			p.handoff = true
			// crypto/tls may already hold bytes the socket cannot show
			// (a record the HTTP server read only in part): take them
			// before the first wait.
			p.drain = true
		}
	}
	if p.raw == nil {
		if raw := rawConn(p.rd); raw != nil {
			p.raw = raw
			p.readFn = p.rawRead
		}
	}
	p.w = dst
	if rawConn(dstSocket) != nil {
		p.w = sockio.Wrap(dstSocket)
	}
	if p.raw == nil {
		p.small = make([]byte, fallbackBufSize)
	}
}

// rawConn returns c's RawConn if c is a standard socket type and this
// platform does raw socket I/O, else nil. Only the standard types: a
// wrapper that embeds *net.TCPConn would pass a syscall.Conn check while
// buffering, encoding or counting in Read and Write.
func rawConn(c net.Conn) syscall.RawConn {
	if !hasRawIO {
		return nil
	}
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// request asks the pipe to inject a frame at the next frame boundary and
// wakes it if it is parked in a read.
func (p *pipe) request(what uint32) {
	p.pending.Or(what)
	p.wake()
}

// wake interrupts a parked read with a read deadline in the past; the pipe
// clears it before looking at pending, so no request is lost. A dormant
// pipe is taken up by a fresh goroutine, whose first read sees the
// deadline.
func (p *pipe) wake() {
	p.rd.SetReadDeadline(aLongTimeAgo)
	p.revive()
}

// Pipe states (pipe.state).
const (
	pipeRunning uint32 = iota
	pipeWoken
	pipeDormant
)

// revive gives a dormant pipe a goroutine, or marks a running one woken so
// that a park it is making fails and it goes on reading.
func (p *pipe) revive() {
	for {
		switch p.state.Load() {
		case pipeDormant:
			if p.state.CompareAndSwap(pipeDormant, pipeRunning) {
				p.t.r.wg.Add(1)
				go p.run()
				return
			}
		case pipeRunning:
			if p.state.CompareAndSwap(pipeRunning, pipeWoken) {
				return
			}
		default:
			return
		}
	}
}

// canSleep reports whether p may park without a goroutine: it waits on a
// socket of its own, holds no buffer, and no bytes are held for it where
// the socket cannot show them (the caller's, crypto/tls's).
func (p *pipe) canSleep() bool {
	return p.raw != nil && p.buf == nil && !p.drain && len(p.first) == 0
}

// wantSleep reports whether the sweeper should ask p to park: p has a
// goroutine, waits on a socket and has not been asked yet.
func (p *pipe) wantSleep() bool {
	return p.raw != nil && p.state.Load() != pipeDormant && !p.sleep.Load()
}

var aLongTimeAgo = time.Unix(1, 0)

// run is the pipe's goroutine, owned by the tunnel's Registry.
func (p *pipe) run() {
	defer p.t.r.wg.Done()
	p.grown.Store(false)
	failed, err := p.loop()
	if err == errDormant {
		return // revive starts the next goroutine
	}
	if err == errHandoff {
		// Go on in a fresh goroutine (small stack), owned like this one.
		p.t.r.wg.Add(1)
		go p.run()
		return
	}
	p.release()
	p.t.r.dorm.Load().forget(p)
	p.t.pipeEnded(failed, err)
}

// errDormant is returned by loop when the pipe has parked without a
// goroutine (see dormancy).
var errDormant = errors.New("wstunnel: dormant")

// errHandoff is returned by loop when the pipe goes on in a fresh
// goroutine (see pipe.handoff).
var errHandoff = errors.New("wstunnel: hand over to a fresh goroutine")

// markGrown records that this goroutine did crypto/tls work (see
// pipe.handoff).
func (p *pipe) markGrown() {
	if p.handoff && !p.grown.Load() {
		p.grown.Store(true)
	}
}

// loop copies until an error; it returns the side whose conn failed.
func (p *pipe) loop() (side, error) {
	dstSide := sideBackend
	if !p.toBackend {
		dstSide = sideClient
	}
	if len(p.first) > 0 {
		p.bytes += int64(len(p.first))
		p.t.touchSrc(p)
		err := p.process(p.first)
		p.first = nil
		if err != nil {
			return dstSide, err
		}
	}
	for {
		b, rerr := p.read()
		if len(b) > 0 {
			p.bytes += int64(len(b))
			p.t.touchSrc(p)
			p.markGrown()
			err := p.process(b)
			p.release()
			if err != nil {
				return dstSide, err
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, os.ErrDeadlineExceeded) {
				return p.srcSide, rerr
			}
			// Woken by request: clear the deadline, then look at pending.
			// Running again before the deadline is cleared: a wake from
			// here on makes a park below fail, and one before is in
			// pending, which process reads after the clear.
			p.state.Store(pipeRunning)
			p.rd.SetReadDeadline(time.Time{})
			if err := p.process(nil); err != nil {
				return dstSide, err
			}
			if p.sleep.Swap(false) && p.canSleep() && p.t.r.dormancy().park(p) {
				// Another goroutine may own p already: touch nothing.
				return sideClient, errDormant
			}
			if p.shrink.Swap(false) && p.handoff {
				return p.srcSide, errHandoff
			}
			p.markGrown() // an injected frame went through crypto/tls
		}
	}
}

// read returns the next chunk from src. With a RawConn the chunk lives in a
// pooled buffer that release returns.
func (p *pipe) read() ([]byte, error) {
	if p.tls != nil {
		return p.readTLS()
	}
	if p.raw == nil {
		n, err := p.src.Read(p.small)
		return p.small[:n], err
	}
	p.rn, p.rerr = 0, nil
	if err := p.raw.Read(p.readFn); err != nil {
		return nil, err
	}
	if p.rerr == nil && p.rn == 0 {
		p.rerr = io.EOF
	}
	return p.buf[:p.rn], p.rerr
}

// readTLS reads the next chunk from a TLS source. While the client is
// quiet it waits on the socket, holding no buffer and parked at the top of
// a small stack, not deep in crypto/tls. Once the socket is readable it
// reads one byte through crypto/tls, which returns once a whole record has
// arrived (a peer that trickles a record in makes it wait, still without
// a pooled buffer); then it borrows a pooled buffer and takes whatever
// crypto/tls already holds, the rest of that record and whole records that
// came with it, without waiting: a read deadline in the past makes a read
// that would have to wait for the socket fail at once (a timeout leaves a
// tls.Conn usable). Bytes crypto/tls holds are invisible on the socket, so
// when the buffer filled up the next call takes more the same way (drain)
// before it waits again.
//
// Clearing the deadline may erase the one wake set in between; the loop
// processes what read returns (or nothing, on a timeout) before reading
// again, and that looks at pending as a wake would have.
func (p *pipe) readTLS() ([]byte, error) {
	n := 0
	if !p.drain {
		p.waited = false
		if err := p.raw.Read(p.readFn); err != nil {
			return nil, err
		}
		m, err := p.tls.Read(p.one[:])
		if m == 0 {
			return nil, err
		}
		p.buf = p.t.r.bufs.Get().(*[bufSize]byte)
		p.buf[0] = p.one[0]
		n = 1
	} else {
		p.buf = p.t.r.bufs.Get().(*[bufSize]byte)
	}
	p.drain = false
	p.rd.SetReadDeadline(aLongTimeAgo)
	var err error
	for n < bufSize {
		var m int
		m, err = p.tls.Read(p.buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	p.rd.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		p.drain = true // full: crypto/tls may hold more
	case errors.Is(err, os.ErrDeadlineExceeded):
		if n > 0 {
			err = nil // nothing more held
		}
	}
	if n == 0 {
		p.release()
		return nil, err
	}
	return p.buf[:n], err
}

func (p *pipe) release() {
	if p.buf != nil {
		p.t.r.bufs.Put(p.buf)
		p.buf = nil
	}
}

func (p *pipe) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := p.w.Write(b)
	return err
}

// frameMode decides what to do with a frame that starts with byte b0.
func (p *pipe) frameMode(b0 byte) mode {
	switch {
	case p.discard:
		return modeDiscard
	case p.toBackend && p.t.o.PingInterval > 0 && b0&0x0f == opPong:
		return modeHold
	}
	return modeForward
}

// process passes one chunk from src through the frame tracker: forwarded
// bytes are written to dst in as few writes as possible, pending injections
// are written at frame boundaries.
func (p *pipe) process(b []byte) error {
	fs, fe := 0, 0 // forwarded bytes b[fs:fe] not yet written
	forwarded := false
	i := 0
	for {
		if p.fp.atBoundary() {
			if p.pending.Load() != 0 {
				if err := p.write(b[fs:fe]); err != nil {
					return err
				}
				fs, fe = i, i
				if err := p.inject(); err != nil {
					return err
				}
			}
			if i == len(b) {
				break
			}
			p.mode = p.frameMode(b[i])
			if p.mode == modeHold {
				if err := p.write(b[fs:fe]); err != nil {
					return err
				}
				fs, fe = i, i
			}
		} else if i == len(b) {
			break
		}
		n, ev := p.fp.scan(b[i:])
		switch p.mode {
		case modeForward:
			if fe != i {
				if err := p.write(b[fs:fe]); err != nil {
					return err
				}
				fs = i
			}
			fe = i + n
			forwarded = true
		case modeHold:
			p.holdN += uint8(copy(p.hold[p.holdN:], b[i:i+n]))
		}
		i += n
		if ev&evHeader != 0 && p.mode == modeHold &&
			!(p.fp.op == opPong && p.fp.plen == markerLen && p.fp.masked) {
			// Not one of ours: let it through.
			if err := p.write(p.hold[:p.holdN]); err != nil {
				return err
			}
			p.holdN = 0
			p.mode = modeForward
			forwarded = true
		}
		if ev&evEnd == 0 {
			continue
		}
		switch p.mode {
		case modeHold:
			if !p.ourPong() {
				if err := p.write(p.hold[:p.holdN]); err != nil {
					return err
				}
				forwarded = true
			}
			p.holdN = 0
		case modeForward:
			if p.fp.op == opClose {
				// The peer's own Close. Record who closed first before the
				// other peer can see it and answer, and mark it sent only
				// once it is written.
				p.t.peerClosing(p, p.fp.closeCode())
				if err := p.write(b[fs:fe]); err != nil {
					return err
				}
				fs = fe
				p.t.forwardedClose(p)
			}
		case modeDiscard:
			if p.fp.op == opClose {
				p.t.srcClosed(p)
			}
		}
	}
	if err := p.write(b[fs:fe]); err != nil {
		return err
	}
	if forwarded {
		p.t.last.Store(p.t.r.clock.Load())
	}
	return nil
}

// ourPong reports whether the held frame is a Pong answering our Ping.
func (p *pipe) ourPong() bool {
	h := p.fp.headerLen()
	if int(p.holdN) != h+markerLen {
		return false
	}
	for i := range markerLen {
		if p.hold[h+i]^p.fp.key[i&3] != p.t.marker[i] {
			return false
		}
	}
	return true
}

// inject writes the requested control frames; the pipe is at a frame
// boundary.
func (p *pipe) inject() error {
	pend := p.pending.Swap(0)
	if pend&injClose != 0 && !p.injDone {
		p.injDone = true
		p.discard = true
		if p.t.needCloseTo(p) {
			code, reason := p.t.closeFrame()
			if err := p.writeControl(opClose, closePayload(code, reason)); err != nil {
				return err
			}
		}
		p.t.injectedClose(p)
		return nil
	}
	if pend&injPing != 0 && !p.toBackend && !p.discard {
		return p.writeControl(opPing, p.t.marker[:])
	}
	return nil
}

func (p *pipe) writeControl(op byte, payload []byte) error {
	var key [4]byte
	if p.toBackend {
		rand.Read(key[:])
	}
	var a [maxHeader + maxControlPayload]byte
	return p.write(appendFrame(a[:0], op, payload, p.toBackend, key))
}
