package test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterDependencies: the cluster package (Redis) sits beside the
// others: it implements interfaces ratelimit defines and the storage
// certmagic defines, and imports neither the proxy nor a command; no
// package but cluster and cmd/gatehouse links the Redis client, so the
// proxy, ratelimit and tlsedge stay testable without it.
func TestClusterDependencies(t *testing.T) {
	t.Parallel()
	found := false
	for _, p := range goList(t) {
		me := rel(p.ImportPath)
		if under(me, "cluster") {
			found = true
		}
		for _, d := range p.Deps {
			dep := rel(d)
			project := strings.HasPrefix(d, modulePath+"/")
			switch {
			case under(me, "cluster") && project && !under(dep, "ratelimit") && !under(dep, "internal"):
				t.Errorf("%s depends on %s: cluster imports only ratelimit of the project", p.ImportPath, d)
			case strings.HasPrefix(d, "github.com/redis/go-redis/") && !under(me, "cluster") && !under(me, "cmd"):
				t.Errorf("%s depends on %s: only cluster (and cmd, through it) links the Redis client", p.ImportPath, d)
			case project && under(dep, "cluster") && !under(me, "cmd") && !under(me, "cluster"):
				t.Errorf("%s depends on %s: only cmd wires the cluster", p.ImportPath, d)
			}
		}
	}
	if !found {
		t.Error("go list found no package under cluster/")
	}
}

// TestClusterDeployExample: the configuration of deploy/cluster (the
// same file on every edge) passes gatehouse check.
func TestClusterDeployExample(t *testing.T) {
	needBinary(t)
	path := filepath.Join(moduleRoot, "deploy", "cluster", "gatehouse.toml")
	out, err := exec.Command(binPath, "check", "-config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok: 1 site(s), 2 route(s)") {
		t.Fatalf("gatehouse check %s: %v\n%s", path, err, out)
	}
}
