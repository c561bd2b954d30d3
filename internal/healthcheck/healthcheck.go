// Package healthcheck runs the active health checks of one upstream
// (HAProxy's option httpchk): every interval it probes each of the
// upstream's servers at once, through the client it is given, and reports
// each result to the server, whose state machine (rise, fall) lives in
// package balancer. It knows neither the balancer nor Prometheus: servers
// are an interface, and results reach the caller's metrics through a
// callback.
package healthcheck

import (
	"context"
	"net/http"
	"sync"
	"time"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// Server is one server as the checker sees it (*balancer.Backend is one).
type Server interface {
	// Addr is the host:port probed.
	Addr() string
	// ReportCheck takes the result of a probe and why.
	ReportCheck(ok bool, reason string)
}

// Transport is the client probes go through: it is closed when Run
// returns.
type Transport interface {
	http.RoundTripper
	Close()
}

// Options configure New.
type Options[S Server] struct {
	// Servers returns the servers to probe; it is called every round, so
	// servers added by re-resolution are probed from the next one.
	Servers func() []S
	// Check is the request sent and what passes it.
	Check uhttp.Check
	// Interval is the time between the starts of two rounds; it must be
	// positive.
	Interval time.Duration
	// Timeout bounds each probe, connecting included; zero means none.
	Timeout time.Duration
	// Transport carries the probes (its own idle connections, so probes
	// neither wait behind traffic nor take its connections).
	Transport Transport
	// Observe, when not nil, is told each result and how long the probe
	// took, just before the server is told. It runs on the probe's
	// goroutine.
	Observe func(s S, ok bool, took time.Duration)
}

// Checker probes the servers of one upstream. Run it in a goroutine owned
// by the upstream's generation.
type Checker[S Server] struct {
	o      Options[S]
	client *http.Client
}

// New returns the checker configured by o.
func New[S Server](o Options[S]) *Checker[S] {
	return &Checker[S]{o: o, client: &http.Client{
		Transport: o.Transport,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a status like any other
		},
	}}
}

// Run probes every Interval until ctx ends, then closes the Transport. A
// probe cut off by the end of ctx is not reported: it is not the server's
// fault.
func (c *Checker[S]) Run(ctx context.Context) {
	defer c.o.Transport.Close()
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		c.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Checker[S]) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range c.o.Servers() {
		wg.Add(1)
		go func(s S) {
			defer wg.Done()
			start := time.Now()
			ok, reason := c.o.Check.Probe(ctx, c.client, s.Addr())
			if ctx.Err() != nil {
				return // the generation ended: not the server's fault
			}
			if c.o.Observe != nil {
				c.o.Observe(s, ok, time.Since(start))
			}
			s.ReportCheck(ok, reason)
		}(s)
	}
	wg.Wait()
}
