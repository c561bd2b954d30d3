package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStaticBenchSmoke runs test/bench/static.sh in its quick mode against
// the binary TestMain built, so the static-file comparison with nginx and
// the net/http floor (docs/performance.md) cannot rot: the three servers
// must serve the same files with the same Cache-Control (the script checks
// that before measuring), wrk must complete requests without errors on
// every cell, and the three ratio tables must come out with a number in
// each of their four cells, the rounds' median between their lowest and
// highest (one round here). The figures of a one-second run mean nothing
// and are not asserted.
func TestStaticBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-second benchmark smoke run; not with -short")
	}
	needBinary(t)
	requireTool(t, "wrk", "wrk")
	requireTool(t, "nginx", "nginx-light")
	requireTool(t, "openssl", "openssl")
	requireTool(t, "curl", "curl")
	requireTool(t, "taskset", "util-linux")
	out := runScript(t, 3*time.Minute, []string{"GATEHOUSE_BIN=" + binPath, "TMPDIR=" + t.TempDir()},
		"bench/static.sh", "--quick", "--only", "nginx,gatehouse,nethttp")
	// "  http   css  1.31  (rounds 1.31-1.31, n=1; ratio of medians 1.31)"
	cells := regexp.MustCompile(`(?m)^\s+(http|https)\s+(css|js)\s+([0-9.]+)  \(rounds ([0-9.]+)-([0-9.]+), n=(\d+); ratio of medians ([0-9.]+)\)$`).FindAllSubmatch(out, -1)
	if len(cells) != 12 {
		t.Fatalf("want 12 ratio cells (3 tables of http/https × css/js), got %d:\n%s", len(cells), out)
	}
	for _, c := range cells {
		var v [4]float64
		for i, s := range [][]byte{c[3], c[4], c[5], c[7]} {
			r, err := strconv.ParseFloat(string(s), 64)
			if err != nil || r <= 0 {
				t.Fatalf("%s %s: %q is not a positive number:\n%s", c[1], c[2], s, out)
			}
			v[i] = r
		}
		med, lo, hi := v[0], v[1], v[2]
		if string(c[6]) != "1" || lo > med || med > hi {
			t.Errorf("%s %s: median %v of rounds %v-%v, n=%s: want one round, the median between the lowest and highest", c[1], c[2], med, lo, hi, c[6])
		}
	}
}

// sharedBench returns the shared benchmark harness (../shared/bench next
// to the repository, or BENCH_DIR), skipping when there is none: it is
// not part of this repository and not a program .ci/run can install, so
// its absence skips even under GATEHOUSE_REQUIRE_TOOLS=1.
func sharedBench(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(moduleRoot, "..", "shared", "bench")
	}
	for _, p := range []string{"run", "backend", "wsload"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Skipf("the shared benchmark harness is not at %s (not part of this repository; set BENCH_DIR): %v", dir, err)
		}
	}
	return dir
}

// runScript runs a bash script (a path relative to test/, or absolute)
// with env added, stopping it after limit, and returns its combined
// output.
func runScript(t *testing.T, limit time.Duration, env []string, script string, args ...string) []byte {
	t.Helper()
	script, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// At the limit, SIGTERM: the scripts stop what they started on it (a
	// SIGKILL would leave their servers running); SIGKILL and closed
	// pipes 10 s later if that did not end it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return out
}

