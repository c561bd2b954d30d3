package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
)

// cmdHealth asks a running instance's admin listener whether it is ready
// and exits 0 (ready) or 1. It is the container HEALTHCHECK; it needs no
// shell or curl in the image.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "read the admin address from this config file")
	addr := fs.String("admin", "", "admin listener address (default: from -config, else "+config.DefaultAdminAddress+")")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gatehouse health [-admin ADDR | -config FILE] [-timeout D]

Asks a running Gatehouse's admin listener whether it is ready (GET /readyz)
and exits 0 if it is, 1 if not: a container HEALTHCHECK that needs no shell
or curl.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse health: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	a := *addr
	if a == "" && *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse health: %v\n", err)
			return 1
		}
		a = cfg.Admin.Address
	}
	if a == "" {
		a = config.DefaultAdminAddress
	}
	c := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + a + "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "gatehouse health: %s answered %s\n", a, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "gatehouse at %s is ready\n", a)
	return 0
}
