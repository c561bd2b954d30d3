package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

// cmdCheck validates a config file and the certificates it names, like
// `nginx -t`: exit 0 with a one-line summary, or every problem with its key
// path and line, and exit 1.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file to check (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: gatehouse check -config FILE\n\nValidates the file (every problem is reported, with its key and line) and the\ncertificate files it names; exits 0 when all is well.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *cfgPath == "" && fs.NArg() == 1 {
		*cfgPath = fs.Arg(0)
	}
	if *cfgPath == "" {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stderr, p.Error())
			}
			fmt.Fprintf(stderr, "%s: %d problem(s); configuration is not valid\n", *cfgPath, len(ps))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", *cfgPath, err)
		}
		return 1
	}
	tc, err := tlsConfigOf(cfg)
	if err == nil {
		err = tlsedge.Check(tc, time.Now())
	}
	if err == nil && cfg.HTTPS != nil {
		err = tlsedge.CheckPolicy(policyOf(cfg.HTTPS))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n%s: configuration is not valid\n", *cfgPath, err, *cfgPath)
		return 1
	}
	routes, servers := 0, 0
	for _, s := range cfg.Sites {
		routes += len(s.Routes)
	}
	for _, u := range cfg.Upstreams {
		servers += len(u.Servers)
	}
	fmt.Fprintf(stdout, "%s: ok: %d site(s), %d route(s), %d upstream(s) with %d server(s), %d rate-limit zone(s)\n",
		*cfgPath, len(cfg.Sites), routes, len(cfg.Upstreams), servers, len(cfg.Zones))
	return 0
}
