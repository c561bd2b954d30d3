package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestStaticBenchSmoke runs test/bench/static.sh in its quick mode against
// the binary TestMain built, so the static-file comparison with nginx and
// the net/http floor (docs/performance.md) cannot rot: the three servers
// must serve the same files with the same Cache-Control (the script checks
// that before measuring), wrk must complete requests without errors on
// every cell, and the three ratio tables must come out with a number in
// each of their four cells. The figures of a one-second run mean nothing
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
	script, err := filepath.Abs("bench/static.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "--quick", "--only", "nginx,gatehouse,nethttp")
	cmd.Env = append(os.Environ(), "GATEHOUSE_BIN="+binPath, "TMPDIR="+t.TempDir())
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			if cmd.Process != nil {
				cmd.Process.Kill()
			}
		}
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("static.sh --quick: %v\n%s", err, out)
	}
	cells := regexp.MustCompile(`(?m)^\s+(http|https)\s+(css|js)\s+([0-9.]+)\s*$`).FindAllSubmatch(out, -1)
	if len(cells) != 12 {
		t.Fatalf("want 12 ratio cells (3 tables of http/https × css/js), got %d:\n%s", len(cells), out)
	}
	for _, c := range cells {
		if r, err := strconv.ParseFloat(string(c[3]), 64); err != nil || r <= 0 {
			t.Errorf("ratio %s %s = %q, want a positive number", c[1], c[2], c[3])
		}
	}
}
