package staticfile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the package stays below the proxy. It may use the
// standard library and internal/..., and nothing else of the module
// (proxy, config, edgeserver and tlsedge in particular), so that proxy
// can import it.
func TestDependencies(t *testing.T) {
	t.Parallel()
	const module = "github.com/gatehouse-proxy/gatehouse/"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		n++
		switch {
		case std == "true", path == module+"staticfile", strings.HasPrefix(path, module+"internal/"):
		default:
			t.Errorf("staticfile depends on %s: only the standard library and internal/... are allowed", path)
		}
	}
	if n < 10 {
		t.Errorf("go list listed %d dependencies; the check saw nothing", n)
	}
}
