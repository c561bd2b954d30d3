package realip_test

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/gatehouse-proxy/gatehouse/internal/realip"
)

func ExampleClient() {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	lb := netip.MustParseAddr("10.0.0.2")
	// A client forged the first entry; the load balancer appended the
	// address it saw, then a second trusted proxy its own.
	h := http.Header{"X-Forwarded-For": {"127.0.0.1, 198.51.100.7", "10.0.0.9"}}
	fmt.Println(realip.Client(trusted, lb, h))
	// Output: 198.51.100.7
}
