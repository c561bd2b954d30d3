package sockio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a wrapped accepted conn and the dialling end.
func pair(t *testing.T) (*Conn, net.Conn) {
	return pairOf(t, func(c *net.TCPConn) net.Conn { return c })
}

// pairOf is pair with the accepted conn passed through under before it
// is wrapped.
func pairOf(t *testing.T, under func(*net.TCPConn) net.Conn) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := Wrap(under(c.(*net.TCPConn)))
	s, ok := w.(*Conn)
	if !ok {
		c.Close()
		peer.Close()
		t.Skipf("Wrap returned %T: no raw socket I/O on this platform", w)
	}
	t.Cleanup(func() { s.Close(); peer.Close() })
	return s, peer
}

func TestWrapOnlySockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Errorf("Wrap(net.Pipe) = %T, want the conn itself", got)
	}
}

func TestReadWrite(t *testing.T) {
	s, peer := pair(t)
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := s.Read(nil); n != 0 || err != nil {
		t.Errorf("empty Read = %d, %v", n, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("peer read %q, %v", buf[:4], err)
	}
	peer.Close()
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: Read = %d, %v; want io.EOF", n, err)
	}
}

// TestLargeWrite writes more than the socket buffers hold to a peer that
// reads late: Write waits for room and delivers everything.
func TestLargeWrite(t *testing.T) {
	s, peer := pair(t)
	msg := make([]byte, 32<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		n, err := s.Write(msg)
		if err == nil && n != len(msg) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("data damaged")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	s, _ := pair(t)
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	res := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 8)); res <- err }()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-res:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
}

// TestWriteToResetPeer: a write error from the kernel comes back as a
// *net.OpError naming the operation.
func TestWriteToResetPeer(t *testing.T) {
	s, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST
	time.Sleep(50 * time.Millisecond)
	var err error
	for range 100 {
		if _, err = s.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write to a reset peer = %v, want a *net.OpError for write", err)
	}
}

// readFromConn records what reaches the TCP conn's ReadFrom, where Go
// uses sendfile(2) and splice(2).
type readFromConn struct {
	*net.TCPConn
	got []string
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	kind, src := "other", r
	if lr, ok := r.(*io.LimitedReader); ok {
		src = lr.R
	}
	if _, ok := src.(*os.File); ok {
		kind = "file"
	}
	c.got = append(c.got, kind)
	return c.TCPConn.ReadFrom(r)
}

// TestReadFrom: a file (alone or in an io.LimitedReader, as
// http.ServeContent passes it) goes to the wrapped conn's ReadFrom, so to
// sendfile(2); any other reader is copied through Write (raw system
// calls, a pooled buffer) and never reaches it. The bytes arrive whole
// either way.
func TestReadFrom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	spy := &readFromConn{TCPConn: c.(*net.TCPConn)}
	s, ok := Wrap(spy).(*Conn)
	if !ok {
		t.Skip("no raw socket I/O on this platform")
	}
	defer s.Close()
	rf, ok := any(s).(io.ReaderFrom)
	if !ok {
		t.Fatal("*Conn has no ReadFrom: net/http cannot reach sendfile through it")
	}

	msg := make([]byte, 1<<20) // more than the socket buffers hold
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	path := t.TempDir() + "/f"
	if err := os.WriteFile(path, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name string
		src  func() io.Reader
		want string
	}{
		{"file in a LimitedReader", func() io.Reader { f.Seek(0, 0); return io.LimitReader(f, int64(len(msg))) }, "[file]"},
		{"file", func() io.Reader { f.Seek(0, 0); return f }, "[file]"},
		{"bytes in a LimitedReader", func() io.Reader { return io.LimitReader(bytes.NewReader(msg), int64(len(msg))) }, "[]"},
		{"bytes", func() io.Reader { return bytes.NewReader(msg) }, "[]"},
	} {
		spy.got = nil
		read := make(chan []byte, 1)
		go func() {
			got := make([]byte, len(msg))
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, _ := io.ReadFull(peer, got)
			read <- got[:n]
		}()
		n, err := rf.ReadFrom(tc.src())
		if err != nil || n != int64(len(msg)) {
			t.Errorf("%s: ReadFrom = %d, %v; want %d", tc.name, n, err, len(msg))
		}
		if got := <-read; !bytes.Equal(got, msg) {
			t.Errorf("%s: the peer got %d bytes, not the %d sent", tc.name, len(got), len(msg))
		}
		if got := fmt.Sprint(spy.got); got != tc.want {
			t.Errorf("%s: the TCP conn's ReadFrom got %s, want %s", tc.name, got, tc.want)
		}
	}
}
