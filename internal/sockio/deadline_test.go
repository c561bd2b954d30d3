//go:build unix

package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// isTimeout reports whether err is the socket's deadline error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// readWithin reads from s on another goroutine and returns what the read
// returned, or fails the test if it has not returned within limit.
func readWithin(t *testing.T, s net.Conn, limit time.Duration) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := s.Read(make([]byte, 8))
		res <- result{n, err}
	}()
	select {
	case r := <-res:
		return r.n, r.err
	case <-time.After(limit):
		s.Close()
		<-res
		t.Fatalf("the read did not return within %v: a deadline set on the Conn did not reach the socket", limit)
		return 0, nil
	}
}

// TestDeadlineSetWhileReading: a deadline set while a Read waits reaches
// the socket at once (the Read is not left waiting for the next one).
func TestDeadlineSetWhileReading(t *testing.T) {
	s, _ := pair(t)
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	}()
	if _, err := readWithin(t, s, 5*time.Second); !isTimeout(err) {
		t.Fatalf("Read = %v, want a timeout", err)
	}
}

// TestDeadlineSetBeforeWriting: the write deadline set before a Write
// bounds the Write that has to wait (the peer reads nothing).
func TestDeadlineSetBeforeWriting(t *testing.T) {
	s, _ := pair(t)
	s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	res := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 64<<20)) // more than the socket buffers hold
		res <- err
	}()
	select {
	case err := <-res:
		if !isTimeout(err) {
			t.Fatalf("Write = %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write deadline did not reach the socket")
	}
}

