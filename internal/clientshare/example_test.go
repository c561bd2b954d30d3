package clientshare_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/clientshare"
)

func Example() {
	var shares clientshare.Shares[string]
	ctx := context.Background()
	// Each client may hold 1 place; no queue, so a second request is
	// refused at once.
	fmt.Println(shares.Acquire(ctx, "192.0.2.1", 1, 0, time.Second))
	fmt.Println(shares.Acquire(ctx, "192.0.2.1", 1, 0, time.Second))
	fmt.Println(shares.Acquire(ctx, "198.51.100.7", 1, 0, time.Second))
	shares.Release("192.0.2.1")
	shares.Release("198.51.100.7")
	fmt.Println(shares.Count("192.0.2.1"))
	// Output:
	// <nil>
	// client over its share of the upstream
	// <nil>
	// 0 0
}
