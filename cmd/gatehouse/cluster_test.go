package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/config"
)

// clusterTestConfig is banTestConfig with a [cluster] whose Redis is a
// closed port (nothing listens): the daemon must start and serve anyway.
func clusterTestConfig(t *testing.T, extra string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return banTestConfig(t.TempDir(), "127.0.0.1:9") + fmt.Sprintf(`
[cluster]
url = "redis://%s/0"
instance = "edge-test"
%s
`, addr, extra)
}

// TestClusterAdmin: without [cluster], GET /cluster says so (404) and
// nothing of the cluster exists; with [cluster] and Redis down, the
// daemon starts, serves, and GET /cluster lists itself with the error.
func TestClusterAdmin(t *testing.T) {
	d := startBanDaemon(t, banTestConfig(t.TempDir(), "127.0.0.1:9"))
	if d.cluster != nil {
		t.Fatal("a daemon without [cluster] has cluster parts")
	}
	if st, body := adminCall(t, d, "GET", "/cluster"); st != 404 || !strings.Contains(body, "not in a cluster") {
		t.Errorf("GET /cluster without [cluster]: %d %s", st, body)
	}

	d = startBanDaemon(t, clusterTestConfig(t, ""))
	st, body := adminCall(t, d, "GET", "/cluster")
	var view struct {
		Instance  string
		RedisUp   bool `json:"redis_up"`
		Error     string
		Instances []struct {
			Name string
			Self bool
		}
	}
	if st != 200 || json.Unmarshal([]byte(body), &view) != nil {
		t.Fatalf("GET /cluster: %d %s", st, body)
	}
	if view.Instance != "edge-test" || view.Error == "" || len(view.Instances) != 1 || !view.Instances[0].Self {
		t.Errorf("GET /cluster with Redis down = %s; want this instance alone and the error", body)
	}
}

// TestClusterPassword: the password comes from the named environment
// variable or file; a missing or empty one stops the start with the key
// named, and a password file open to others is a check warning.
func TestClusterPassword(t *testing.T) {
	d := &daemon{log: slog.New(slog.DiscardHandler)}
	load := func(extra string) *config.Config {
		cfg, err := config.Parse([]byte(clusterTestConfig(t, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if _, err := d.newCluster(load(`password_env = "GATEHOUSE_TEST_NO_SUCH_VAR"`)); err == nil || !strings.Contains(err.Error(), "cluster.password_env: $GATEHOUSE_TEST_NO_SUCH_VAR is not set or empty") {
		t.Errorf("unset password_env: %v", err)
	}
	pw := filepath.Join(t.TempDir(), "redis.pass")
	os.WriteFile(pw, []byte("\n"), 0o600)
	if _, err := d.newCluster(load(fmt.Sprintf("password_file = %q", pw))); err == nil || !strings.Contains(err.Error(), "cluster.password_file: "+pw+" is empty") {
		t.Errorf("empty password_file: %v", err)
	}
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	os.Chmod(pw, 0o644)
	cfg := load(fmt.Sprintf("password_file = %q", pw))
	if w := clusterFileWarnings(cfg); len(w) != 1 || !strings.Contains(w[0].Error(), "cluster.password_file:") || !strings.Contains(w[0].Error(), "chmod go-rwx") {
		t.Errorf("warnings for a 0644 password file: %v", w)
	}
	os.Chmod(pw, 0o600)
	if w := clusterFileWarnings(cfg); len(w) != 0 {
		t.Errorf("warnings for a 0600 password file: %v", w)
	}
}

// TestClusterConfigHash: instances with the same configuration but their
// own names and state directories show one hash; a changed limit shows.
func TestClusterConfigHash(t *testing.T) {
	parse := func(text string) *config.Config {
		cfg, err := config.Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := clusterTestConfig(t, "")
	a := parse(base)
	b := parse(strings.Replace(strings.Replace(base, `instance = "edge-test"`, `instance = "edge-other"`, 1), "state_dir = ", "state_dir = \"/elsewhere\"\n# ", 1))
	if clusterConfigHash(a) != clusterConfigHash(b) {
		t.Error("the instance name or state directory changed the config hash")
	}
	c := parse(strings.Replace(base, "[ban]\nenabled = true\n", "[ban]\nenabled = true\nmax_retry = 1\n", 1))
	if clusterConfigHash(a) == clusterConfigHash(c) {
		t.Error("a changed [ban] did not change the config hash")
	}
	if keys := restartOnly(a, b); !slices.Contains(keys, "cluster") {
		t.Errorf("restartOnly = %v, want cluster listed for a changed [cluster]", keys)
	}
}
