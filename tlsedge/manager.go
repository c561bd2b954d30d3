package tlsedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gatehouse-proxy/gatehouse/internal/ocspstaple"
	"github.com/gatehouse-proxy/gatehouse/internal/slogzap"
)

// DefaultPollInterval is how often [Manager.Run] looks at certificate files,
// OCSP staples and ACME certificates when Options.PollInterval is zero. Ten
// seconds makes a replaced certificate file live quickly while costing two
// stat calls per pair.
const DefaultPollInterval = 10 * time.Second

// Options configure a [Manager]. Only StateDir is required.
type Options struct {
	// StateDir is a persistent directory (created 0700; group and other
	// permissions are removed from an existing one) holding the ACME
	// storage (certmagic/, unless Storage is set), OCSP staples (ocsp/)
	// and the self-signed development certificate (selfsigned/), and
	// read for the autocert cache of earlier versions (acme/). Files are
	// 0600 and written atomically (temporary file, then rename).
	StateDir string
	// Storage holds ACME accounts, certificates, ARI data, challenge
	// tokens and the locks that let several instances share it (one
	// order per name between them). nil means a certmagic.FileStorage in
	// StateDir/certmagic (or StorageDir). It cannot change while the
	// Manager lives.
	Storage certmagic.Storage
	// StorageDir, when Storage is nil, is the directory of the file
	// storage; "" means StateDir/certmagic. Instances sharing it (a
	// shared volume) order each name once.
	StorageDir string
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Registerer receives the package's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// HostPolicy is an extra gate for ACME names, consulted on every
	// ACME-backed handshake and before any order; nil allows every name in
	// the current Config.ACMENames. It must be cheap.
	HostPolicy func(ctx context.Context, host string) error
	// HTTPClient fetches OCSP responses. nil means a client with a 30 s
	// timeout. (certmagic's ACME client builds its own, trusting
	// ACME.RootCAs or the system roots.)
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now. It decides staple freshness,
	// certificate validity and the overdue-renewal warning. certmagic's
	// renewal decisions read the real clock.
	Now func() time.Time
	// RenewCheckInterval is how often certmagic's maintenance looks for
	// certificates due for renewal and ARI updates; 0 means certmagic's
	// default (10 minutes).
	RenewCheckInterval time.Duration
	// PollInterval is the period of [Manager.Run]'s maintenance pass;
	// 0 means [DefaultPollInterval].
	PollInterval time.Duration
	// TicketRotation is how often session ticket keys rotate when a
	// [Policy] enables tickets; 0 means [DefaultTicketRotation].
	TicketRotation time.Duration
}

// Manager serves, renews and staples certificates. It is created once per
// process; [Manager.Update] swaps in each configuration generation. All
// methods are safe for concurrent use.
type Manager struct {
	log        *slog.Logger
	now        func() time.Time
	stateDir   string
	hostPolicy func(ctx context.Context, host string) error
	stapler    *ocspstaple.Stapler
	poll       time.Duration
	rotation   time.Duration
	met        *metrics
	renewCheck time.Duration
	// storage is the ACME storage (Options.Storage or a FileStorage).
	storage certmagic.Storage
	// zlog is the zap logger certmagic writes to (into log).
	zlog *zap.Logger
	// issuerHook, set by tests, adjusts every ACME issuer before use.
	issuerHook func(*certmagic.ACMEIssuer)
	// kick asks Run for a maintenance pass now (capacity 1).
	kick chan struct{}

	// state is the current generation, replaced as a whole (never mutated).
	state atomic.Pointer[state]
	// lastACME is the most recent ACME instance, for certmagic's
	// maintenance of certificates after ACME left the configuration.
	lastACME atomic.Pointer[acmeInstance]
	// acmeCerts maps each ACME name to the entry (with its staple) of
	// the certificate it serves; replaced as a whole by
	// indexACME (under indexMu).
	acmeCerts atomic.Pointer[map[string]*entry]
	indexMu   sync.Mutex

	// cmMu guards the certmagic cache and the solver sentinel, created on
	// first use and stopped by Run.
	cmMu          sync.Mutex
	cm            *certmagic.Cache
	cmStopped     bool
	sentinel      net.Listener
	sentinelReady chan struct{} // signalled when sentinel is bound (capacity 1)

	// updateMu serialises writers of state: Update and the file poller.
	updateMu sync.Mutex
	// watch records the last seen (size, mtime) of each file pair; guarded
	// by updateMu.
	watch map[FilePair]fileSig

	// maintMu guards the maintenance-owned fields below.
	maintMu     sync.Mutex
	acmeSeen    map[string]acmeObserved  // name → last observed ACME certificate
	acmeFailing map[string]bool          // names whose last obtain or renewal failed
	managing    map[string]*acmeManaged  // names with a managing goroutine
	waiters     map[string]chan struct{} // names handshakes wait on for a first certificate
	wg          sync.WaitGroup           // managing and sentinel goroutines

	// tickets guards the configs that carry rotating session ticket keys.
	ticketsMu sync.Mutex
	tickets   []*ticketConfig
}

