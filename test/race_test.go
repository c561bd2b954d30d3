package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRaceDetector runs the packages with concurrency under the race
// detector. The detector needs cgo and a C compiler; without gcc the test
// skips (or fails when GATEHOUSE_REQUIRE_TOOLS=1), so `go test ./...`
// passes on a machine with only Go installed.
func TestRaceDetector(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the race pass is skipped")
	}
	if os.Getenv("GATEHOUSE_NESTED_RACE") != "" {
		t.Skip("already inside the race pass")
	}
	requireTool(t, "gcc", "gcc")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []string{"./balancer/...", "./ratelimit/...", "./proxy/...", "./tlsedge/...", "./cmd/...", "./config/..."}
	cmd := exec.Command("go", append([]string{"test", "-race", "-count=1", "-timeout", "10m"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GATEHOUSE_NESTED_RACE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -race %s failed: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	t.Logf("race pass:\n%s", out)
}
