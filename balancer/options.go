package balancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Policy names accepted in [Options.Policy].
const (
	// PolicyRoundRobin is nginx's smooth weighted round robin (the default).
	PolicyRoundRobin = "round_robin"
	// PolicyLeastConn picks the lowest (in-flight + queued) / weight; ties are
	// broken by weighted random choice.
	PolicyLeastConn = "least_conn"
	// PolicyIPHash maps the client address to a server with weighted
	// rendezvous (HRW) hashing: adding or removing one server moves only the
	// clients that hash to it.
	PolicyIPHash = "ip_hash"
	// PolicyRandomTwo draws two servers at random (weighted) and keeps the
	// less loaded one ("power of two choices").
	PolicyRandomTwo = "random_two"
	// PolicyFirst picks the first available server in configuration order.
	PolicyFirst = "first"
)

// Policies lists every accepted policy name.
func Policies() []string {
	return []string{PolicyRoundRobin, PolicyLeastConn, PolicyIPHash, PolicyRandomTwo, PolicyFirst}
}

// Resolver looks up the addresses of a host name. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a [Pool]. Zero values are documented per field; the
// caller (config) owns the defaults.
type Options struct {
	// Name is the upstream name. Required. It is part of every sticky id
	// and registry key.
	Name string
	// Policy is one of the Policy* constants. Empty means round_robin.
	Policy string
	// Servers in configuration order. At least one is required.
	Servers []Server
	// StickySecret keys the HMAC that derives backend ids. Empty is
	// allowed: ids are then stable but guessable from the names.
	StickySecret []byte

	// MaxFails failures reported with [Backend.ReportFailure] within
	// FailTimeout take a server out for FailTimeout. 0 disables passive
	// health. FailTimeout must be > 0 when MaxFails > 0.
	MaxFails    int
	FailTimeout time.Duration

	// QueueSize is how many Acquire callers may wait for a slot on a server
	// whose MaxConns are all taken; 0 means no queue (ErrQueueFull at once).
	QueueSize int
	// QueueTimeout bounds the wait in the queue; 0 means wait until the
	// Acquire context is done.
	QueueTimeout time.Duration

	// Rise consecutive passing checks bring a down server up; Fall
	// consecutive failing checks take an up server down. 0 means 1.
	Rise, Fall int
	// StartDown makes servers with no retained state start down (they need
	// Rise passing checks first). False: they start up.
	StartDown bool
	// SlowStart, when > 0, ramps a server's effective weight linearly from
	// 1/10 to full over this duration after it comes back up (active
	// health) or after a passive-health exclusion ends.
	SlowStart time.Duration

	// Resolver resolves Servers whose Host is not an IP literal. Nil means
	// net.DefaultResolver.
	Resolver Resolver
	// ResolveInterval is how often [Pool.Run] re-resolves host names. 0
	// means Run resolves once and then only waits for its context.
	ResolveInterval time.Duration
	// OnResolveError, if set, is called when a lookup fails (the last good
	// addresses are kept). server is the configured server name.
	OnResolveError func(upstream, server string, err error)

	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// OnStateChange, if set, is called synchronously (outside any lock) when
	// a backend goes up or down through active checks, SetUp, or passive
	// health: down when [Backend.ReportFailure] first takes it out, up at
	// the first [Backend.ReportSuccess] after that (a backend tried again
	// after FailTimeout that fails again is not reported again). server is
	// [Backend.Label]. Calls for racing transitions of one backend may
	// arrive out of order; [Backend.Up] is authoritative.
	OnStateChange func(upstream, server string, up bool, reason string)
}

// Server is one configured server of an upstream.
type Server struct {
	// Name identifies the server for sticky ids, the registry, Drain and
	// logs. Empty means Host:Port. Must be unique within the upstream.
	Name string
	// Host is an IP literal (never resolved) or a host name resolved
	// through Options.Resolver; each address becomes one backend.
	Host string
	// Port is required (1–65535).
	Port int
	// Weight is relative; 0 means 1. At most MaxWeight.
	Weight int
	// Backup servers are picked only while no primary is available.
	Backup bool
	// MaxConns caps concurrent slots taken with [Backend.Acquire]; 0 means
	// unlimited.
	MaxConns int
	// Drain starts the server drained: no new picks, sticky clients keep it.
	Drain bool
}