// fileSig is what the poller compares to notice a changed file pair.
type fileSig struct {
	certSize, keySize int64
	certMod, keyMod   time.Time
}

// entry is one loaded certificate. Everything but ocsp's staple is
// immutable after publication.
type entry struct {
	cert       *tls.Certificate // as loaded, never carries a staple
	leaf       *x509.Certificate
	src        string // file name, "self-signed" or "acme"
	mustStaple bool
	pair       FilePair // for files
	sum        [32]byte // sha256 of the PEM files, for the poller
	// ocsp holds the responder, the issuer and the current staple.
	ocsp *ocspstaple.Cert
}

// state is one published generation.
type state struct {
	cfg        Config
	files      []*entry
	selfSigned *entry
	exact      map[string]*entry // exact SAN → entry (files, then self-signed)
	wildcard   map[string]*entry // "*.example.com" → entry
	acmeNames  map[string]bool
	acmeWild   bool          // some ACME name is a wildcard
	acme       *acmeInstance // nil without ACME names
}

// New creates a Manager. It serves nothing until the first [Manager.Update].
func New(o Options) (*Manager, error) {
	if o.StateDir == "" {
		return nil, errors.New("tlsedge: state dir is required")
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsedge: state dir: %w", err)
	}
	// The directory holds private keys: an existing one loses its group
	// and other permissions.
	if fi, err := os.Stat(o.StateDir); err != nil {
		return nil, fmt.Errorf("tlsedge: state dir: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(o.StateDir, fi.Mode().Perm()&^0o077); err != nil {
			return nil, fmt.Errorf("tlsedge: state dir: %w", err)
		}
	}
	m := &Manager{
		log:           o.Logger,
		now:           o.Now,
		stateDir:      o.StateDir,
		hostPolicy:    o.HostPolicy,
		poll:          o.PollInterval,
		rotation:      o.TicketRotation,
		renewCheck:    o.RenewCheckInterval,
		storage:       o.Storage,
		kick:          make(chan struct{}, 1),
		sentinelReady: make(chan struct{}, 1),
		watch:         map[FilePair]fileSig{},
		acmeSeen:      map[string]acmeObserved{},
		acmeFailing:   map[string]bool{},
		managing:      map[string]*acmeManaged{},
		waiters:       map[string]chan struct{}{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.zlog = slogzap.New(m.log.Handler(), "certmagic")
	if m.storage == nil {
		dir := o.StorageDir
		if dir == "" {
			dir = filepath.Join(o.StateDir, "certmagic")
		}
		m.storage = &certmagic.FileStorage{Path: dir}
	}
	if m.now == nil {
		m.now = time.Now
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	m.stapler = ocspstaple.NewStapler(client, m.now)
	if m.poll <= 0 {
		m.poll = DefaultPollInterval
	}
	if m.rotation <= 0 {
		m.rotation = DefaultTicketRotation
	}
	empty := map[string]*entry{}
	m.acmeCerts.Store(&empty)
	met, err := newMetrics(m, o.Registerer)
	if err != nil {
		return nil, err
	}
	m.met = met
	return m, nil
}

// Update validates c completely and then makes it current. On error nothing
// changes and the previous certificates keep serving; the error joins every
// problem found. Update is cheap to call with an unchanged Config: the ACME
// client is kept when the ACME section is unchanged.
func (m *Manager) Update(c Config) error {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	now := m.now()
	c = normalize(c)
	p, err := prepare(c, now)
	if err != nil {
		return err
	}
	old := m.state.Load()
	var ss *entry
	if len(c.SelfSigned) > 0 {
		if old != nil && old.selfSigned != nil && coversAll(old.selfSigned, c.SelfSigned, now) {
			ss = old.selfSigned
		} else if ss, err = m.selfSigned(c.SelfSigned, now); err != nil {
			return err
		}
	}
	var inst *acmeInstance
	if len(c.ACMENames) > 0 {
		if old != nil && old.acme != nil && acmeEqual(old.cfg.ACME, c.ACME) && slices.Equal(groupKeys(&old.cfg), groupKeys(&c)) {
			inst = old.acme
		} else if inst, err = m.newACME(&c); err != nil {
			return err
		}
		m.lastACME.Store(inst)
	}
	// Carry staples over for unchanged certificates, load persisted ones
	// for new certificates.
	for _, e := range p.files {
		m.adoptStaple(e, old, now, c.DisableOCSP)
		if st, err := statPair(e.pair); err == nil {
			m.watch[e.pair] = st
		}
	}
	if ss != nil {
		m.adoptStaple(ss, old, now, c.DisableOCSP)
	}
	st := buildState(c, p.files, ss, inst)
	m.state.Store(st)
	m.kickRun()
	m.log.Info("tls configuration applied", "files", len(p.files), "acme_names", len(c.ACMENames), "self_signed", len(c.SelfSigned))
	return nil
}

// buildState indexes entries for SNI lookup.
func buildState(c Config, files []*entry, ss *entry, inst *acmeInstance) *state {
	st := &state{
		cfg: c, files: files, selfSigned: ss, acme: inst,
		exact: map[string]*entry{}, wildcard: map[string]*entry{}, acmeNames: map[string]bool{},
	}
	for _, e := range files {
		for _, n := range e.leaf.DNSNames {
			n = normName(n)
			if strings.HasPrefix(n, "*.") {
				if _, ok := st.wildcard[n]; !ok {
					st.wildcard[n] = e
				}
			} else if _, ok := st.exact[n]; !ok {
				st.exact[n] = e
			}
		}
		for _, ip := range e.leaf.IPAddresses {
			if _, ok := st.exact[ip.String()]; !ok {
				st.exact[ip.String()] = e
			}
		}
	}
	if ss != nil {
		for _, n := range c.SelfSigned {
			if _, ok := st.exact[n]; !ok {
				st.exact[n] = ss
			}
		}
	}
	for _, n := range c.ACMENames {
		st.acmeNames[n] = true
		st.acmeWild = st.acmeWild || strings.HasPrefix(n, "*.")
	}
	return st
}

// handshakeError is returned from GetCertificate; its message starts with
// "tlsedge:" so the error-log classifier knows it was already counted.
type handshakeError struct {
	reason string
	msg    string
}

func (e *handshakeError) Error() string { return "tlsedge: " + e.msg }

var (
	errNoSNI = &handshakeError{reasonUnknownSNI, "client sent no server name (SNI)"}
	errNoCfg = &handshakeError{reasonNoCertificate, "no tls configuration loaded"}
)

// GetCertificate implements tls.Config.GetCertificate. A cached certificate
// is returned without blocking; an unknown server name fails the handshake
// and never reaches the ACME CA. A name in Config.ACMENames that has no
// certificate yet blocks this handshake until certmagic obtains one.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := m.state.Load()
	if st == nil {
		m.met.fail(reasonNoCertificate)
		return nil, errNoCfg
	}
	name := hello.ServerName
	if name == "" {
		name = st.cfg.DefaultName
	}
	if name == "" {
		m.met.fail(reasonUnknownSNI)
		return nil, errNoSNI
	}
	name = lookupName(name)
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPNProto {
		// A tls-alpn-01 validation request from the CA.
		return m.serveALPN(st, name, hello)
	}
	if e := st.exact[name]; e != nil {
		return m.serve(st, e)
	}
	if st.acmeNames[name] {
		return m.serveACME(st, name, name, hello)
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		// The concatenation stays on the stack for names up to 32 bytes
		// (checked by TestGetCertificateAllocs).
		if len(st.wildcard) > 0 {
			if e := st.wildcard["*"+name[i:]]; e != nil {
				return m.serve(st, e)
			}
		}
		if st.acmeWild {
			if w := "*" + name[i:]; st.acmeNames[w] {
				return m.serveACME(st, w, name, hello)
			}
		}
	}
	m.met.fail(reasonUnknownSNI)
	return nil, &handshakeError{reasonUnknownSNI, fmt.Sprintf("no certificate for server name %q", name)}
}

// serveACME serves the certificate of ACME name acmeName (sni is what
// the client asked for), waiting for a first certificate if there is none
// yet. Options.HostPolicy is consulted on every such handshake.
func (m *Manager) serveACME(st *state, acmeName, sni string, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	if m.hostPolicy != nil {
		if err := m.hostPolicy(ctx, acmeName); err != nil {
			m.met.fail(reasonUnknownSNI)
			return nil, &handshakeError{reasonUnknownSNI, fmt.Sprintf("acme name %q refused by the host policy: %v", sni, err)}
		}
	}
	e, err := m.acmeEntry(ctx, acmeName)
	if err != nil {
		m.met.fail(reasonNoCertificate)
		return nil, &handshakeError{reasonNoCertificate, fmt.Sprintf("acme certificate for %q: %v", sni, err)}
	}
	return m.serve(st, e)
}

// lookupName lower-cases and trims a trailing dot, allocating only when
// the name needs changing.
func lookupName(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// serve returns e's certificate, stapled when stapling is on in st and a
// current staple exists. (ACME entries outlive generations, so a staple
// they hold is ignored here once a reload turns stapling off.)
func (m *Manager) serve(st *state, e *entry) (*tls.Certificate, error) {
	if s := e.ocsp.Staple(); s != nil && !st.cfg.DisableOCSP && m.now().Before(s.NextUpdate) {
		return s.Cert, nil
	}
	if e.mustStaple {
		m.met.fail(reasonMustStaple)
		m.log.Warn("refusing must-staple certificate without a valid OCSP staple", "certificate", e.src, "subject", e.leaf.Subject.String())
		return nil, &handshakeError{reasonMustStaple, fmt.Sprintf("certificate %s is must-staple and has no valid OCSP staple", e.src)}
	}
	return e.cert, nil
}

// HTTPHandler answers ACME http-01 challenges under
// /.well-known/acme-challenge/ (when http01 is enabled) and passes every
// other request to fallback. It follows configuration changes.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			// Answered here, never redirected: certmagic answers challenges
			// of this instance (memory) or of another one sharing the
			// storage, for configured names only (403 for others, as
			// autocert did); an unknown token is a 404.
			if st := m.state.Load(); st != nil && st.acme != nil && st.cfg.ACME.HTTP01 {
				if err := m.acmePolicy(r.Context(), r.Host); err != nil {
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
				if !st.acme.any.iss.HandleHTTPChallenge(w, r) {
					http.NotFound(w, r)
				}
				return
			}
		}
		fallback.ServeHTTP(w, r)
	})
}

