package proxy

import (
	"fmt"
	"strings"
	"testing"
)

func TestClientLimit(t *testing.T) {
	for _, c := range []struct {
		maxConns []int
		share    string
		want     int
	}{
		{[]int{4}, "0.5", 2},
		{[]int{100, 100}, "0.5", 100},
		{[]int{3}, "0.5", 1},
		{[]int{1}, "0.5", 1}, // at least one
		{[]int{10}, "0.25", 2},
		{[]int{4}, "1", 0},      // share off
		{[]int{4, 0}, "0.5", 0}, // an unlimited server: no slots to take
	} {
		var servers []string
		for i, m := range c.maxConns {
			servers = append(servers, fmt.Sprintf(`{ address = "127.0.0.%d:9", max_conns = %d }`, i+1, m))
		}
		_, rt := startTestEdge(t, fmt.Sprintf(`
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [%s]
client_share = %s
`, strings.Join(servers, ", "), c.share), Deps{})
		if got := rt.upstreams["app"].clientLimit(); got != c.want {
			t.Errorf("max_conns %v, client_share %s: limit %d, want %d", c.maxConns, c.share, got, c.want)
		}
	}
}
