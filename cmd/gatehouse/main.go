// Command gatehouse is the Gatehouse TLS edge server and reverse proxy.
//
//	gatehouse run [-config FILE]        serve (embedded development config without -config)
//	gatehouse proxy --from H --to A     serve H in front of A, with a config file's defaults
//	gatehouse check [-config FILE]      validate a config, like nginx -t; -dump prints it, like nginx -T
//	gatehouse compress DIR              precompress a static directory (.br, .zst, .gz)
//	gatehouse demo                      run with two in-process demo backends
//	gatehouse health                    ask a running instance's admin listener
//	gatehouse version
//	gatehouse help [COMMAND]
//
// This package is wiring only: flags, signals, listeners, the metrics
// registry, the reload loop and the shutdown order. The work is done by
// packages config, proxy and tlsedge.
package main

import (
	"context"
	"flag"
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
	return dispatch(ctx, args[0], args[1:], stdout, stderr)
}

// dispatch runs the subcommand name with args.
func dispatch(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	switch name {
	case "run":
		return cmdRun(ctx, args, stdout, stderr)
	case "proxy":
		return cmdProxy(ctx, args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "compress":
		return cmdCompress(ctx, args, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args, stdout, stderr)
	case "health":
		return cmdHealth(args, stdout, stderr)
	case "version", "-version", "--version":
		return cmdVersion(args, stdout, stderr)
	case "-h", "-help", "--help", "help":
		if len(args) == 0 {
			usage(stdout)
			return 0
		}
		if !commands[args[0]] {
			fmt.Fprintf(stderr, "gatehouse help: unknown command %q\n\n", args[0])
			usage(stderr)
			return 2
		}
		// The command's own -h, written to standard output: asked for,
		// it is not an error.
		return dispatch(ctx, args[0], []string{"-h"}, stdout, stdout)
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// commands are the subcommands "help" knows.
var commands = map[string]bool{"run": true, "proxy": true, "check": true, "compress": true, "demo": true, "health": true, "version": true}

// cmdVersion prints the version.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gatehouse version\n\nPrints the version.")
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fmt.Fprintln(stdout, "gatehouse", getVersion())
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Gatehouse: TLS edge server and reverse proxy for Django/Daphne.

Usage:
  gatehouse run [-config FILE]     serve; without -config, an embedded development
                                   config (HTTP 127.0.0.1:8080, HTTPS 127.0.0.1:8443,
                                   proxying to Daphne on 127.0.0.1:8000)
  gatehouse proxy --from HOST --to ADDR
                                   serve HOST over HTTPS in front of ADDR, with the
                                   defaults of a config file (-dump prints that file)
  gatehouse check [-config FILE]   validate a config and its certificates, like
                                   nginx -t (default /etc/gatehouse/gatehouse.toml);
                                   -dump prints it with every default, like nginx -T
  gatehouse compress DIR           write .br, .zst and .gz beside the text files of a
                                   static directory (after collectstatic)
  gatehouse demo                   run in front of two in-process demo backends
  gatehouse health                 exit 0 if a running instance is ready (container HEALTHCHECK)
  gatehouse version                print the version
  gatehouse help COMMAND           a command's flags (also: gatehouse COMMAND -h)

Logs: the process log goes to standard error, access logs to standard output
(unless a site's access_log names a file).
Signals: SIGHUP reloads the config, SIGUSR1 reopens access log files,
SIGTERM/SIGINT shut down gracefully.
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
