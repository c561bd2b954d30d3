package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/gatehouse-proxy/gatehouse/internal/errorpage"
	"github.com/gatehouse-proxy/gatehouse/internal/hostname"
	"github.com/gatehouse-proxy/gatehouse/internal/proxymetrics"
	"github.com/gatehouse-proxy/gatehouse/internal/routing"
	"github.com/gatehouse-proxy/gatehouse/internal/supervise"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
	"github.com/gatehouse-proxy/gatehouse/internal/wsproxy"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
	"github.com/gatehouse-proxy/gatehouse/staticfile"
)

// Deps are the long-lived parts a Runtime is built from: created once per
// process in cmd and handed to every Build, so state that must outlive a
// reload (backend health, access log files, live tunnels) is not reset.
type Deps struct {
	Logger     *slog.Logger
	Metrics    *Metrics
	Backends   *balancer.Registry
	AccessLogs *accesslog.Logs
	// Zones keeps rate-limit buckets across reloads; nil: a new set.
	Zones *ratelimit.Zones
	// Files keeps file routes' servers (and their open-file caches)
	// across reloads; nil: a set of the Runtime's own.
	Files *staticfile.Servers
	// Jail, when set, receives strikes (rate-limit rejections, configured
	// statuses) and bans clients; the listeners refuse banned ones.
	Jail *ratelimit.Jail
	// Encoders caps the stateful compression encoders in use at once
	// across every generation ([compression] max_encoders, read at
	// start); nil: a cap of the Runtime's own, of max_encoders.
	Encoders *compress.EncoderLimit
	// Resolver resolves upstream servers given by name; nil means the
	// system resolver.
	Resolver balancer.Resolver
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Runtime is one compiled configuration generation: sites, routes, upstream
// pools with their transports and health checkers. It is immutable once
// built; Edge swaps whole Runtimes.
//
// Runtime stores the context of its generation (the only struct that
// does): background goroutines (health checks, DNS re-resolution) run
// under it and stop when the generation is closed.
type Runtime struct {
	cfg   *config.Config
	deps  Deps
	log   *slog.Logger
	sites []*site
	// hosts finds a host's site: exact names, "*.example.com" wildcards,
	// the default site.
	hosts     routing.Hosts[*site]
	trusted   []netip.Prefix
	httpsPort string // for redirects; "" when there is no https listener

	upstreams     map[string]*upstream
	upstreamNames []string
	files         []*staticfile.Server // file servers held, given back at release

	// comp compresses the responses of routes with compress on.
	comp *compress.Compressor
	// compMinLength is [compression] min_length, at least 1; compMaxFile
	// is max_file_size.
	compMinLength int
	compMaxFile   int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

type site struct {
	cfg    *config.Site
	routes []*route // longest path first
	paths  routing.Prefixes[*route]
	log    *accessLog // nil: access log off
	// hstsValue is the precomputed Strict-Transport-Security value.
	hstsValue []string
	// origins allowed for WebSocket upgrades when a route lists none.
	defaultOrigins map[string]bool
	// pages are the error page files by status.
	pages map[int]*errorpage.Page
	// respRules are the site's response header rules (responses that
	// no route answers).
	respRules respRules
	// internal are the internal file routes, longest prefix first
	// (X-Accel-Redirect targets).
	internal routing.Prefixes[*route]
}

type route struct {
	cfg      *config.Route
	site     *site
	upstream *upstream          // nil: a file route without fallback
	files    *staticfile.Server // nil: not a file route
	metrics  *proxymetrics.Route
	// respRules and reqRules are the site's header rules followed by
	// the route's.
	respRules respRules
	reqRules  reqRules
	// headerTimeout is the upstream's response-header timeout, or this
	// route's own; readTimeout likewise for the body gap (0: none).
	headerTimeout time.Duration
	readTimeout   time.Duration
	origins       wsproxy.Origins // WebSocket upgrades' Origin policy
	zones         []*routeZone
	// comp is the generation's Compressor, or nil where compress is off.
	comp *compress.Compressor
}

type upstream struct {
	cfg        *config.Upstream
	pool       *balancer.Pool
	client     upstreamClient
	failOn     [6]bool // failOn[i] is true when status 500+i counts as a failure
	failMap    map[int]bool
	healthHost string
}

// Build compiles cfg into a Runtime. It does all the work that can fail
// (pools, transports, files) before anything is started; on error nothing
// of the new generation is left running. Background work starts with
// Start. ctx bounds the build only (initial DNS lookups).
func Build(ctx context.Context, cfg *config.Config, d Deps) (*Runtime, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil, "")
	}
	if d.Backends == nil {
		d.Backends = balancer.NewRegistry()
	}
	if d.AccessLogs == nil {
		d.AccessLogs = accesslog.New()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Zones == nil {
		d.Zones = ratelimit.NewZones()
	}
	if d.Files == nil {
		d.Files = staticfile.NewServers()
	}
	rt := &Runtime{
		cfg:       cfg,
		deps:      d,
		log:       d.Logger,
		trusted:   cfg.TrustedProxies,
		upstreams: map[string]*upstream{},
	}
	if cfg.HTTPS != nil {
		if _, p, err := net.SplitHostPort(cfg.HTTPS.Address); err == nil {
			rt.httpsPort = p
		}
	}
	limit := d.Encoders
	if limit == nil {
		limit = compress.NewEncoderLimit(cfg.Compression.MaxEncoders)
	}
	comp, err := newCompressor(cfg.Compression, limit)
	if err != nil {
		return nil, fmt.Errorf("compression: %w", err)
	}
	rt.comp, rt.compMinLength, rt.compMaxFile = comp, max(cfg.Compression.MinLength, 1), cfg.Compression.MaxFileSize
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			rt.release()
		}
	}()

	for _, name := range sortedNames(cfg.Upstreams) {
		u, err := rt.buildUpstream(ctx, cfg.Upstreams[name])
		if err != nil {
			return nil, fmt.Errorf("upstreams.%s: %w", name, err)
		}
		rt.upstreams[name] = u
		rt.upstreamNames = append(rt.upstreamNames, name)
	}
	idHeader := ""
	if cfg.RequestID.Enabled {
		idHeader = cfg.RequestID.Header
	}
	for _, sc := range cfg.Sites {
		s := &site{cfg: sc, defaultOrigins: map[string]bool{}, pages: map[int]*errorpage.Page{},
			respRules: compileResponse(sc.ResponseHeaders)}
		for code, b := range sc.ErrorPages {
			s.pages[code] = errorpage.FromFile(b)
		}
		if sc.HSTS != "" {
			s.hstsValue = []string{sc.HSTS}
		}
		for _, h := range sc.Hosts {
			key := h
			if c, ok := hostname.Canonical(h); ok && !strings.HasPrefix(h, "*.") {
				key = c // an IPv6 address in canonical form
			}
			rt.hosts.Add(key, s)
			s.defaultOrigins[h] = true
		}
		if sc.AccessLog.Path != "" {
			l, err := d.AccessLogs.Open(sc.AccessLog.Path, sc.AccessLog.Format)
			if err != nil {
				return nil, fmt.Errorf("sites.%s.access_log: %w", sc.Name, err)
			}
			s.log = &accessLog{l}
		}
		for _, rc := range sc.Routes {
			r := &route{cfg: rc, site: s, metrics: d.Metrics.ForRoute(sc.Name, rc.Path, rc.Upstream),
				respRules: compileResponse(sc.ResponseHeaders, rc.ResponseHeaders),
				reqRules:  compileRequest(idHeader, sc.RequestHeaders, rc.RequestHeaders),
				origins:   wsproxy.NewOrigins(rc.WebSocket.Origins, s.defaultOrigins)}
			if rc.Compress {
				r.comp = rt.comp
			}
			if rc.Files != nil {
				fs, err := rt.fileServer(rc)
				if err != nil {
					return nil, fmt.Errorf("sites.%s: route %s: %w", sc.Name, rc.Path, err)
				}
				r.files = fs
				if rc.Internal {
					s.internal.Add(rc.Path, rc.CaseInsensitive, r)
				}
			}
			if err := rt.buildZones(r); err != nil {
				return nil, fmt.Errorf("sites.%s: route %s: %w", sc.Name, rc.Path, err)
			}
			s.routes = append(s.routes, r)
			s.paths.Add(rc.Path, rc.CaseInsensitive, r)
			if rc.Upstream == "" {
				continue
			}
			u := rt.upstreams[rc.Upstream]
			if u == nil {
				return nil, fmt.Errorf("sites.%s: route %s: unknown upstream %q", sc.Name, rc.Path, rc.Upstream)
			}
			r.upstream, r.headerTimeout, r.readTimeout = u, u.cfg.ResponseHeaderTimeout, u.cfg.ReadTimeout
			if rc.ResponseHeaderTimeout > 0 {
				r.headerTimeout = rc.ResponseHeaderTimeout
			}
			if rc.ReadTimeoutSet {
				r.readTimeout = rc.ReadTimeout
			}
			if u.healthHost == "" && len(sc.Hosts) > 0 && !strings.HasPrefix(sc.Hosts[0], "*.") {
				u.healthHost = sc.Hosts[0]
			}
		}
		rt.sites = append(rt.sites, s)
		if cfg.DefaultSite == sc {
			rt.hosts.SetDefault(s)
		}
	}
	// Zones no longer configured here (gone, or now of scope cluster)
	// are forgotten.
	d.Zones.Keep(func(name string) bool {
		z, ok := cfg.Zones[name]
		return ok && z.Scope != config.ScopeCluster
	})
	ok = true
	return rt, nil
}

