package test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
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
func startLibrary(t *testing.T, tomlText string) string {
	t.Helper()
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
	srv := proxy.NewServer(proxy.ServerOptions{
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
