// Package leakcheck checks, when a test ends, that what the test started
// has stopped, in the manner of Tailscale's tstest.ResourceCheck: the
// project's goroutines that the test started have returned, gauges such
// as requests in flight are back at zero, and the process holds no socket
// connected to an upstream address. It is meant for tests only; the test
// helpers that start servers call it, so every test using them is covered.
//
// Goroutines are told apart by a pprof label (see [Goroutines]) rather
// than by counting them, so the check holds for tests that run in
// parallel with t.Parallel.
//
// Each function registers a t.Cleanup when it is called. Cleanups run in
// reverse order of registration, so a helper calls these functions before
// it registers the shutdown they are to check (the check then runs after
// the shutdown), or after it, to check something before a later-registered
// teardown (a child process still running, say).
//
// A check waits for its condition up to [Timeout] (a busy machine may be
// slow to let goroutines return and sockets close) and reports what is
// left with t.Errorf. It does nothing when the test has already failed:
// leftovers are expected then and would only hide the real failure.
package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Timeout is how long a check waits for its condition before it reports a
// leak. It only bounds a failing test: a passing check returns as soon as
// the condition holds.
const Timeout = 15 * time.Second

// labelKey is the pprof label that marks the goroutines of one test.
const labelKey = "gatehouse_leakcheck"

// nextID numbers labels so two tests (or two runs of one test under
// -count) never share one.
var nextID atomic.Int64

// Goroutines labels the calling goroutine, normally the test's own, so
// that every goroutine it starts from now on (and every goroutine those
// start) carries the label. At cleanup it waits until no labelled
// goroutine that runs code of module (a module path such as
// "github.com/gatehouse-proxy/gatehouse") outside a _test.go file is
// left, and reports the stacks of those still running.
//
// Goroutines running only test code (fake backends the test started after
// calling Goroutines, which their own later cleanup stops) or only
// standard-library code are not counted; a leaked connection of the code
// under test shows in [NoConnsTo] instead. Goroutines started by timers
// (time.AfterFunc) carry no label. A goroutine that has not begun to run
// shows only the wrapper of its go statement, which lives in the file of
// that statement: one the code under test starts is still counted.
func Goroutines(t testing.TB, module string) {
	t.Helper()
	goroutines(t, module, Timeout)
}

func goroutines(t testing.TB, module string, timeout time.Duration) {
	id := strconv.FormatInt(nextID.Add(1), 10)
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(labelKey, id)))
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		var left []string
		if waitFor(timeout, func() bool {
			left = labelled(id, module)
			return len(left) == 0
		}) {
			return
		}
		t.Errorf("leakcheck: %d goroutine stack(s) of %s started by %s still running %v after cleanup:\n\n%s",
			len(left), module, t.Name(), timeout, strings.Join(left, "\n\n"))
	})
}

// Zero registers value, which must be zero once the test's teardown has
// run: an in-flight gauge, a count of open connections. what names it in
// the report. An error from value (a scrape that failed) counts as not
// zero and is reported if it persists.
func Zero(t testing.TB, what string, value func() (int64, error)) {
	t.Helper()
	zero(t, what, value, Timeout)
}

func zero(t testing.TB, what string, value func() (int64, error), timeout time.Duration) {
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		var v int64
		var err error
		if waitFor(timeout, func() bool {
			v, err = value()
			return err == nil && v == 0
		}) {
			return
		}
		if err != nil {
			t.Errorf("leakcheck: %s: %v (still %v after cleanup)", what, err, timeout)
			return
		}
		t.Errorf("leakcheck: %s = %d %v after cleanup, want 0", what, v, timeout)
	})
}

// NoConnsTo registers addrs (host:port of upstream servers, called at
// cleanup so the list may grow during the test) to which this process must
// hold no TCP socket once the test's teardown has run: a socket whose file
// descriptor is open (in any state, CLOSE_WAIT included) is a leak. On
// systems without /proc the check is skipped.
func NoConnsTo(t testing.TB, addrs func() []string) {
	t.Helper()
	noConnsTo(t, addrs, Timeout)
}

func noConnsTo(t testing.TB, addrs func() []string, timeout time.Duration) {
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		want := map[netip.AddrPort]bool{}
		for _, a := range addrs() {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				want[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
			}
		}
		if len(want) == 0 {
			return
		}
		var open []string
		var err error
		if waitFor(timeout, func() bool {
			open, err = socketsTo(want)
			return err == nil && len(open) == 0
		}) {
			return
		}
		if errors.Is(err, errNoProc) {
			return
		}
		if err != nil {
			t.Errorf("leakcheck: listing sockets: %v", err)
			return
		}
		t.Errorf("leakcheck: %d socket(s) to upstream addresses still open %v after cleanup: %s",
			len(open), timeout, strings.Join(open, ", "))
	})
}

// waitFor polls cond, backing off from 1 ms to 50 ms, until it holds (true)
// or timeout passes (false).
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
	return true
}

// labelled returns the goroutine profile records (debug=1 text: a count,
// the labels, one frame per line) carrying label id whose stack has a
// frame of module outside a _test.go file. The goroutine taking the
// profile is left out.
func labelled(id, module string) []string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	mark := strconv.Quote(labelKey) + ":" + strconv.Quote(id)
	var out []string
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(rec, mark) || strings.Contains(rec, "runtime/pprof.writeGoroutine") {
			continue
		}
		if projectFrame(rec, module) {
			out = append(out, rec)
		}
	}
	return out
}

// projectFrame reports whether a profile record has a frame whose function
// is in module and whose file is not a _test.go file.
func projectFrame(rec, module string) bool {
	for _, line := range strings.Split(rec, "\n") {
		// "#\t0x4b1c2d\tpkg.Func+0x2d\t/path/file.go:12"
		f := strings.Split(line, "\t")
		if len(f) < 4 || f[0] != "#" {
			continue
		}
		fn, file := f[2], strings.TrimSpace(f[len(f)-1])
		if i := strings.LastIndexByte(file, ':'); i >= 0 {
			file = file[:i]
		}
		if strings.HasPrefix(fn, module+"/") || strings.HasPrefix(fn, module+".") {
			if !strings.HasSuffix(file, "_test.go") {
				return true
			}
		}
	}
	return false
}

var errNoProc = errors.New("no /proc/self/fd")

// socketsTo lists this process's TCP sockets (those with an open file
// descriptor) whose remote address is in want, as "local -> remote".
func socketsTo(want map[netip.AddrPort]bool) ([]string, error) {
	inodes, err := socketInodes()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
			f := strings.Fields(sc.Text())
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			remote, err1 := parseProcAddr(f[2])
			local, err2 := parseProcAddr(f[1])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: bad line %q", name, sc.Text())
			}
			if want[remote] {
				out = append(out, local.String()+" -> "+remote.String())
			}
		}
	}
	return out, nil
}

// socketInodes returns the inodes of the sockets this process has open.
func socketInodes() (map[string]bool, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, errNoProc
	}
	out := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if in, ok := strings.CutPrefix(l, "socket:["); ok {
			out[strings.TrimSuffix(in, "]")] = true
		}
	}
	return out, nil
}

// parseProcAddr decodes a /proc/net/tcp{,6} address: the IP as 32-bit
// words printed in hex as the host reads them, then the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || (len(ipHex) != 8 && len(ipHex) != 32) {
		return netip.AddrPort{}, errors.New("bad address")
	}
	raw := make([]byte, 0, 16)
	for i := 0; i < len(ipHex); i += 8 {
		w, err := strconv.ParseUint(ipHex[i:i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, err
		}
		raw = binary.NativeEndian.AppendUint32(raw, uint32(w))
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