// Run owns the background work: polling certificate files, refreshing OCSP
// staples, managing ACME names (loading, obtaining, and handing them to
// certmagic's maintenance, which renews them and follows ARI) and
// rotating session ticket keys. It runs one pass at once, then every
// PollInterval (and at once after an Update or a new ACME certificate),
// and returns nil when ctx is done, after its goroutines have ended and
// certmagic's maintenance has stopped. Call it once per Manager, for the
// life of the process: after it returns, ACME no longer works.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.poll)
	defer t.Stop()
	rot := time.NewTicker(m.rotation)
	defer rot.Stop()
	defer m.shutdownACME()
	for {
		m.maintain(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		case <-m.sentinelReady:
			m.cmMu.Lock()
			ln := m.sentinel
			m.cmMu.Unlock()
			m.wg.Go(func() { acceptSentinel(ln) })
		case <-rot.C:
			m.rotateTickets()
		}
	}
}

// shutdownACME ends ACME work: the managing goroutines (their context is
// Run's), certmagic's maintenance (its renewal jobs see their context
// cancelled) and the solver sentinel; it waits for the goroutines Run
// owns.
func (m *Manager) shutdownACME() {
	m.cmMu.Lock()
	m.cmStopped = true
	cm, ln := m.cm, m.sentinel
	m.cmMu.Unlock()
	if cm != nil {
		cm.Stop()
	}
	if ln != nil {
		ln.Close()
	}
	m.wg.Wait()
}