func (rt *Runtime) buildUpstream(ctx context.Context, uc *config.Upstream) (*upstream, error) {
	u := &upstream{cfg: uc, failMap: map[int]bool{}}
	for _, s := range uc.FailStatuses {
		u.failMap[s] = true
		if s >= 500 && s <= 505 {
			u.failOn[s-500] = true
		}
	}
	opts := balancer.Options{
		Name:            uc.Name,
		Policy:          uc.Policy,
		MaxFails:        uc.MaxFails,
		FailTimeout:     uc.FailTimeout,
		QueueSize:       uc.QueueSize,
		QueueTimeout:    uc.QueueTimeout,
		SlowStart:       uc.SlowStart,
		Resolver:        rt.deps.Resolver,
		ResolveInterval: uc.ResolveInterval,
		Now:             rt.deps.Now,
		OnStateChange: func(upstream, server string, up bool, reason string) {
			state := "down"
			if up {
				state = "up"
			}
			rt.log.Warn("upstream server "+state, "upstream", upstream, "server", server, "reason", reason)
		},
		OnResolveError: func(upstream, server string, err error) {
			rt.log.Warn("upstream server lookup failed; keeping the last addresses", "upstream", upstream, "server", server, "err", err)
		},
	}
	if uc.Sticky != nil {
		opts.StickySecret = []byte(uc.Sticky.Secret)
	}
	if uc.Health != nil {
		opts.Rise, opts.Fall, opts.StartDown = uc.Health.Rise, uc.Health.Fall, uc.Health.StartDown
	}
	for _, s := range uc.Servers {
		opts.Servers = append(opts.Servers, balancer.Server{
			Name: s.Name, Host: s.Host, Port: s.Port, Weight: s.Weight,
			Backup: s.Backup, MaxConns: s.MaxConns, Drain: s.Drain,
		})
	}
	p, err := balancer.New(rt.deps.Backends, opts)
	if err != nil {
		return nil, err
	}
	u.pool = p
	if p.NeedsResolve() {
		// Resolve once now so the first request has somewhere to go; a
		// failure is not fatal (the name may appear later, as a container
		// that is still starting), Run keeps trying.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := p.Resolve(rctx); err != nil {
			rt.log.Warn("upstream lookup failed at load; will retry", "upstream", uc.Name, "err", err)
		}
		cancel()
	}
	u.client = rt.newClient(uc, uc.Keepalive)
	return u, nil
}

