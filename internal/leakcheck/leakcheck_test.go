package leakcheck

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const module = "github.com/gatehouse-proxy/gatehouse"

// fakeTB records what a check reports; its cleanups run when the test
// calls end.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Name() string      { return "fake" }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs) > 0
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

// end runs the cleanups (last registered first) and returns the reports.
func (f *fakeTB) end() []string {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs
}

// inGoroutine runs f on a fresh goroutine (so the label stays off the
// test's own) and waits for it.
func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

// TestGoroutinesReportsLeak: a goroutine that runs module code outside a
// test file, started after Goroutines, is reported while it runs and not
// once it has returned; goroutines started before, or running only test
// code, are not.
func TestGoroutinesReportsLeak(t *testing.T) {
	release := make(chan struct{})
	before := make(chan struct{})
	defer close(before)
	// Started before the label: never counted.
	go waitFor(time.Hour, func() bool { <-before; return true })

	var errs []string
	inGoroutine(func() {
		f := &fakeTB{}
		goroutines(f, module, 200*time.Millisecond)
		// waitFor is module code in a non-test file: a leak. (Until it
		// runs, the goroutine is only the go statement's wrapper, which is
		// in this test file: wait for it to be in waitFor.)
		started := make(chan struct{})
		go waitFor(time.Hour, func() bool { close(started); <-release; return true })
		<-started
		// Test code only: not counted.
		go func() { <-release }()
		errs = f.end()
	})
	if len(errs) != 1 || !strings.Contains(errs[0], "1 goroutine stack(s)") || !strings.Contains(errs[0], "leakcheck.waitFor") {
		t.Fatalf("reports %q, want one naming the leaked goroutine in leakcheck.waitFor", errs)
	}

	// The same goroutine, returned before the check: nothing to report.
	inGoroutine(func() {
		f := &fakeTB{}
		goroutines(f, module, 5*time.Second)
		stop := make(chan struct{})
		go waitFor(time.Hour, func() bool { <-stop; return true })
		f.Cleanup(func() { close(stop) }) // the helper's teardown, which runs first
		errs = f.end()
	})
	close(release)
	if len(errs) != 0 {
		t.Fatalf("reports %q after the goroutine returned, want none", errs)
	}
}

// TestZero: a value that reaches zero during the wait passes; one that
// stays above zero, or whose read fails, is reported.
func TestZero(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func(n int) (int64, error)
		want  string // substring of the report; "" for none
	}{
		{"reaches zero", func(n int) (int64, error) { return int64(max(0, 3-n)), nil }, ""},
		{"stays", func(int) (int64, error) { return 2, nil }, "in flight = 2"},
		{"error", func(int) (int64, error) { return 0, errors.New("scrape failed") }, "scrape failed"},
	} {
		f := &fakeTB{}
		n := 0
		zero(f, "in flight", func() (int64, error) { n++; return tc.value(n) }, 200*time.Millisecond)
		errs := f.end()
		switch {
		case tc.want == "" && len(errs) != 0:
			t.Errorf("%s: reports %q, want none", tc.name, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tc.want)):
			t.Errorf("%s: reports %q, want one containing %q", tc.name, errs, tc.want)
		}
	}
}

// TestNoConnsTo: an open client socket to the address is reported, with
// both ends; once closed (even if the peer has not closed its end), it is
// not. The server's accepted socket, whose local end is the address, does
// not count.
func TestNoConnsTo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := socketInodes(); err != nil {
		t.Skip("no /proc/self/fd here")
	}

	f := &fakeTB{}
	noConnsTo(f, func() []string { return []string{addr} }, 200*time.Millisecond)
	errs := f.end()
	if len(errs) != 1 || !strings.Contains(errs[0], c.LocalAddr().String()+" -> "+addr) {
		t.Fatalf("with a client socket open: reports %q, want one naming %s -> %s", errs, c.LocalAddr(), addr)
	}

	f = &fakeTB{}
	noConnsTo(f, func() []string { return []string{addr} }, 5*time.Second)
	f.Cleanup(func() { c.Close() })
	if errs := f.end(); len(errs) != 0 {
		t.Fatalf("after the client socket was closed: reports %q, want none", errs)
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:01BB": "127.0.0.1:443",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007:1F90", "ZZ00007F:1F90", "0100007F:FFFFF"} {
		if got, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q) = %v, want an error", bad, got)
		}
	}
}
