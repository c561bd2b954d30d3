package wstunnel

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dormancy lets a pipe wait for its source without a goroutine: the pipe
// registers its socket for one readiness event in an epoll set of the
// registry's own and its goroutine returns; when the socket becomes
// readable, or anything else needs the pipe (wake, closeConns), a fresh
// goroutine takes it up again (pipe.revive). One goroutine per registry
// (run) waits for the epoll set, itself through Go's poller: the set's
// descriptor is readable while it holds events.
//
// The sockets stay in Go's poller as well; this set only tells which
// dormant pipe has something to read. Registrations are one-shot and keyed
// by a slot number, not a pointer, so an event that comes late finds the
// pipe by number or not at all. A socket leaves the set when its conn is
// closed (the kernel drops a closed file's registrations), which happens
// to every conn of a tunnel when it ends.
type dormancy struct {
	f    *os.File        // the epoll instance, non-blocking, in Go's poller
	raw  syscall.RawConn // f's
	dead atomic.Bool     // run has returned: nothing parks any more

	mu    sync.Mutex       // guards the fields below
	next  uint64           // last slot handed out
	pipes map[uint64]*pipe // slot -> pipe, from its first park until it ends
}

// newDormancy returns a dormancy, or nil when the epoll set cannot be made
// (pipes then keep a goroutine each, parked in Go's poller).
func newDormancy() *dormancy {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor given to os.NewFile joins Go's poller, so
	// run can wait for it through SyscallConn without holding a thread.
	f := os.NewFile(uintptr(fd), "wstunnel-epoll")
	raw, err := f.SyscallConn()
	if err == nil {
		// Fails (os.ErrNoDeadline) when the file is not in Go's poller:
		// run could not wait for it.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		f.Close()
		return nil
	}
	return &dormancy{f: f, raw: raw, pipes: make(map[uint64]*pipe)}
}

// run dispatches readiness events to dormant pipes until close; it is
// owned by the registry.
func (d *dormancy) run() {
	var evs [64]unix.EpollEvent
	// The callback drains the set and reports false, so RawConn.Read
	// parks until the set's descriptor is readable again; it returns only
	// when the file is closed.
	d.raw.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), evs[:], 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return false
			}
			for i := range evs[:n] {
				d.dispatch(uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32)
			}
		}
	})
	// Closed (or, unexpectedly, failed): no event will come any more, so
	// every dormant pipe gets its goroutine back; park refuses from now
	// on, and a pipe that parked just before sees dead and revives itself.
	d.dead.Store(true)
	d.mu.Lock()
	ps := make([]*pipe, 0, len(d.pipes))
	for _, p := range d.pipes {
		ps = append(ps, p)
	}
	d.mu.Unlock()
	for _, p := range ps {
		p.revive()
	}
}

func (d *dormancy) dispatch(slot uint64) {
	d.mu.Lock()
	p := d.pipes[slot]
	d.mu.Unlock()
	if p != nil {
		p.revive()
	}
}

// park makes p dormant: it arms p's socket for one readiness event and
// moves p from running to dormant. It reports false, with p still running,
// when the socket or the set cannot take the registration (a conn closed
// meanwhile, a registry closing) or when something woke p meanwhile; the
// caller then goes on reading. Only p's goroutine (or Start, before there
// is one) calls park.
func (d *dormancy) park(p *pipe) bool {
	if d == nil || p.raw == nil || d.dead.Load() {
		return false
	}
	if p.slot == 0 {
		d.mu.Lock()
		d.next++
		p.slot = d.next
		d.pipes[p.slot] = p
		d.mu.Unlock()
	}
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(p.slot)),
		Pad:    int32(uint32(p.slot >> 32)),
	}
	var cerr error
	// Both descriptors are held (Control) while the registration is made,
	// so neither number can have been closed and reused under it.
	err := p.raw.Control(func(sock uintptr) {
		err := d.raw.Control(func(ep uintptr) {
			op := unix.EPOLL_CTL_MOD
			if !p.armed {
				op = unix.EPOLL_CTL_ADD
			}
			cerr = unix.EpollCtl(int(ep), op, int(sock), &ev)
		})
		if cerr == nil {
			cerr = err
		}
	})
	if err != nil || cerr != nil {
		return false
	}
	p.armed = true
	p.grown.Store(false) // this goroutine's stack goes with it (see pipe.handoff)
	if h := p.t.r.testHookArmed; h != nil {
		h(p)
	}
	if !p.state.CompareAndSwap(pipeRunning, pipeDormant) {
		// Woken between the last look and the registration.
		p.state.Store(pipeRunning)
		return false
	}
	if d.dead.Load() {
		p.revive() // run may have looked at the pipes before this one parked
	}
	return true
}

// usable reports whether pipes can park: d exists and run is waiting.
func (d *dormancy) usable() bool { return d != nil && !d.dead.Load() }

// forget drops p's slot when p has ended.
func (d *dormancy) forget(p *pipe) {
	if d == nil || p.slot == 0 {
		return
	}
	d.mu.Lock()
	delete(d.pipes, p.slot)
	d.mu.Unlock()
}

// close closes the epoll set; run returns. Pipes that try to park after it
// stay running.
func (d *dormancy) close() {
	if d != nil {
		d.f.Close()
	}
}
