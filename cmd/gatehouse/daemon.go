package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/gatehouse-proxy/gatehouse/internal/statuspage"
	"github.com/gatehouse-proxy/gatehouse/proxy"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
	"github.com/gatehouse-proxy/gatehouse/staticfile"
	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (TOML); empty: the embedded development config")
	stateDir := fs.String("state-dir", "", "state directory (certificates, staples, bans); overrides the config and $STATE_DIRECTORY")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gatehouse run [-config FILE] [-state-dir DIR]

Serves until SIGTERM or SIGINT; SIGHUP reloads the config. Without -config:
$CONFIGURATION_DIRECTORY/gatehouse.toml when systemd sets it, else the
embedded development config (HTTP 127.0.0.1:8080, HTTPS 127.0.0.1:8443,
Daphne on 127.0.0.1:8000).`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	src := source{path: *cfgPath, stateDir: *stateDir}
	return serve(ctx, src, stderr, nil)
}

func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// source says where configurations come from; reload reads it again.
type source struct {
	path     string
	stateDir string
	// embedded is used when path is empty (run without -config, demo).
	embedded []byte
}

func (s source) load() (*config.Config, error) {
	cfg, _, _, err := s.loadHashed()
	return cfg, err
}

// loadHashed is load that also returns the file read (empty for the
// embedded configuration) and the SHA-256 of the bytes parsed, for the
// status page.
func (s source) loadHashed() (cfg *config.Config, path, hash string, err error) {
	if s.path == "" && s.embedded == nil {
		// systemd's ConfigurationDirectory= (the unit passes -config too).
		if dir, _, _ := strings.Cut(os.Getenv("CONFIGURATION_DIRECTORY"), ":"); dir != "" {
			if p := filepath.Join(dir, "gatehouse.toml"); fileExists(p) {
				s.path = p
			}
		}
	}
	if s.path != "" {
		// config.Load, with the bytes kept for the hash.
		var b []byte
		if b, err = config.ReadFile(s.path, config.FileRule{MaxBytes: config.MaxConfigFileSize}); err == nil {
			hash = configHash(b)
			cfg, err = config.ParseFile(b, s.path)
		}
	} else {
		b := s.embedded
		if b == nil {
			b = config.DefaultTOML()
		}
		hash = configHash(b)
		cfg, err = config.Parse(b)
	}
	if err != nil {
		return nil, "", "", err
	}
	switch {
	case s.stateDir != "":
		cfg.StateDir = s.stateDir
	case cfg.StateDirSet:
	case os.Getenv("STATE_DIRECTORY") != "":
		// systemd's StateDirectory= (may list several, colon-separated).
		cfg.StateDir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	case s.path == "":
		// Development without a config file: a per-user directory.
		if d, err := os.UserCacheDir(); err == nil {
			cfg.StateDir = filepath.Join(d, "gatehouse")
		}
	}
	return cfg, s.path, hash, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// daemon is one running Gatehouse: the long-lived parts created once, and
// the listeners.
type daemon struct {
	log     *slog.Logger
	src     source
	reg     *prometheus.Registry
	metrics *proxy.Metrics
	conns   *edgeserver.Metrics
	tls     *tlsedge.Manager
	edge    *proxy.Edge
	deps    proxy.Deps
	notify  *notifier
	jail    *ratelimit.Jail
	cluster *clusterParts            // nil without [cluster]
	limits  []*ratelimit.ConnLimiter // per public listener
	bgStop  context.CancelFunc       // background loops owned by the daemon
	bg      sync.WaitGroup

	mu      sync.Mutex // serialises reloads
	cfg     *config.Config
	servers []*edgeserver.Server
	admin   *http.Server
	// adminAddr is the bound admin address.
	adminAddr string
	ready     bool
	// adminPolicy is what the admin request parser takes from the current
	// config (token, accepted Host names); read without d.mu so that the
	// admin listener never waits for a reload.
	adminPolicy atomic.Pointer[adminPolicy]
	// csrf is the per-process token the status page embeds and tokenless
	// state changes must send back (see checkAdminRequest).
	csrf string
	// reloadState is the outcome of the last configuration load, for the
	// status page.
	reloadState atomic.Pointer[statuspage.Reload]
}

// serve runs the daemon until ctx ends or a termination signal arrives.
// started, when set, is called once the listeners are up (tests).
func serve(ctx context.Context, src source, stderr io.Writer, started func(*daemon)) int {
	cfg, path, hash, err := src.loadHashed()
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse: %v\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	// Signals are caught before the listeners open: a SIGHUP sent as soon
	// as one is seen listening (systemctl reload right after start) waits
	// for the loop below instead of killing the process (SIGHUP's default).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	d := &daemon{log: log, src: src, notify: newNotifier(), csrf: rand.Text()}
	d.noteLoad(time.Now(), path, hash, nil)
	if err := d.start(cfg); err != nil {
		log.Error("start failed", "err", err)
		d.stopAll()
		return 1
	}
	if started != nil {
		started(d)
	}

	d.notify.send("READY=1\nSTATUS=serving")
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				d.reload()
			case syscall.SIGUSR1:
				if err := d.deps.AccessLogs.Reopen(); err != nil {
					log.Error("reopening access logs", "err", err)
				} else {
					log.Info("access logs reopened")
				}
			default:
				log.Info("shutting down", "signal", s.String(), "grace", d.cfg.GracePeriod.String())
				return d.shutdown()
			}
		}
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.Level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// start builds everything and opens the listeners.
func (d *daemon) start(cfg *config.Config) error {
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return err
	}
	warnings, _ := checkFiles(cfg)
	for _, w := range warnings {
		d.log.Warn("loose file permissions", "problem", w.Error())
	}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = proxy.NewMetrics(d.reg, getVersion())
	d.conns = edgeserver.NewMetrics(d.reg)
	d.edge = proxy.NewEdge(proxy.EdgeOptions{Logger: d.log, Metrics: d.metrics})
	var storage certmagic.Storage // nil: tlsedge's file storage
	if cfg.Cluster != nil {
		c, err := d.newCluster(cfg)
		if err != nil {
			return err
		}
		d.cluster = c
		if c.storage != nil {
			storage = c.storage
		}
	}
	tm, err := tlsedge.New(tlsedge.Options{
		Storage:    storage,
		StateDir:   cfg.StateDir,
		StorageDir: cfg.ACME.StorageDir,
		Logger:     d.log,
		Registerer: d.reg,
		HostPolicy: func(ctx context.Context, host string) error {
			if rt := d.edge.Runtime(); rt != nil && rt.HostAllowed(host) {
				return nil
			}
			return fmt.Errorf("host %q is not configured", host)
		},
	})
	if err != nil {
		return err
	}
	d.tls = tm
	d.deps = proxy.Deps{
		Logger:     d.log,
		Metrics:    d.metrics,
		Backends:   balancer.NewRegistry(),
		AccessLogs: accesslog.New(),
		Zones:      ratelimit.NewZones(),
		Files:      staticfile.NewServers(),
		// One cap on compression encoders for the whole process: every
		// route of every generation shares it, so a reload does not
		// double it while the old generation's streams drain.
		Encoders: compress.NewEncoderLimit(cfg.Compression.MaxEncoders),
	}
	encoders := d.deps.Encoders
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_compression_encoders_in_use",
		Help: "Stateful compression encoders held by responses now (at most [compression] max_encoders).",
	}, func() float64 { return float64(encoders.InUse()) }))
	if d.cluster != nil {
		d.deps.Zones = ratelimit.NewClusterZones(d.cluster.node.Limiter())
	}
	bgCtx, stop := context.WithCancel(context.Background())
	d.bgStop = stop
	if d.cluster != nil {
		d.goBackground(func() { d.cluster.node.Run(bgCtx) })
	}
	if cfg.Ban.Enabled {
		var peers ratelimit.JailPeers
		if d.cluster != nil {
			peers = d.cluster.bans
		}
		d.jail = ratelimit.NewJail(ratelimit.JailOptions{
			Peers:    peers,
			MaxRetry: cfg.Ban.MaxRetry,
			FindTime: cfg.Ban.FindTime,
			BanTime:  cfg.Ban.BanTime,
			MaxBans:  cfg.Ban.MaxBans,
			Path:     filepath.Join(cfg.StateDir, "bans.json"),
			Logger:   d.log,
			OnEvent: func(ev ratelimit.Event) {
				d.metrics.BanEvent(ev.Kind)
				if ev.Origin != "" {
					d.log.Warn("client "+ev.Kind, "addr", ev.Key.String(), "reason", ev.Reason, "until", ev.Until, "by", ev.Origin)
					return
				}
				d.log.Warn("client "+ev.Kind, "addr", ev.Key.String(), "reason", ev.Reason, "until", ev.Until, "strikes", ev.Strikes)
			},
		})
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return err
		}
		if err := d.jail.Load(); err != nil {
			// A damaged file must not keep the edge down: start with the
			// bans that could be read (the file is kept aside) and say so
			// loudly.
			d.log.Error("bans file damaged; starting with the bans that could be read", "err", err)
		}
		d.deps.Jail = d.jail
		d.goBackground(func() {
			// Run's last write, at shutdown, holds every ban still
			// waiting for its batched write.
			if err := d.jail.Run(bgCtx); err != nil {
				d.log.Error("saving bans at shutdown", "err", err)
			}
		})
		if d.cluster != nil {
			d.goBackground(func() { d.cluster.bans.Run(bgCtx, d.jail) })
		}
	}
	d.goBackground(func() { d.deps.Zones.RunMaintenance(bgCtx, time.Minute) })
	if err := d.apply(cfg); err != nil {
		return err
	}
	d.metrics.ReloadResult(true, time.Now())
	d.goBackground(func() {
		if err := tm.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("certificate manager stopped", "err", err)
		}
	})
	return d.listen(cfg)
}

// apply builds a complete new generation from cfg and swaps it in. On any
// error nothing changes: the old configuration keeps serving.
func (d *daemon) apply(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := tlsConfigOf(cfg)
	if err != nil {
		return err
	}
	if cfg.ACME.RenewBeforeSet {
		d.log.Warn("acme.renew_before is no longer used: renewal follows the CA's ARI window, else acme.renew_ratio (a third of the lifetime left by default); remove it")
	}
	rt, err := proxy.Build(ctx, cfg, d.deps)
	if err != nil {
		return err
	}
	if err := d.tls.Update(tc); err != nil {
		rt.Close()
		return err
	}
	rt.Start()
	for i, l := range []*config.Listener{cfg.HTTP, cfg.HTTPS} {
		if l != nil && i < len(d.limits) {
			d.limits[i].SetLimits(cfg.Limits.ConnPerIP, l.MaxConns)
		}
	}
	old := d.edge.Swap(rt)
	if old != nil {
		old.Close()
	}
	d.cfg = cfg
	d.adminPolicy.Store(newAdminPolicy(cfg.Admin, d.csrf))
	if d.cluster != nil {
		d.cluster.node.SetConfigHash(clusterConfigHash(cfg))
	}
	return nil
}

// reload re-reads the config (SIGHUP). A bad config is logged with every
// problem, counted, and the old one keeps serving.
func (d *daemon) reload() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer d.notify.send("READY=1")
	cfg, path, hash, err := d.src.loadHashed()
	if err == nil {
		err = d.apply(cfg)
	}
	d.noteLoad(time.Now(), path, hash, err)
	if err != nil {
		d.metrics.ReloadResult(false, time.Now())
		d.log.Error("reload failed; the previous configuration is still serving", "err", err)
		return
	}
	if keys := restartOnly(d.cfg, cfg); len(keys) > 0 {
		d.log.Warn("some changed settings take effect only at the next restart", "keys", strings.Join(keys, ", "))
	}
	d.metrics.ReloadResult(true, time.Now())
	d.log.Info("configuration reloaded", "sites", len(cfg.Sites), "upstreams", len(cfg.Upstreams))
}

// restartOnly lists the settings b changes that a reload does not apply
// (they are read when the listeners, the jail or the logger are created).
func restartOnly(a, b *config.Config) []string {
	// Everything of a listener but max_conns (applied on reload).
	l := func(l *config.Listener) string {
		if l == nil {
			return ""
		}
		c := *l
		c.MaxConns = 0
		return fmt.Sprintf("%+v", c)
	}
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(l(a.HTTP) != l(b.HTTP), "listeners.http")
	add(l(a.HTTPS) != l(b.HTTPS), "listeners.https")
	add(a.Admin.Address != b.Admin.Address || a.Admin.Pprof != b.Admin.Pprof, "listeners.admin")
	add(a.Timeouts.ClientHeader != b.Timeouts.ClientHeader, "timeouts.client_header")
	add(a.Timeouts.Keepalive != b.Timeouts.Keepalive, "timeouts.keepalive")
	add(a.Limits.MaxHeaderBytes != b.Limits.MaxHeaderBytes, "limits.max_header_bytes")
	add(a.Limits.HTTP2MaxStreams != b.Limits.HTTP2MaxStreams, "limits.http2_max_streams")
	add(a.Limits.HTTP2MaxResets != b.Limits.HTTP2MaxResets, "limits.http2_max_resets")
	add(a.Limits.IPv6Prefix != b.Limits.IPv6Prefix, "limits.ipv6_prefix")
	add(!sameBan(a.Ban, b.Ban), "ban")
	add(a.Log != b.Log, "log")
	add(a.StateDir != b.StateDir, "state_dir")
	add(a.ACME.Storage != b.ACME.Storage || a.ACME.StorageDir != b.ACME.StorageDir, "acme.storage")
	add(a.Compression.MaxEncoders != b.Compression.MaxEncoders, "compression.max_encoders")
	add((a.Cluster == nil) != (b.Cluster == nil) || a.Cluster != nil && *a.Cluster != *b.Cluster, "cluster")
	return keys
}

func sameBan(a, b config.Ban) bool {
	return a.Enabled == b.Enabled && a.MaxRetry == b.MaxRetry && a.FindTime == b.FindTime && a.BanTime == b.BanTime && a.MaxBans == b.MaxBans
}

// maxTokenFileSize bounds a DNS credential file (tokens and TSIG
// secrets are well under 1 KiB).
const maxTokenFileSize = 64 << 10

// tlsConfigOf is the certificate part of cfg.
func tlsConfigOf(cfg *config.Config) (tlsedge.Config, error) {
	tc := tlsedge.Config{
		ACME: tlsedge.ACME{
			Email:        cfg.ACME.Email,
			DirectoryURL: cfg.ACME.Directory,
			HTTP01:       cfg.ACME.HTTP01,
			TLSALPN01:    cfg.ACME.TLSALPN01,
			Profile:      cfg.ACME.Profile,
			RenewRatio:   cfg.ACME.RenewRatio,
			DisableARI:   !cfg.ACME.ARI,
		},
	}
	if d := cfg.ACME.DNS; d != nil {
		td := &tlsedge.DNS{
			Provider: d.Provider, Server: d.Server, KeyName: d.KeyName, KeyAlgorithm: d.KeyAlgorithm,
			Command: d.Command, Resolvers: d.Resolvers,
			PropagationTimeout: d.PropagationTimeout, PropagationDelay: d.PropagationDelay,
		}
		if !d.PropagationCheck {
			td.PropagationTimeout = -1
		}
		switch {
		case d.TokenFile != "":
			// The credential lives outside the configuration: a regular
			// file (links followed), read at start and on every reload.
			b, err := config.ReadFile(d.TokenFile, config.FileRule{MaxBytes: maxTokenFileSize})
			if err != nil {
				return tc, fmt.Errorf("acme.dns.token_file: %w", err)
			}
			if td.Secret = bytes.TrimSpace(b); len(td.Secret) == 0 {
				return tc, fmt.Errorf("acme.dns.token_file: %s is empty", d.TokenFile)
			}
		case d.TokenEnv != "":
			v, ok := os.LookupEnv(d.TokenEnv)
			if v = strings.TrimSpace(v); !ok || v == "" {
				return tc, fmt.Errorf("acme.dns.token_env: $%s is not set or empty", d.TokenEnv)
			}
			td.Secret = []byte(v)
		}
		tc.ACME.DNS = td
	}
	if cfg.ACME.EABKeyID != "" {
		tc.ACME.EAB = &tlsedge.EAB{KeyID: cfg.ACME.EABKeyID, HMACKey: cfg.ACME.EABHMACKey}
	}
	if cfg.ACME.CARoots != "" {
		// Links are followed: /etc/ssl/certs is mostly links.
		pem, err := config.ReadFile(cfg.ACME.CARoots, config.FileRule{MaxBytes: config.MaxPEMFileSize})
		if err != nil {
			return tc, fmt.Errorf("acme.ca_roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return tc, fmt.Errorf("acme.ca_roots: no certificate in %s", cfg.ACME.CARoots)
		}
		tc.ACME.RootCAs = pool
	}
	if cfg.HTTPS == nil {
		return tc, nil
	}
	tc.DisableOCSP = !cfg.HTTPS.OCSPStapling
	for _, s := range cfg.Sites {
		switch s.TLS {
		case config.TLSACME:
			tc.ACMENames = append(tc.ACMENames, s.Hosts...)
			if s.ACMEProfile != "" || s.ACMEChallenge == "dns" {
				if tc.ACMEOverrides == nil {
					tc.ACMEOverrides = map[string]tlsedge.ACMEOverride{}
				}
				for _, h := range s.Hosts {
					tc.ACMEOverrides[h] = tlsedge.ACMEOverride{Profile: s.ACMEProfile, DNS01: s.ACMEChallenge == "dns"}
				}
			}
		case config.TLSFiles:
			// tlsedge reads these by path; refuse a FIFO or device here
			// first, so that neither check nor a reload can block on one.
			// Links are followed (certbot's live/ is links into archive/).
			for _, f := range [...]struct{ key, path string }{{"cert_file", s.CertFile}, {"key_file", s.KeyFile}} {
				if err := config.CheckFile(f.path, config.FileRule{MaxBytes: config.MaxPEMFileSize}); err != nil {
					return tc, fmt.Errorf("sites.%s.%s: %w", s.Name, f.key, err)
				}
			}
			tc.Files = append(tc.Files, tlsedge.FilePair{CertFile: s.CertFile, KeyFile: s.KeyFile})
		case config.TLSSelfSigned:
			tc.SelfSigned = append(tc.SelfSigned, s.Hosts...)
		default:
			continue
		}
		tc.Names = append(tc.Names, s.Hosts...)
		if cfg.DefaultSite == s && len(s.Hosts) > 0 && !strings.HasPrefix(s.Hosts[0], "*.") {
			// Clients without SNI (IP-address URLs) get the default site's
			// certificate.
			tc.DefaultName = s.Hosts[0]
		}
	}
	return tc, nil
}

func policyOf(l *config.Listener) tlsedge.Policy {
	p := tlsedge.Policy{
		MinVersion:       l.MinVersion,
		MaxVersion:       l.MaxVersion,
		CipherSuites:     l.CipherSuites,
		CurvePreferences: l.Curves,
		SessionTickets:   l.SessionTickets,
	}
	if !l.HTTP2 {
		p.NextProtos = []string{"http/1.1"}
	}
	return p
}

// listen opens the public and admin listeners and starts serving.
func (d *daemon) listen(cfg *config.Config) error {
	common := edgeserver.ServerOptions{
		Logger:            d.log,
		Metrics:           d.conns,
		HandshakeTimeout:  cfg.Timeouts.ClientHeader,
		ReadHeaderTimeout: cfg.Timeouts.ClientHeader,
		IdleTimeout:       cfg.Timeouts.Keepalive,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		HTTP2MaxStreams:   cfg.Limits.HTTP2MaxStreams,
		HTTP2MaxResets:    cfg.Limits.HTTP2MaxResets,
		SendTimeout:       cfg.Timeouts.Send,
	}
	if cfg.HTTP != nil {
		ln, err := d.publicListener(cfg, cfg.HTTP, "http")
		if err != nil {
			return err
		}
		o := common
		o.Name, o.Listener = "http", ln
		o.Handler = d.tls.HTTPHandler(d.edge)
		d.startServer(edgeserver.NewServer(o))
	}
	if cfg.HTTPS != nil {
		ln, err := d.publicListener(cfg, cfg.HTTPS, "https")
		if err != nil {
			return err
		}
		o := common
		o.Name, o.Listener = "https", ln
		o.Handler = d.edge
		o.TLSConfig = d.tls.TLSConfig(policyOf(cfg.HTTPS))
		o.HTTP2 = cfg.HTTPS.HTTP2
		o.OnHandshakeError = d.tls.ObserveHandshakeError
		if _, port, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			d.edge.SetHTTPSPort(port)
		}
		d.startServer(edgeserver.NewServer(o))
	}
	if cfg.Admin.Address != "" {
		ln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			return fmt.Errorf("listeners.admin: %w", err)
		}
		d.admin = &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		d.adminAddr = ln.Addr().String()
		d.log.Info("listening", "listener", "admin", "addr", d.adminAddr)
		go d.admin.Serve(ln)
	}
	if d.cluster != nil {
		bound := map[string]string{}
		for _, s := range d.servers {
			bound[s.Name()] = s.Addr().String()
		}
		d.cluster.node.SetListeners(bound)
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	return nil
}

// publicListener opens a public listener behind the abuse gates: bans
// and connection caps are checked at accept, before any TLS byte, and
// PROXY protocol is parsed where configured (refused elsewhere).
func (d *daemon) publicListener(cfg *config.Config, l *config.Listener, name string) (net.Listener, error) {
	// TCP keep-alive on with the kernel's timers and one setsockopt per
	// connection (Go's default sets four), as nginx's so_keepalive=on:
	// dead WebSocket clients are found by the route's ping_interval.
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}}
	ln, err := lc.Listen(context.Background(), "tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("listeners.%s: %w", name, err)
	}
	conns := ratelimit.NewConnLimiter(cfg.Limits.ConnPerIP, l.MaxConns)
	d.limits = append(d.limits, conns)
	o := edgeserver.ListenerOptions{
		Conns:         conns,
		V6Bits:        cfg.Limits.IPv6Prefix,
		ProxyProtocol: l.ProxyProtocol,
		Logger:        d.log,
		OnRefuse: func(k ratelimit.Key, reason string) {
			d.conns.ConnRefused(name, reason)
			if reason == ratelimit.ReasonPerKey && d.jail != nil {
				d.jail.RecordAt(k, "conn_limit", time.Now())
			}
		},
	}
	if d.jail != nil {
		o.Jail = d.jail
	}
	return edgeserver.NewListener(ln, o), nil
}

func (d *daemon) startServer(s *edgeserver.Server) {
	d.servers = append(d.servers, s)
	d.log.Info("listening", "listener", s.Name(), "addr", s.Addr().String())
	go func() {
		if err := s.Serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("listener stopped", "listener", s.Name(), "err", err)
		}
	}()
}

// shutdown stops accepting, lets in-flight requests finish within the
// grace period while WebSocket tunnels get a 1001 Close, then exits 0.
func (d *daemon) shutdown() int {
	d.notify.send("STOPPING=1")
	grace := d.cfg.GracePeriod
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.mu.Lock()
	d.ready = false
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range d.servers {
		wg.Add(1)
		go func(s *edgeserver.Server) {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				d.log.Warn("grace period over; closing remaining connections", "err", err)
			}
		}(s)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.edge.ShutdownTunnels(ctx); err != nil {
			d.log.Warn("websocket tunnels did not close in time", "err", err)
		}
	}()
	wg.Wait()
	d.stopAll()
	d.log.Info("stopped")
	return 0
}

// goBackground runs a loop owned by the daemon until stopAll.
func (d *daemon) goBackground(f func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		f()
	}()
}

func (d *daemon) stopAll() {
	if d.bgStop != nil {
		d.bgStop()
		d.bg.Wait()
	}
	if d.cluster != nil {
		d.cluster.node.Close()
	}
	if d.admin != nil {
		d.admin.Close()
	}
	if d.edge != nil {
		if rt := d.edge.Swap(nil); rt != nil {
			rt.Close()
		}
		d.edge.Close()
	}
	if d.deps.AccessLogs != nil {
		d.deps.AccessLogs.Close()
	}
}

// adminHandler serves the loopback admin listener.
func (d *daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		ready := d.ready && d.edge.Runtime() != nil
		d.mu.Unlock()
		if !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	d.adminControl(mux)
	d.adminStatus(mux)
	mux.HandleFunc("GET /cluster", d.adminCluster)
	if d.cfg.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return d.adminGuard(mux)
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}