// upstreamClient is what the proxy needs of an upstream's HTTP client,
// either implementation of package upstream.
type upstreamClient interface {
	Do(ctx context.Context, req *uhttp.Request) (*http.Response, error)
	http.RoundTripper
	Close()
}

// newClient builds the configured client of an upstream, keeping at most
// keepalive idle connections per server.
func (rt *Runtime) newClient(uc *config.Upstream, keepalive int) upstreamClient {
	unsolicited := rt.deps.Metrics.Unsolicited.WithLabelValues(uc.Name)
	o := uhttp.Options{
		ConnectTimeout: uc.ConnectTimeout,
		MaxIdle:        keepalive,
		IdleTimeout:    uc.KeepaliveTimeout,
		Now:            rt.deps.Now,
		OnUnsolicited:  func(string) { unsolicited.Inc() },
		OnResend: func(addr string, err error) {
			rt.log.Debug("upstream connection closed before any response byte; request sent once more on a new connection",
				"upstream", uc.Name, "server", addr, "err", err)
		},
	}
	return newUpstreamClient(uc.Client, o)
}

// newUpstreamClient is a client of kind (config.ClientGatehouse or
// config.ClientNetHTTP).
func newUpstreamClient(kind string, o uhttp.Options) upstreamClient {
	if kind == config.ClientNetHTTP {
		return uhttp.NewNetHTTP(o)
	}
	return uhttp.New(o)
}

