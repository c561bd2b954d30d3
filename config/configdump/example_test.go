package configdump_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/config/configdump"
)

func ExampleDump() {
	cfg, err := config.Parse([]byte(`
[sites.app]
hosts = ["app.example"]
tls = "self_signed"
[[sites.app.routes]]
upstream = "django"
[upstreams.django]
servers = [{ address = "127.0.0.1:8000" }]
`))
	if err != nil {
		panic(err)
	}
	// The dump writes every key; show the upstream's timeouts.
	s := bufio.NewScanner(bytes.NewReader(configdump.Dump(cfg)))
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "connect_timeout") || strings.HasPrefix(s.Text(), "read_timeout") {
			fmt.Println(s.Text())
		}
	}
	// Output:
	// connect_timeout = "1m"
	// read_timeout = "1m"
}
