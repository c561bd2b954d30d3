// Command gatehouse is the Gatehouse TLS edge server and reverse proxy.
//
//	gatehouse run [-config FILE]   serve (embedded development config without -config)
//	gatehouse check -config FILE   validate a config, like nginx -t
//	gatehouse compress DIR         precompress a static directory (.br, .zst, .gz)
//	gatehouse demo                 run with two in-process demo backends
//	gatehouse health               ask a running instance's admin listener
//	gatehouse version
//
// This package is wiring only: flags, signals, listeners, the metrics
// registry, the reload loop and the shutdown order. The work is done by
// packages config, proxy and tlsedge.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build info.
var version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "compress":
		return cmdCompress(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "gatehouse", getVersion())
		return 0
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Gatehouse: TLS edge server and reverse proxy for Django/Daphne.

Usage:
  gatehouse run [-config FILE]    serve; without -config, an embedded development
                                  config (HTTP 127.0.0.1:8080, HTTPS 127.0.0.1:8443,
                                  proxying to Daphne on 127.0.0.1:8000)
  gatehouse check -config FILE    validate a config and its certificates, like nginx -t
  gatehouse compress DIR          write .br, .zst and .gz beside the text files of a
                                  static directory (after collectstatic)
  gatehouse demo                  run in front of two in-process demo backends
  gatehouse health                exit 0 if a running instance is ready (container HEALTHCHECK)
  gatehouse version               print the version

Run "gatehouse COMMAND -h" for a command's flags.
Signals: SIGHUP reloads the config, SIGUSR1 reopens access logs, SIGTERM/SIGINT
shut down gracefully.
`)
}

func getVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
