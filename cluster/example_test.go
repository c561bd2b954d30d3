package cluster_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gatehouse-proxy/gatehouse/cluster"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// A cluster zone's decision: both instances' requests draw on one budget
// in Redis. (Not run: it needs a Redis on localhost.)
func ExampleLimiter() {
	n, err := cluster.New(cluster.Options{URL: "redis://127.0.0.1:6379/0", Instance: "edge-1"})
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go n.Run(ctx) // heartbeats: the count of live instances sets the fallback rate

	qs := []ratelimit.SharedQuery{{
		Zone: "api", Rate: 30, Burst: 30,
		Key: ratelimit.KeyOf(netip.MustParseAddr("192.0.2.1"), 0),
	}}
	n.Limiter().AllowShared(ctx, qs)
	fmt.Println(qs[0].OK, qs[0].RetryAfter, qs[0].Fallback)
}