// maintain is one maintenance pass.
func (m *Manager) maintain(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("tls maintenance panicked", "panic", r)
		}
	}()
	m.pollFiles()
	m.reconcileACME(ctx)
	for _, e := range m.indexACME() {
		// A new ACME certificate gets its staple now, not a pass later.
		m.refreshStaple(ctx, e)
	}
	m.observeACME(ctx)
	m.refreshStaples(ctx)
}

// pollFiles reloads certificate files whose size, mtime or content changed.
func (m *Manager) pollFiles() {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	st := m.state.Load()
	if st == nil || len(st.files) == 0 {
		return
	}
	now := m.now()
	var files []*entry
	for i, e := range st.files {
		sig, err := statPair(e.pair)
		if err != nil || sig == m.watch[e.pair] {
			if err != nil && m.watch[e.pair] != (fileSig{}) {
				m.log.Error("certificate file unreadable; keeping the loaded certificate", "cert_file", e.pair.CertFile, "err", err)
				m.watch[e.pair] = fileSig{}
			}
			continue
		}
		m.watch[e.pair] = sig
		ne, err := loadPair(e.pair, now)
		if err != nil {
			m.log.Error("changed certificate files rejected; keeping the loaded certificate", "err", err)
			continue
		}
		if ne.sum == e.sum {
			continue
		}
		m.adoptStaple(ne, st, now, st.cfg.DisableOCSP)
		if files == nil {
			files = append([]*entry(nil), st.files...)
		}
		files[i] = ne
		m.log.Info("certificate file reloaded", "cert_file", e.pair.CertFile, "not_after", ne.leaf.NotAfter)
	}
	if files != nil {
		m.state.Store(buildState(st.cfg, files, st.selfSigned, st.acme))
	}
}

func statPair(p FilePair) (fileSig, error) {
	c, err := os.Stat(p.CertFile)
	if err != nil {
		return fileSig{}, err
	}
	k, err := os.Stat(p.KeyFile)
	if err != nil {
		return fileSig{}, err
	}
	return fileSig{certSize: c.Size(), keySize: k.Size(), certMod: c.ModTime(), keyMod: k.ModTime()}, nil
}

// ensureDir creates a StateDir subdirectory with mode 0700.
func (m *Manager) ensureDir(sub string) (string, error) {
	d := filepath.Join(m.stateDir, sub)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return d, nil
}
