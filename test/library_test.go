package test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
	"github.com/gatehouse-proxy/gatehouse/proxy"
	"github.com/prometheus/client_golang/prometheus"
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
// address; everything is shut down in Cleanup. After the shutdown,
// leakcheck makes sure nothing of it is left: no goroutine of the
// project's packages that the test started, no request in flight, no
// upstream slot held, no client connection counted open, no socket to an
// upstream server. The checks tell tests apart, so tests using it may run
// in parallel.
func startLibrary(t *testing.T, tomlText string) string {
	t.Helper()
	leakcheck.Goroutines(t, modulePath) // runs after the shutdown below
	cfg, err := config.Parse([]byte(tomlText))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	reg := prometheus.NewRegistry()
	pm := proxy.NewMetrics(reg, "test")
	em := edgeserver.NewMetrics(reg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := proxy.Build(ctx, cfg, proxy.Deps{Metrics: pm})
	if err != nil {
		t.Fatalf("proxy.Build: %v", err)
	}
	rt.Start()
	edge := proxy.NewEdge(proxy.EdgeOptions{Metrics: pm})
	edge.Swap(rt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var upstreams []string
	for _, p := range rt.Pools() {
		for _, b := range p.Backends() {
			upstreams = append(upstreams, b.Addr())
		}
	}
	leakcheck.NoConnsTo(t, func() []string { return upstreams })
	leakcheck.Zero(t, "upstream server slots held", func() (int64, error) {
		var n int64
		for _, p := range rt.Pools() {
			for _, b := range p.Backends() {
				n += b.InFlight()
			}
		}
		return n, nil
	})
	leakcheck.Zero(t, "gatehouse_http_requests_in_flight", func() (int64, error) {
		return gatheredValue(reg, "gatehouse_http_requests_in_flight")
	})
	leakcheck.Zero(t, `gatehouse_connections_open{listener="http"}`, func() (int64, error) {
		return gatheredValue(reg, "gatehouse_connections_open", "listener", "http")
	})
	srv := edgeserver.NewServer(edgeserver.ServerOptions{
		Name:              "http",
		Listener:          ln,
		Handler:           edge,
		Metrics:           em,
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

// gatheredValue returns the value of the gauge name whose labels include
// labels (name=value pairs) gathered from reg, summed over the matching
// series; a gauge reg does not have counts as 0.
func gatheredValue(reg *prometheus.Registry, name string, labels ...string) (int64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue series
				}
			}
			sum += m.GetGauge().GetValue()
		}
	}
	return int64(sum), nil
}
