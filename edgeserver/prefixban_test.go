package edgeserver

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// TestListenerPrefixBans: the listener resets, right after accept, a
// connection from every address inside a banned prefix of any length (IPv4
// /24 and /32; IPv6 /48, /64, /96 and /128 with the default /64 keys), and
// admits the addresses just outside (issue 12 item 6).
func TestListenerPrefixBans(t *testing.T) {
	tests := []struct {
		listen  string
		v6Bits  int
		ban     string
		in, out []string // client source addresses
	}{
		{"127.0.0.1:0", 0, "127.0.1.0/24", []string{"127.0.1.1", "127.0.1.254"}, []string{"127.0.0.254", "127.0.2.1"}},
		{"127.0.0.1:0", 0, "127.0.1.7/32", []string{"127.0.1.7"}, []string{"127.0.1.6", "127.0.1.8"}},
		{"[::1]:0", 64, "::/48", []string{"::1"}, nil},
		{"[::1]:0", 64, "0:0:1::/48", nil, []string{"::1"}}, // the next /48
		{"[::1]:0", 64, "::/64", []string{"::1"}, nil},
		{"[::1]:0", 64, "0:0:0:1::/64", nil, []string{"::1"}},
		{"[::1]:0", 64, "::/96", []string{"::1"}, nil},
		{"[::1]:0", 64, "::1:0:0/96", nil, []string{"::1"}},
		{"[::1]:0", 64, "::1/128", []string{"::1"}, nil},
		{"[::1]:0", 64, "::2/128", nil, []string{"::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.ban, func(t *testing.T) {
			k, err := ratelimit.ParseKey(tt.ban, 0)
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tt.ban, err)
			}
			j := ratelimit.NewJail(ratelimit.JailOptions{})
			if err := j.Ban(k, time.Hour, "test"); err != nil {
				t.Fatal(err)
			}
			addr := startGreeter(t, tt.listen, ListenerOptions{Jail: j, V6Bits: tt.v6Bits})
			for _, src := range tt.in {
				if admittedFrom(t, src, addr) {
					t.Errorf("connection from %s inside the ban of %s admitted, want it reset at accept", src, tt.ban)
				}
			}
			for _, src := range tt.out {
				if !admittedFrom(t, src, addr) {
					t.Errorf("connection from %s outside the ban of %s refused, want it admitted", src, tt.ban)
				}
			}
		})
	}
}

// startGreeter serves a guarded listener on listen whose accept loop
// writes "hi\n" to each admitted connection; it returns the address.
func startGreeter(t *testing.T, listen string, o ListenerOptions) string {
	t.Helper()
	network := "tcp4"
	if listen[0] == '[' {
		network = "tcp6"
	}
	inner, err := net.Listen(network, listen)
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, o)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			c.Write([]byte("hi\n"))
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// admittedFrom connects to addr from src and reports whether the server
// greeted the connection (true) or closed it without a byte (false).
func admittedFrom(t *testing.T, src, addr string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return false // on loopback the reset can beat connect's return
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 3)
	_, err = io.ReadFull(c, b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection from %s: neither greeted nor closed within 5 s", src)
	}
	return err == nil && string(b) == "hi\n"
}
