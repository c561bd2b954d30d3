package test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/proxy"
)

// libraryConfig is a plain-HTTP-only config with site "app" (app.test)
// routed to one backend; top is inserted at the top level (e.g.
// trusted_proxies).
func libraryConfig(top, backendAddr string) string {
	return fmt.Sprintf(`
%s

[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = ""

[sites.app]
hosts = ["app.test"]
tls = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "b1", address = %q }]
`, top, backendAddr)
}

// startLibrary runs the proxy package directly: config.Parse, proxy.Build,
// an Edge and a Server on a loopback listener. It returns the listener's
// address; everything is shut down in Cleanup.
//
// Tests using it must not call t.Parallel: after shutdown it checks that
// no goroutine of the project's packages is left (a leak check that
// cannot tell two in-process instances apart).
func startLibrary(t *testing.T, tomlText string) string {
	t.Helper()
	t.Cleanup(func() { checkNoLeaks(t) }) // runs after the shutdown below
	cfg, err := config.Parse([]byte(tomlText))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := proxy.Build(ctx, cfg, proxy.Deps{})
	if err != nil {
		t.Fatalf("proxy.Build: %v", err)
	}
	rt.Start()
	edge := proxy.NewEdge(proxy.EdgeOptions{})
	edge.Swap(rt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := edgeserver.NewServer(edgeserver.ServerOptions{
		Name:              "http",
		Listener:          ln,
		Handler:           edge,
		HandshakeTimeout:  cfg.Timeouts.ClientHeader,
		ReadHeaderTimeout: cfg.Timeouts.ClientHeader,
		IdleTimeout:       cfg.Timeouts.Keepalive,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Server.Shutdown: %v", err)
		}
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Errorf("Server.Serve did not return after Shutdown")
		}
		if old := edge.Swap(nil); old != nil {
			old.Close()
		}
		edge.Close()
	})
	return ln.Addr().String()
}

// checkNoLeaks waits up to 2 s for every goroutine running code of the
// project's packages (other than this test package) to end, and reports
// the ones that do not.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	var leaked []string
	deadline := time.Now().Add(2 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, modulePath+"/") && !strings.Contains(g, modulePath+"/test.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d goroutine(s) of the project left running after shutdown:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}