// TestHarnessAdapterSmoke runs the shared harness in its quick mode with
// Gatehouse's adapter (test/bench/gatehouse.sh, against the binary TestMain
// built) and the net/http floor's (test/bench/proxyfloor.sh), so that
// neither can rot: every column must have a figure and no check of the
// harness may fail (wrong responses, failed requests, backends not both
// used, idle WebSockets not held) but those that say the machine was
// busy. The figures of a quick run mean nothing and are not asserted.
func TestHarnessAdapterSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-minute benchmark smoke run; not with -short")
	}
	needBinary(t)
	bench := sharedBench(t)
	for _, tool := range [][2]string{{"wrk", "wrk"}, {"h2load", "nghttp2-client"}, {"openssl", "openssl"}, {"curl", "curl"}, {"ss", "iproute2"}, {"taskset", "util-linux"}} {
		requireTool(t, tool[0], tool[1])
	}
	adapters, err := filepath.Abs("bench")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	js := filepath.Join(tmp, "out.json")
	out := runScript(t, 8*time.Minute, []string{"GATEHOUSE_BIN=" + binPath, "BENCH_ADAPTERS=" + adapters, "BENCH_BIN=" + filepath.Join(tmp, "bin"), "TMPDIR=" + tmp},
		filepath.Join(bench, "run"), "--quick", "--only", "gatehouse,proxyfloor", "--port-base", "27600", "--json", js)
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("the harness wrote no JSON: %v\n%s", err, out)
	}
	var res struct {
		Columns []string `json:"columns"`
		Results map[string]struct {
			Runs         map[string][]float64 `json:"runs"`
			ChecksFailed []string             `json:"checks_failed"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("harness JSON: %v\n%s", err, raw)
	}
	if len(res.Columns) == 0 {
		t.Fatalf("no columns in the harness's JSON:\n%s", raw)
	}
	for _, name := range []string{"gatehouse", "proxyfloor"} {
		g, ok := res.Results[name]
		if !ok {
			t.Errorf("no %s results in the harness's JSON:\n%s\n%s", name, raw, out)
			continue
		}
		// A check that the machine was busy judges the figures, not the
		// adapter (go test runs other packages beside this one), and so
		// does, in a test that was busy, a request count that is off by
		// the requests in flight when the load generator stopped.
		const busy, count = "other jobs used the CPUs", "backends counted"
		noisy := map[string]bool{} // "run 1: h2" and the like
		for _, c := range g.ChecksFailed {
			if i := strings.Index(c, ": "+busy); i >= 0 {
				noisy[c[:i]] = true
			}
		}
		var failed []string
		for _, c := range g.ChecksFailed {
			if i := strings.Index(c, ": "+count); strings.Contains(c, busy) || i >= 0 && noisy[c[:i]] {
				t.Logf("harness check for %s (the machine was busy, ignored here): %s", name, c)
				continue
			}
			failed = append(failed, c)
		}
		if len(failed) > 0 {
			t.Errorf("harness checks failed for %s: %q\n%s", name, failed, out)
		}
		for _, c := range res.Columns {
			v := g.Runs[c]
			switch {
			case len(v) != 1:
				t.Errorf("%s, column %q: %v, want one figure", name, c, v)
			case c == "ws_kib_per_conn":
				// An RSS difference: after the load tests the heap may
				// already hold room for 1,000 idle tunnels (the harness's
				// own checks catch WebSockets that did not open or stay).
			case !(v[0] > 0):
				t.Errorf("%s, column %q: %v, want a positive figure", name, c, v)
			}
		}
	}
}

// TestWSIdleScriptSmoke runs test/bench/wsidle.sh in its quick mode (500
// idle WebSockets through plaintext and TLS) against the binary TestMain
// built, so the per-connection memory measurement of docs/performance.md
// cannot rot: each mode must report a figure for every connection opened.
func TestWSIdleScriptSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second benchmark smoke run; not with -short")
	}
	needBinary(t)
	bench := sharedBench(t)
	requireTool(t, "taskset", "util-linux")
	requireTool(t, "openssl", "openssl")
	requireTool(t, "curl", "curl")
	out := runScript(t, 4*time.Minute, []string{"GATEHOUSE_BIN=" + binPath, "BENCH_DIR=" + bench, "TMPDIR=" + t.TempDir()},
		"bench/wsidle.sh", "--quick", "--port-base", "29600")
	for _, mode := range []string{"plain", "tls"} {
		m := regexp.MustCompile(`(?m)^` + mode + `\s+median of 1: ([0-9.]+) KiB/conn idle WebSocket \(N=500\)`).FindSubmatch(out)
		if m == nil {
			t.Errorf("no %s median in wsidle.sh's output", mode)
			continue
		}
		if v, err := strconv.ParseFloat(string(m[1]), 64); err != nil || v <= 0 {
			t.Errorf("%s: %q KiB/conn, want a positive figure", mode, m[1])
		}
		if !regexp.MustCompile(`(?m)^` + mode + `\s+run 1: [0-9.]+ KiB/conn  \(500 conns`).Match(out) {
			t.Errorf("%s: not all 500 WebSockets were held", mode)
		}
	}
	if t.Failed() {
		t.Logf("wsidle.sh output:\n%s", out)
	}
}