// Start launches the generation's background work: DNS re-resolution,
// active health checks and the reaping of idle upstream connections. They
// stop when Close is called.
func (rt *Runtime) Start() {
	for _, name := range rt.upstreamNames {
		u := rt.upstreams[name]
		if u.pool.NeedsResolve() {
			rt.goLoop("resolve", name, func(ctx context.Context) { u.pool.Run(ctx) })
		}
		if u.cfg.Health != nil {
			rt.goLoop("health", name, newHealthChecker(rt, u).Run)
		}
		if r, ok := u.client.(interface{ Run(context.Context) }); ok {
			rt.goLoop("reap", name, r.Run)
		}
	}
}

// loopRestartDelay is how long goLoop waits before it restarts a loop that
// panicked: a loop that panics at once every time must not spin.
const loopRestartDelay = time.Second

// goLoop runs a background loop owned by this generation (kind "health",
// "resolve" or "reap" of an upstream). A panic in it is logged as an
// error with its stack, counted in gatehouse_background_panics_total, and
// the loop restarted after loopRestartDelay: health checks that died
// silently would leave every server's state frozen. The loop ends, and is
// not restarted, when the generation is closed.
func (rt *Runtime) goLoop(kind, upstreamName string, f func(ctx context.Context)) {
	panics := rt.deps.Metrics.LoopPanics.WithLabelValues(kind, upstreamName)
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		supervise.Run(rt.ctx, loopRestartDelay, f, func(v any, stack []byte) {
			panics.Inc()
			rt.log.Error("background loop panicked; restarting it", "loop", kind, "upstream", upstreamName,
				"panic", fmt.Sprint(v), "stack", string(stack))
		})
	}()
}

// Close stops the generation's background work, waits for it, and
// releases its pools and idle upstream connections. Requests still in
// flight on it finish normally.
func (rt *Runtime) Close() {
	rt.closed.Do(func() {
		rt.cancel()
		rt.wg.Wait()
		rt.release()
	})
}

func (rt *Runtime) release() {
	rt.cancel()
	for _, f := range rt.files {
		rt.deps.Files.Put(f)
	}
	rt.files = nil
	for _, u := range rt.upstreams {
		u.pool.Close()
		if u.client != nil {
			u.client.Close()
		}
	}
}

// Config returns the configuration the runtime was built from.
func (rt *Runtime) Config() *config.Config { return rt.cfg }

// Pool returns the balancer pool of the named upstream.
func (rt *Runtime) Pool(name string) *balancer.Pool {
	if u := rt.upstreams[name]; u != nil {
		return u.pool
	}
	return nil
}

// Pools returns every upstream pool by name.
func (rt *Runtime) Pools() map[string]*balancer.Pool {
	out := make(map[string]*balancer.Pool, len(rt.upstreams))
	for n, u := range rt.upstreams {
		out[n] = u.pool
	}
	return out
}

// HostAllowed reports whether some site claims host (TLS host policy:
// certificates are never requested for anything else). The default site
// answers unknown Hosts but claims no extra names. host is judged as a
// request's Host is (see hostname.Canonical): "Secret.Test." is secret.test.
func (rt *Runtime) HostAllowed(host string) bool {
	h, ok := hostname.Canonical(host)
	if !ok {
		return false
	}
	_, ok = rt.hosts.Claiming(h)
	return ok
}

// siteFor finds the site serving a host in hostname.Canonical's form: the
// one claiming it, else the default site.
func (rt *Runtime) siteFor(host string) *site { return rt.hosts.Lookup(host) }

// match returns the route of a normalised, decoded path (reqpath.Normalize's
// match form): the longest prefix, compared with case unless the route
// has case_insensitive.
func (s *site) match(path string) *route {
	r, _ := s.paths.Match(path)
	return r
}

var errNoBackend = errors.New("no upstream server available")

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
