package balancer_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
)

func Example() {
	reg := balancer.NewRegistry() // once per process, shared by every reload
	pool, err := balancer.New(reg, balancer.Options{
		Name:   "django",
		Policy: balancer.PolicyRoundRobin,
		Servers: []balancer.Server{
			{Name: "app1", Host: "10.0.0.10", Port: 8000, Weight: 2, MaxConns: 100},
			{Name: "app2", Host: "10.0.0.11", Port: 8000},
			{Name: "spare", Host: "10.0.0.12", Port: 8000, Backup: true},
		},
		StickySecret: []byte("change me"),
		MaxFails:     3,
		FailTimeout:  30 * time.Second,
		QueueSize:    50,
		QueueTimeout: 5 * time.Second,
		OnStateChange: func(upstream, server string, up bool, reason string) {
			fmt.Printf("%s/%s up=%v (%s)\n", upstream, server, up, reason)
		},
	})
	if err != nil {
		panic(err)
	}
	defer pool.Close() // after the replacing pool is built, on reload

	// A request: pick, take a slot for the whole exchange, release.
	k := balancer.Key{Client: netip.MustParseAddr("192.0.2.7")}
	b, sticky := pool.Pick(k)
	slot, err := b.Acquire(context.Background())
	if err != nil {
		panic(err) // ErrQueueFull or ErrQueueTimeout: answer 503
	}
	fmt.Println("picked", b.Name(), b.Addr(), "sticky:", sticky)
	slot.Release()

	// The next request carries the cookie the proxy set to b.ID().
	again, sticky := pool.Pick(balancer.Key{Cookie: b.ID()})
	fmt.Println("cookie", again.Name(), "sticky:", sticky)

	// The prober takes both primaries down; the backup takes over.
	for _, x := range pool.Backends()[:2] {
		x.ReportCheck(false, "GET /health: status 503")
	}
	b, _ = pool.Pick(k)
	fmt.Println("now", b.Name())
	// Output:
	// picked app1 10.0.0.10:8000 sticky: false
	// cookie app1 sticky: true
	// django/app1 up=false (GET /health: status 503)
	// django/app2 up=false (GET /health: status 503)
	// now spare
}
