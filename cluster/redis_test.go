package cluster

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server on a free loopback port, without
// persistence, killed in Cleanup.
type redisServer struct {
	t      testing.TB
	addr   string
	args   []string
	noPing bool // TLS only: start does not wait for PING

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startRedis starts redis-server (the Debian package redis-server), or
// skips the test when it is not installed (fails with
// GATEHOUSE_REQUIRE_TOOLS=1). extra are more command-line options.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return startRedisArgs(t, "127.0.0.1:"+strconv.Itoa(port),
		append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...), true)
}

// startRedisArgs starts redis-server with args, to be reached at addr;
// ping says whether to wait for a plain-TCP PING.
func startRedisArgs(t testing.TB, addr string, args []string, ping bool) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server not installed (Debian package redis-server)"
		if os.Getenv("GATEHOUSE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s, and GATEHOUSE_REQUIRE_TOOLS=1", msg)
		}
		t.Skip(msg)
	}
	r := &redisServer{t: t, addr: addr, args: args, noPing: !ping}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start runs the server (again, after stop) and waits until it answers.
func (r *redisServer) start() {
	r.t.Helper()
	r.mu.Lock()
	r.out = &bytes.Buffer{}
	r.cmd = exec.Command("redis-server", r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		r.mu.Unlock()
		r.t.Fatalf("redis-server: %v", err)
	}
	r.mu.Unlock()
	if r.noPing {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	// A server whose default user is off answers NOAUTH: it is up.
	for err := c.Ping(context.Background()).Err(); err != nil && !strings.Contains(err.Error(), "NOAUTH"); err = c.Ping(context.Background()).Err() {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not answer within 10s:\n%s", r.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the server and waits for it to exit.
func (r *redisServer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

// client is a plain client of the server, for the test's own looks.
func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// newNode returns a Node of the server named instance, with its own
// registry, closed in Cleanup.
func newNode(t testing.TB, r *redisServer, instance string, mod func(*Options)) (*Node, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	o := Options{URL: r.url(), Instance: instance, Registerer: reg, Timeout: time.Second, Heartbeat: 100 * time.Millisecond, BanSync: 100 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, reg
}

// runNode runs n's heartbeats until Cleanup.
func runNode(t testing.TB, n *Node) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls cond every 5 ms until it holds or fails the test after
// timeout, naming what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