// MaxWeight is the largest accepted Server.Weight.
const MaxWeight = 10000

// weightScale multiplies configured weights so that slow start can ramp a
// weight-1 server in tenths.
const weightScale = 100

// Errors returned by [Backend.Acquire] and [Pool.Drain].
var (
	ErrQueueFull     = errors.New("balancer: server queue full")
	ErrQueueTimeout  = errors.New("balancer: queue timeout")
	ErrUnknownServer = errors.New("balancer: unknown server")
)

type policyKind uint8

const (
	polRoundRobin policyKind = iota
	polLeastConn
	polIPHash
	polRandomTwo
	polFirst
)

func parsePolicy(s string) (policyKind, bool) {
	switch s {
	case "", PolicyRoundRobin:
		return polRoundRobin, true
	case PolicyLeastConn:
		return polLeastConn, true
	case PolicyIPHash:
		return polIPHash, true
	case PolicyRandomTwo:
		return polRandomTwo, true
	case PolicyFirst:
		return polFirst, true
	}
	return 0, false
}

// serverSpec is a validated Server.
type serverSpec struct {
	Server
	literal netip.Addr // valid when Host is an IP literal
}

// validate checks o and returns the normalised server list. Every problem is
// reported, each naming its field.
func validate(o *Options) (policyKind, []serverSpec, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	if o.Name == "" {
		bad("name", "required")
	}
	pol, ok := parsePolicy(o.Policy)
	if !ok {
		bad("policy", "unknown %q (want one of %s)", o.Policy, strings.Join(Policies(), ", "))
	}
	if len(o.Servers) == 0 {
		bad("servers", "at least one server is required")
	}
	if o.MaxFails < 0 {
		bad("max_fails", "must be ≥ 0")
	}
	if o.MaxFails > 0 && o.FailTimeout <= 0 {
		bad("fail_timeout", "must be > 0 when max_fails > 0")
	}
	if o.QueueSize < 0 {
		bad("queue_size", "must be ≥ 0")
	}
	if o.QueueTimeout < 0 {
		bad("queue_timeout", "must be ≥ 0")
	}
	if o.Rise < 0 {
		bad("rise", "must be ≥ 0")
	}
	if o.Fall < 0 {
		bad("fall", "must be ≥ 0")
	}
	if o.SlowStart < 0 {
		bad("slow_start", "must be ≥ 0")
	}
	if o.ResolveInterval < 0 {
		bad("resolve_interval", "must be ≥ 0")
	}
	specs := make([]serverSpec, 0, len(o.Servers))
	seen := make(map[string]int, len(o.Servers))
	for i, s := range o.Servers {
		f := fmt.Sprintf("servers[%d]", i)
		sp := serverSpec{Server: s}
		if s.Host == "" {
			bad(f+".host", "required")
		} else if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s.Host, "["), "]")); err == nil {
			sp.literal = a.Unmap()
		} else if strings.ContainsAny(s.Host, " /:@[]?#") {
			bad(f+".host", "%q is neither an IP address nor a host name", s.Host)
		}
		if s.Port < 1 || s.Port > 65535 {
			bad(f+".port", "must be 1..65535, got %d", s.Port)
		}
		switch {
		case s.Weight < 0 || s.Weight > MaxWeight:
			bad(f+".weight", "must be 0..%d, got %d", MaxWeight, s.Weight)
		case s.Weight == 0:
			sp.Weight = 1
		}
		if s.MaxConns < 0 {
			bad(f+".max_conns", "must be ≥ 0")
		}
		if sp.Name == "" {
			sp.Name = joinHostPort(s.Host, s.Port)
		}
		if j, dup := seen[sp.Name]; dup {
			bad(f+".name", "%q duplicates servers[%d]", sp.Name, j)
		} else {
			seen[sp.Name] = i
		}
		specs = append(specs, sp)
	}
	if len(errs) > 0 {
		return 0, nil, errors.Join(errs...)
	}
	return pol, specs, nil
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
