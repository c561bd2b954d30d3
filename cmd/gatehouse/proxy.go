package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/config/configdump"
)

// cmdProxy is the one-line quick start (Caddy's reverse-proxy):
//
//	gatehouse proxy --from example.com --to 127.0.0.1:8000
//
// It writes the configuration a file would hold for this — one site, one
// route to one upstream — and runs the daemon with it, so every default is
// a config file's: an ACME certificate, the redirect to HTTPS, HSTS, the
// limits, the admin listener on loopback. Local names (localhost, names
// under .localhost, IP addresses) get the self-signed certificate of
// development instead, on loopback ports. -dump prints the configuration,
// every default written out, to start a file from.
func cmdProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var from, to listFlag
	fs.Var(&from, "from", "host name the site answers to (repeat for more names)")
	fs.Var(&to, "to", "backend address host:port (repeat for more; round robin)")
	websocket := fs.Bool("websocket", false, "forward WebSocket upgrades")
	sticky := fs.Bool("sticky", false, "keep each client on one backend (sticky cookie SERVERID)")
	httpAddr := fs.String("http", "", "plain HTTP listener (default \":80\"; \"127.0.0.1:8080\" for local names; \"off\" disables)")
	httpsAddr := fs.String("https", "", "HTTPS listener (default \":443\"; \"127.0.0.1:8443\" for local names)")
	adminAddr := fs.String("admin", config.DefaultAdminAddress, "admin listener: status page, metrics, health (loopback; \"off\" disables)")
	email := fs.String("email", "", "ACME account email (optional)")
	stateDir := fs.String("state-dir", "", "state directory (certificates, ACME account); default $STATE_DIRECTORY, else the user cache directory")
	dump := fs.Bool("dump", false, "print the configuration this would run, as a config file with every default, and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gatehouse proxy --from HOST --to ADDR [--to ADDR...] [flags]

Serves HOST over HTTPS in front of the backends, with the defaults of a
config file: a certificate from Let's Encrypt, HTTP redirected to HTTPS,
HSTS, the standard limits, and the admin listener (status page, metrics) on
loopback. For localhost, names under .localhost and IP addresses, a
self-signed certificate is used instead, on 127.0.0.1:8080 and :8443.

  gatehouse proxy --from example.com --to 127.0.0.1:8000
  gatehouse proxy --from localhost --to 127.0.0.1:8000 --websocket
  gatehouse proxy --from example.com --to 127.0.0.1:8000 -dump > gatehouse.toml

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse proxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if len(from) == 0 || len(to) == 0 {
		fmt.Fprintln(stderr, "gatehouse proxy: --from and --to are required")
		fs.Usage()
		return 2
	}
	text, err := proxyConfig(proxyOptions{
		From: from, To: to, WebSocket: *websocket, Sticky: *sticky,
		HTTP: *httpAddr, HTTPS: *httpsAddr, Admin: *adminAddr, Email: *email,
	})
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse proxy: %v\n", err)
		return 2
	}
	src := source{embedded: text, stateDir: *stateDir}
	if *dump {
		cfg, err := src.load()
		if err != nil {
			printLoadError(stderr, "gatehouse proxy", err)
			return 1
		}
		stdout.Write(configdump.Dump(cfg))
		return 0
	}
	return serve(ctx, src, stderr, nil)
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// proxyOptions are cmdProxy's flags.
type proxyOptions struct {
	From, To           []string
	WebSocket, Sticky  bool
	HTTP, HTTPS, Admin string
	Email              string
}

// proxyConfig writes the TOML file for o. Values are written by the TOML
// encoder (no flag value can add a key), and every check is the config
// parser's.
func proxyConfig(o proxyOptions) ([]byte, error) {
	local, public := 0, 0
	for _, h := range o.From {
		if isLocalName(h) {
			local++
		} else {
			public++
		}
	}
	if local > 0 && public > 0 {
		return nil, fmt.Errorf("--from mixes local names (localhost, *.localhost, addresses) and public ones: use one kind (a config file can hold both as two sites)")
	}
	httpAddr, httpsAddr := o.HTTP, o.HTTPS
	site := map[string]any{"hosts": o.From}
	if local > 0 {
		// The development setup of `gatehouse run`'s embedded config:
		// loopback ports, which need no privileges, and a certificate of
		// our own.
		site["tls"] = string(config.TLSSelfSigned)
		site["default"] = true // clients that send no name (https://127.0.0.1/)
		if httpAddr == "" {
			httpAddr = "127.0.0.1:8080"
		}
		if httpsAddr == "" {
			httpsAddr = "127.0.0.1:8443"
		}
	}
	if httpAddr == "" {
		httpAddr = config.DefaultHTTPAddress
	}
	if httpsAddr == "" {
		httpsAddr = config.DefaultHTTPSAddress
	}
	listener := func(addr string) map[string]any {
		if addr == "off" {
			addr = ""
		}
		return map[string]any{"address": addr}
	}
	var servers []map[string]any
	for _, t := range o.To {
		addr, err := backendAddress(t)
		if err != nil {
			return nil, err
		}
		servers = append(servers, map[string]any{"address": addr})
	}
	route := map[string]any{"path": "/", "upstream": "app"}
	if o.WebSocket {
		route["websocket"] = map[string]any{"enabled": true}
	}
	site["routes"] = []map[string]any{route}
	upstream := map[string]any{"servers": servers}
	if o.Sticky {
		upstream["sticky"] = map[string]any{"cookie": config.DefaultStickyCookie}
	}
	doc := map[string]any{
		"listeners": map[string]any{"http": listener(httpAddr), "https": listener(httpsAddr), "admin": listener(o.Admin)},
		"sites":     map[string]any{"app": site},
		"upstreams": map[string]any{"app": upstream},
	}
	if o.Email != "" {
		doc["acme"] = map[string]any{"email": o.Email}
	}
	var b bytes.Buffer
	b.WriteString("# gatehouse proxy\n")
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// isLocalName reports whether a --from name cannot have a public
// certificate: localhost, a name under .localhost (RFC 6761), an IP
// address.
func isLocalName(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// backendAddress accepts host:port, :port (loopback) and http://host:port.
func backendAddress(s string) (string, error) {
	a := s
	if rest, ok := strings.CutPrefix(a, "http://"); ok {
		a = strings.TrimSuffix(rest, "/")
	} else if strings.Contains(a, "://") {
		return "", fmt.Errorf("--to %q: backends are spoken to in plain HTTP (http://host:port or host:port)", s)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("--to %q is not host:port (e.g. 127.0.0.1:8000)", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// printLoadError writes a configuration load error: every problem on its
// own line, then a count.
func printLoadError(w io.Writer, name string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(w, p.Error())
		}
		fmt.Fprintf(w, "%s: %d problem(s); configuration is not valid\n", name, len(ps))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
}
