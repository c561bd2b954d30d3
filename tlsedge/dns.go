package tlsedge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/cloudflare"
	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	"go.uber.org/zap"
)

// execTimeout bounds one run of the exec DNS provider's program, so a
// hook that hangs cannot hold an order (and Run's shutdown) for long.
const execTimeout = 2 * time.Minute

// execOutputMax is how much of the program's output an error quotes.
const execOutputMax = 1 << 10

// newDNSSolver builds certmagic's dns-01 solver for d (validated).
func newDNSSolver(d *DNS, log *zap.Logger) *certmagic.DNS01Solver {
	var p certmagic.DNSProvider
	secret := strings.TrimSpace(string(d.Secret))
	switch d.Provider {
	case "rfc2136":
		p = &rfc2136.Provider{KeyName: d.KeyName, KeyAlg: d.KeyAlgorithm, Key: secret, Server: d.Server}
	case "cloudflare":
		p = &cloudflare.Provider{APIToken: secret}
	case "exec":
		p = &execProvider{command: d.Command}
	}
	return &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
		DNSProvider:        p,
		Resolvers:          d.Resolvers,
		PropagationTimeout: max(d.PropagationTimeout, -1),
		PropagationDelay:   d.PropagationDelay,
		Logger:             log,
	}}
}

// execProvider is a libdns provider that runs a program for each record:
// `command present FQDN VALUE` to create the TXT record and
// `command cleanup FQDN VALUE` to remove it (lego's exec convention). The
// program gets Gatehouse's environment and no stdin; exit status 0 is
// success, anything else fails the challenge with the program's output.
type execProvider struct {
	command string
}

// AppendRecords implements libdns.RecordAppender.
func (p *execProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		rr := r.RR()
		if err := p.run(ctx, "present", libdns.AbsoluteName(rr.Name, zone), rr.Data); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// DeleteRecords implements libdns.RecordDeleter.
func (p *execProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		rr := r.RR()
		if err := p.run(ctx, "cleanup", libdns.AbsoluteName(rr.Name, zone), rr.Data); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

func (p *execProvider) run(ctx context.Context, action, fqdn, value string) error {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.command, action, fqdn, value)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := bytes.TrimSpace(out.Bytes())
	if len(msg) > execOutputMax {
		msg = msg[:execOutputMax]
	}
	if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w (timeout %s)", err, execTimeout)
	}
	return fmt.Errorf("dns hook %s %s %s: %q: %w", p.command, action, fqdn, msg, err)
}

// Interface guard.
var _ certmagic.DNSProvider = (*execProvider)(nil)