// TestDeadlineClearedAfterExpiry: a deadline that expired on the socket
// and was then cleared does not fail the next Read, nor the next call
// through SyscallConn (the upstream client's check before reusing a
// connection): the cleared deadline reaches the socket first.
func TestDeadlineClearedAfterExpiry(t *testing.T) {
	s, peer := pair(t)
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := s.Read(make([]byte, 8)); !isTimeout(err) {
		t.Fatalf("Read = %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	sc, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Read(func(uintptr) bool { return true }); err != nil {
		t.Fatalf("RawConn.Read after the deadline was cleared = %v", err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	time.Sleep(30 * time.Millisecond) // expires unseen by the socket
	s.SetReadDeadline(time.Time{})
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := readWithin(t, s, 5*time.Second); n != 1 || err != nil {
		t.Fatalf("Read after the deadline was cleared = %d, %v", n, err)
	}
}

// TestDeadlineNowIdiom: a deadline before 2001 (net/http's and
// crypto/tls's way of saying "now") fails the next Read at once, even
// with data waiting, as the socket would; clearing it lets the data
// through.
func TestDeadlineNowIdiom(t *testing.T) {
	s, peer := pair(t)
	if _, err := peer.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	s.SetReadDeadline(time.Unix(1, 0))
	for range 2 {
		if n, err := s.Read(make([]byte, 8)); n != 0 || !isTimeout(err) {
			t.Fatalf("Read with the deadline in 1970 = %d, %v; want a timeout", n, err)
		}
	}
	sc, _ := s.SyscallConn()
	if err := sc.Read(func(uintptr) bool { return true }); !isTimeout(err) {
		t.Fatalf("RawConn.Read with the deadline in 1970 = %v; want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	buf := make([]byte, 8)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "data" {
		t.Fatalf("Read after clearing = %q, %v", buf[:n], err)
	}
}

// TestDeadlineHandOver: once the wrapped conn is handed out (Unwrap, as
// sockio.Socket does for a WebSocket tunnel, or NetConn), deadlines set on
// the Conn reach the socket at once, since the caller reads it directly.
func TestDeadlineHandOver(t *testing.T) {
	for _, name := range []string{"Unwrap", "NetConn"} {
		t.Run(name, func(t *testing.T) {
			s, _ := pair(t)
			s.SetReadDeadline(time.Now().Add(time.Hour)) // pending when handed over
			var under net.Conn
			if name == "Unwrap" {
				under = s.Unwrap()
			} else {
				under = s.NetConn()
			}
			go func() {
				time.Sleep(50 * time.Millisecond)
				s.SetReadDeadline(time.Unix(1, 0)) // a wake, as wstunnel's
			}()
			if _, err := readWithin(t, under, 5*time.Second); !isTimeout(err) {
				t.Fatalf("read on the unwrapped conn = %v, want a timeout", err)
			}
		})
	}
}

// TestDeadlineConcurrent: deadlines set from another goroutine while
// reads and writes run (the race detector checks the bookkeeping); every
// Read still ends, by data or by its deadline.
func TestDeadlineConcurrent(t *testing.T) {
	s, peer := pair(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 3 {
			case 0:
				s.SetReadDeadline(time.Now().Add(time.Millisecond))
			case 1:
				s.SetDeadline(time.Time{})
			case 2:
				s.SetReadDeadline(time.Unix(1, 0))
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	go func() {
		b := make([]byte, 64)
		for {
			if _, err := peer.Read(b); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64)
	for range 2000 {
		if _, err := s.Write([]byte("x")); err != nil && !isTimeout(err) {
			t.Fatalf("Write = %v", err)
		}
		if _, err := peer.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(buf); err != nil && !isTimeout(err) {
			t.Fatalf("Read = %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestDeadlinePassedBeforeRead: a deadline that passes before a Read
// starts fails the Read even with data waiting, as the socket's own
// deadline would (the Read does not wait, so the deadline has to be
// looked at as it starts); a later deadline lets the data through, even
// though the socket still has the one that passed.
func TestDeadlinePassedBeforeRead(t *testing.T) {
	s, peer := pair(t)
	if _, err := peer.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	s.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	if n, err := s.Read(make([]byte, 8)); n != 0 || !isTimeout(err) {
		t.Fatalf("Read after its deadline passed = %d, %v; want a timeout", n, err)
	}
	s.SetReadDeadline(time.Now().Add(time.Hour))
	buf := make([]byte, 8)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "data" {
		t.Fatalf("Read under a later deadline = %q, %v", buf[:n], err)
	}
}

// countingConn counts the deadlines that reach the socket.
type countingConn struct {
	*net.TCPConn
	mu           sync.Mutex
	reads, write []time.Time
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.reads = append(c.reads, t)
	c.mu.Unlock()
	return c.TCPConn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.write = append(c.write, t)
	c.mu.Unlock()
	return c.TCPConn.SetWriteDeadline(t)
}

// countingPair is pair with the deadlines that reach the socket counted.
func countingPair(t *testing.T) (*Conn, *countingConn, net.Conn) {
	var cc *countingConn
	s, peer := pairOf(t, func(c *net.TCPConn) net.Conn {
		cc = &countingConn{TCPConn: c}
		return cc
	})
	return s, cc, peer
}

// TestDeadlineOnlyWhenWaiting: deadlines set and cleared around reads
// and writes that find their data or buffer space reach the socket not
// at all (a busy keep-alive connection: net/http's six read deadlines and
// the proxy's send bound per request); the first Read that has to wait
// takes the deadline last set with it, and still ends by it.
func TestDeadlineOnlyWhenWaiting(t *testing.T) {
	s, cc, peer := countingPair(t)
	buf := make([]byte, 8)
	for range 10 {
		if _, err := peer.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // the request is there before the Read
		s.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(s, buf[:4]); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Time{})
		s.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := s.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		s.SetWriteDeadline(time.Time{})
		if _, err := io.ReadFull(peer, buf[:4]); err != nil {
			t.Fatal(err)
		}
	}
	cc.mu.Lock()
	reads, writes := len(cc.reads), len(cc.write)
	cc.mu.Unlock()
	if reads != 0 || writes != 0 {
		t.Errorf("deadlines that reached the socket: %d read, %d write; want none (no operation waited)", reads, writes)
	}
	s.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := readWithin(t, s, 5*time.Second); !isTimeout(err) {
		t.Fatalf("Read with nothing to read = %v, want a timeout", err)
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.reads) != 1 {
		t.Errorf("read deadlines that reached the socket: %v; want the one the waiting Read ran under", cc.reads)
	}
}

// TestWriteTimeout: with a write timeout, a Write to a peer that reads
// nothing fails that long after it first had to wait; a write deadline
// set takes its place while it is set; writes that find buffer space set
// no deadline on the socket; handing the wrapped conn out turns it off.
func TestWriteTimeout(t *testing.T) {
	writeFor := func(s *Conn) (time.Duration, error) {
		start := time.Now()
		_, err := s.Write(make([]byte, 64<<20))
		return time.Since(start), err
	}
	t.Run("waiting write", func(t *testing.T) {
		s, _ := pair(t)
		s.SetWriteTimeout(100 * time.Millisecond)
		for range 2 { // the first bound passed, the next Write gets its own
			took, err := writeFor(s)
			if !isTimeout(err) || took > 5*time.Second {
				t.Fatalf("Write to a peer reading nothing = %v after %v, want a timeout after about 100 ms", err, took)
			}
		}
	})
	t.Run("deadline set wins", func(t *testing.T) {
		s, _ := pair(t)
		s.SetWriteTimeout(100 * time.Millisecond)
		s.SetWriteDeadline(time.Now().Add(600 * time.Millisecond))
		took, err := writeFor(s)
		if !isTimeout(err) || took < 500*time.Millisecond {
			t.Fatalf("Write under a 600 ms deadline = %v after %v, want the deadline's timeout, not the 100 ms write timeout's", err, took)
		}
	})
	t.Run("no wait, no deadline", func(t *testing.T) {
		s, cc, _ := countingPair(t)
		s.SetWriteTimeout(time.Second)
		for range 10 {
			if _, err := s.Write([]byte("small")); err != nil {
				t.Fatal(err)
			}
		}
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if len(cc.write) != 0 {
			t.Errorf("write deadlines that reached the socket: %v; want none (no write waited)", cc.write)
		}
	})
	t.Run("handed over", func(t *testing.T) {
		// A TLS tunnel still writes through the Conn (crypto/tls is not
		// unwrapped) after the conn underneath was handed out.
		s, _ := pair(t)
		s.SetWriteTimeout(100 * time.Millisecond)
		if _, err := writeFor(s); !isTimeout(err) {
			t.Fatalf("Write before the hand-over = %v, want a timeout", err)
		}
		s.Unwrap()
		res := make(chan error, 1)
		go func() {
			_, err := writeFor(s)
			res <- err
		}()
		select {
		case err := <-res:
			t.Fatalf("Write after the hand-over ended within 1 s: %v; want it to wait (the write timeout is off)", err)
		case <-time.After(time.Second):
		}
		s.Close()
		<-res
	})
}
