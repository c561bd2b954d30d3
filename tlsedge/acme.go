package tlsedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/gatehouse-proxy/gatehouse/internal/autocertimport"
)

// acmeHandshakeWait bounds how long a handshake for an ACME name with no
// certificate yet waits for the first one (issuance takes seconds; the
// CA's validation of a slow site may take a minute).
const acmeHandshakeWait = 2 * time.Minute

// acmeALPNProto is the tls-alpn-01 protocol (RFC 8737).
const acmeALPNProto = "acme-tls/1"

// acmeGroupKey sorts ACME names into the certmagic configurations they
// are managed with: one per (profile, challenge) pair.
type acmeGroupKey struct {
	profile string
	dns01   bool
}

// acmeGroup is one certmagic configuration and its ACME issuer.
type acmeGroup struct {
	cfg *certmagic.Config
	iss *certmagic.ACMEIssuer
}

// acmeInstance is the certmagic side of one ACME section: a
// certmagic.Config per group key, all sharing the Manager's certmagic
// cache and storage. A changed ACME section (or a new group key) builds a
// new instance; the cache and the stored certificates stay.
type acmeInstance struct {
	settings ACME
	groups   map[acmeGroupKey]*acmeGroup
	any      *acmeGroup // for the http-01 handler and tls-alpn-01 (same CA and storage as every group)
}

// group returns the configuration for a name of key k.
func (a *acmeInstance) group(k acmeGroupKey) *acmeGroup {
	if g := a.groups[k]; g != nil {
		return g
	}
	return a.any
}

// groupKey is the group of ACME name n in configuration c.
func groupKey(c *Config, n string) acmeGroupKey {
	o := c.ACMEOverrides[n]
	k := acmeGroupKey{profile: c.ACME.Profile, dns01: o.DNS01 || strings.HasPrefix(n, "*.")}
	if o.Profile != "" {
		k.profile = o.Profile
	}
	return k
}

// groupKeys lists the group keys c needs, sorted.
func groupKeys(c *Config) []acmeGroupKey {
	var ks []acmeGroupKey
	for _, n := range c.ACMENames {
		if k := groupKey(c, n); !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b acmeGroupKey) int {
		if c := strings.Compare(a.profile, b.profile); c != 0 {
			return c
		}
		if a.dns01 == b.dns01 {
			return 0
		}
		if a.dns01 {
			return 1
		}
		return -1
	})
	return ks
}

// acmeEqual reports whether instance settings a and b build the same
// certmagic configurations.
func acmeEqual(a, b ACME) bool {
	if a.Email != b.Email || a.DirectoryURL != b.DirectoryURL || a.HTTP01 != b.HTTP01 || a.TLSALPN01 != b.TLSALPN01 ||
		a.Profile != b.Profile || a.RenewRatio != b.RenewRatio || a.DisableARI != b.DisableARI {
		return false
	}
	if (a.EAB == nil) != (b.EAB == nil) || a.EAB != nil && (a.EAB.KeyID != b.EAB.KeyID || string(a.EAB.HMACKey) != string(b.EAB.HMACKey)) {
		return false
	}
	if (a.RootCAs == nil) != (b.RootCAs == nil) || a.RootCAs != nil && !a.RootCAs.Equal(b.RootCAs) {
		return false
	}
	if (a.DNS == nil) != (b.DNS == nil) {
		return false
	}
	if a.DNS != nil {
		x, y := *a.DNS, *b.DNS
		if string(x.Secret) != string(y.Secret) || !slices.Equal(x.Resolvers, y.Resolvers) {
			return false
		}
		x.Secret, y.Secret, x.Resolvers, y.Resolvers = nil, nil, nil, nil
		if fmt.Sprint(x) != fmt.Sprint(y) {
			return false
		}
	}
	return true
}

// newACME builds the certmagic configurations for c (normalized,
// validated), creating the certmagic cache on first use, and imports the
// autocert cache of earlier versions into the storage. Called with
// updateMu held.
func (m *Manager) newACME(c *Config) (*acmeInstance, error) {
	if err := m.startCache(); err != nil {
		return nil, err
	}
	a := c.ACME
	inst := &acmeInstance{settings: a, groups: map[acmeGroupKey]*acmeGroup{}}
	keys := groupKeys(c)
	for _, k := range keys {
		g, err := m.newGroup(a, k, true)
		if err != nil {
			return nil, err
		}
		inst.groups[k] = g
	}
	if def := (acmeGroupKey{profile: a.Profile}); !slices.Contains(keys, def) {
		// The http-01 handler and tls-alpn-01 need an issuer even when
		// every name uses dns-01 (another instance may be ordering); this
		// one orders nothing.
		g, err := m.newGroup(a, def, false)
		if err != nil {
			return nil, err
		}
		inst.groups[def] = g
	}
	inst.any = inst.groups[acmeGroupKey{profile: a.Profile}]
	// The autocert cache of earlier versions (StateDir/acme) goes into
	// the storage, so an upgrade orders nothing.
	autocertimport.Import(context.Background(), autocertimport.Options{
		Dir:          filepath.Join(m.stateDir, "acme"),
		Storage:      m.storage,
		IssuerKey:    inst.any.iss.IssuerKey(),
		DirectoryURL: a.DirectoryURL,
		Email:        a.Email,
		Now:          m.now,
		Logger:       m.log,
		Corrupt:      func(kind string) { m.met.cacheCorrupt.WithLabelValues(kind).Inc() },
	})
	return inst, nil
}

// newGroup builds one certmagic configuration; orders is false for the
// one that only answers challenges.
func (m *Manager) newGroup(a ACME, k acmeGroupKey, orders bool) (*acmeGroup, error) {
	cfg := certmagic.New(m.cm, certmagic.Config{
		RenewalWindowRatio: a.RenewRatio,
		OnEvent:            m.onEvent,
		Storage:            m.storage,
		Logger:             m.zlog,
		DisableARI:         a.DisableARI,
		// Gatehouse staples itself (ocsp.go, internal/ocspstaple): a
		// revoked answer drops the staple, and stapling follows the
		// listener's switch.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	tmpl := certmagic.ACMEIssuer{
		CA:           a.DirectoryURL,
		Email:        a.Email,
		Agreed:       true,
		Profile:      k.profile,
		TrustedRoots: a.RootCAs,
		Logger:       m.zlog,
	}
	if a.EAB != nil {
		tmpl.ExternalAccount = &acme.EAB{KeyID: a.EAB.KeyID, MACKey: base64.RawURLEncoding.EncodeToString(a.EAB.HMACKey)}
	}
	if k.dns01 {
		tmpl.DNS01Solver = newDNSSolver(a.DNS, m.zlog)
	} else if orders {
		tmpl.DisableHTTPChallenge = !a.HTTP01
		tmpl.DisableTLSALPNChallenge = !a.TLSALPN01
		// certmagic's solvers start their own challenge server unless the
		// port is taken. Gatehouse answers challenges on its own
		// listeners, so the solvers are pointed at a loopback socket the
		// Manager holds: the bind fails, and nothing else is opened.
		host, port, err := m.solverSentinel()
		if err != nil {
			return nil, err
		}
		tmpl.ListenHost, tmpl.AltHTTPPort, tmpl.AltTLSALPNPort = host, port, port
	}
	if m.issuerHook != nil {
		m.issuerHook(&tmpl)
	}
	iss := certmagic.NewACMEIssuer(cfg, tmpl)
	cfg.Issuers = []certmagic.Issuer{iss}
	return &acmeGroup{cfg: cfg, iss: iss}, nil
}

// startCache creates the certmagic cache (and with it certmagic's
// maintenance goroutine, which Run stops) on first use.
func (m *Manager) startCache() error {
	m.cmMu.Lock()
	defer m.cmMu.Unlock()
	if m.cmStopped {
		return errors.New("tlsedge: manager stopped (Run returned)")
	}
	if m.cm == nil {
		m.cm = certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert:   m.configForCert,
			RenewCheckInterval: m.renewCheck,
			Logger:             m.zlog,
		})
	}
	return nil
}

// solverSentinel returns the address of the loopback socket certmagic's
// challenge solvers are pointed at, binding it on first use. Run accepts
// and closes what connects to it (certmagic dials it once per challenge
// to see that it is in use).
func (m *Manager) solverSentinel() (string, int, error) {
	m.cmMu.Lock()
	defer m.cmMu.Unlock()
	if m.sentinel == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", 0, fmt.Errorf("tlsedge: acme solver socket: %w", err)
		}
		m.sentinel = ln
		select {
		case m.sentinelReady <- struct{}{}:
		default:
		}
	}
	host, port, _ := net.SplitHostPort(m.sentinel.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, p, nil
}

// configForCert is the cache's GetConfigForCert: the configuration of the
// group the certificate's name belongs to now.
func (m *Manager) configForCert(c certmagic.Certificate) (*certmagic.Config, error) {
	st := m.state.Load()
	inst := m.lastACME.Load()
	if st != nil && st.acme != nil {
		inst = st.acme
	}
	if inst == nil {
		return nil, errors.New("tlsedge: no acme configuration")
	}
	if st == nil || len(c.Names) == 0 {
		return inst.any.cfg, nil
	}
	return inst.group(groupKey(&st.cfg, c.Names[0])).cfg, nil
}

// onEvent receives certmagic's events: it vetoes orders for names that
// are not configured, counts and logs obtained and failed certificates
// and wakes Run to index a new certificate at once.
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		// The last gate before any order, renewals queued by certmagic's
		// maintenance included: only configured names that pass the host
		// policy are ever ordered.
		if err := m.acmePolicy(ctx, name); err != nil {
			m.log.Warn("not ordering a certificate for a name that is not configured", "name", name, "err", err)
			return err
		}
	case "cert_obtained":
		m.maintMu.Lock()
		delete(m.acmeFailing, name)
		m.maintMu.Unlock()
		if renewal {
			m.met.renewals.WithLabelValues("success").Inc()
			m.log.Info("acme certificate renewed", "name", name, "issuer", data["issuer"])
		} else {
			m.log.Info("acme certificate obtained", "name", name, "issuer", data["issuer"])
		}
		m.kickRun()
	case "cert_failed":
		m.maintMu.Lock()
		m.acmeFailing[name] = true
		m.maintMu.Unlock()
		m.met.renewals.WithLabelValues("failure").Inc()
		what := "acme certificate could not be obtained; retrying with backoff"
		if renewal {
			what = "acme renewal failed; the current certificate keeps serving and renewal is retried with backoff"
		}
		m.log.Error(what, "name", name, "err", data["error"])
		m.wakeWaiters(name)
	case "cached_managed_cert":
		m.kickRun()
	}
	return nil
}

// kickRun asks Run for a maintenance pass without waiting for the timer.
func (m *Manager) kickRun() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// acmeManaged is a Run-owned goroutine managing one ACME name.
type acmeManaged struct {
	inst   *acmeInstance
	key    acmeGroupKey
	st     *state // the generation it started in
	cancel context.CancelFunc
	done   chan struct{}
	// handedOff is set when the certificate is in certmagic's cache,
	// whose maintenance renews it from then on: the goroutine is not
	// started again.
	handedOff atomic.Bool
}

// reconcileACME starts a managing goroutine for every configured ACME name
// that has none (or one of an older configuration) and stops those of
// names no longer configured, whose certificates leave certmagic's
// maintenance (no renewal, no ARI) but stay in storage.
func (m *Manager) reconcileACME(ctx context.Context) {
	st := m.state.Load()
	want := map[string]acmeGroupKey{}
	if st != nil && st.acme != nil {
		for _, n := range st.cfg.ACMENames {
			want[n] = groupKey(&st.cfg, n)
		}
	}
	m.maintMu.Lock()
	var stop []*acmeManaged
	var removed []certmagic.SubjectIssuer
	for n, mg := range m.managing {
		k, ok := want[n]
		select {
		case <-mg.done:
			if ok && mg.inst == st.acme && mg.key == k && (mg.handedOff.Load() || mg.st == st) {
				// Handed to certmagic's maintenance, or refused (host
				// policy, unreadable storage) in this generation: a new
				// configuration tries again.
				continue
			}
			delete(m.managing, n)
			if !ok {
				removed = append(removed, certmagic.SubjectIssuer{Subject: n})
			}
			continue
		default:
		}
		if !ok || mg.inst != st.acme || mg.key != k {
			stop = append(stop, mg)
			delete(m.managing, n)
			if !ok {
				removed = append(removed, certmagic.SubjectIssuer{Subject: n})
			}
		}
	}
	if ctx.Err() == nil {
		for n, k := range want {
			if _, ok := m.managing[n]; ok {
				continue
			}
			mctx, cancel := context.WithCancel(ctx)
			mg := &acmeManaged{inst: st.acme, key: k, st: st, cancel: cancel, done: make(chan struct{})}
			m.managing[n] = mg
			m.wg.Add(1)
			go m.manage(mctx, mg, n)
		}
	}
	m.maintMu.Unlock()
	for _, mg := range stop {
		mg.cancel()
	}
	if len(removed) > 0 && m.cm != nil {
		m.cm.RemoveManaged(removed)
		for _, r := range removed {
			m.log.Info("acme name no longer configured; its certificate is no longer renewed (kept in storage)", "name", r.Subject)
		}
	}
}

// manage loads name's certificate from storage or obtains it, renews it
// at once when it is due, and hands it to certmagic's maintenance. It
// runs in a goroutine owned by Run (m.wg). Obtaining retries with
// certmagic's backoff (1 min growing to 6 h) until ctx ends.
func (m *Manager) manage(ctx context.Context, mg *acmeManaged, name string) {
	defer m.wg.Done()
	defer close(mg.done)
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("acme management panicked", "name", name, "panic", r)
		}
	}()
	if err := m.acmePolicy(ctx, name); err != nil {
		m.log.Warn("acme name refused by the host policy; not ordering", "name", name, "err", err)
		return
	}
	cfg := mg.inst.group(mg.key).cfg
	cert, err := cfg.CacheManagedCertificate(ctx, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if ctx.Err() != nil {
			return
		}
		// The stored files do not make a certificate (a torn copy, a bad
		// restore): keep them aside and order a new one.
		m.moveAsideStored(ctx, mg.inst, name, err)
		err = fs.ErrNotExist
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err = cfg.ObtainCertAsync(ctx, name); err == nil {
			cert, err = cfg.CacheManagedCertificate(ctx, name)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("acme certificate unavailable", "name", name, "err", err)
		}
		m.wakeWaiters(name)
		return
	}
	mg.handedOff.Store(true)
	m.kickRun() // Run indexes and staples it
	if cert.NeedsRenewal(cfg) {
		// Due already (loaded from storage after a long stop): have
		// certmagic's maintenance renew it now rather than at its next
		// check. Its job queue runs one renewal per name at a time, so
		// this never races a renewal the maintenance started itself.
		if err := m.cm.RenewManagedCertificates(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("acme renewal check failed", "name", name, "err", err)
		}
	}
}

// acmePolicy admits only names in the current Config.ACMENames that also
// pass Options.HostPolicy. The http-01 handler passes the Host header,
// which may carry a port.
func (m *Manager) acmePolicy(ctx context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	st := m.state.Load()
	if st == nil || !st.acmeNames[lookupName(host)] {
		return fmt.Errorf("tlsedge: host %q is not configured for acme", host)
	}
	if m.hostPolicy != nil {
		return m.hostPolicy(ctx, host)
	}
	return nil
}

// acmeServed is the certificate certmagic's cache holds for an ACME name:
// managed, for exactly that name, the one valid longest.
func (m *Manager) acmeServed(name string) (certmagic.Certificate, bool) {
	if m.cm == nil {
		return certmagic.Certificate{}, false
	}
	var best certmagic.Certificate
	for _, c := range m.cm.AllMatchingCertificates(name) {
		if c.Leaf == nil || !slices.Contains(c.Names, name) {
			continue
		}
		if best.Leaf == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter) {
			best = c
		}
	}
	return best, best.Leaf != nil
}

// indexACME rebuilds the name → entry index of ACME certificates from
// certmagic's cache, reusing the entries (and staples) of certificates
// already indexed, and wakes handshakes waiting for a first certificate.
// New entries are returned for stapling.
func (m *Manager) indexACME() []*entry {
	st := m.state.Load()
	if st == nil {
		return nil
	}
	m.indexMu.Lock()
	defer m.indexMu.Unlock()
	old := *m.acmeCerts.Load()
	byLeaf := make(map[*x509.Certificate]*entry, len(old))
	for _, e := range old {
		byLeaf[e.leaf] = e
	}
	idx := make(map[string]*entry, len(st.cfg.ACMENames))
	var fresh []*entry
	now := m.now()
	for _, n := range st.cfg.ACMENames {
		c, ok := m.acmeServed(n)
		if !ok {
			continue
		}
		e := byLeaf[c.Leaf]
		if e == nil {
			tc := c.Certificate
			tc.OCSPStaple = nil
			var err error
			if e, err = entryFor(&tc, "acme"); err != nil {
				m.log.Error("acme certificate unusable", "name", n, "err", err)
				continue
			}
			if !st.cfg.DisableOCSP {
				if s := m.loadStaple(e, now); s != nil {
					e.ocsp.SetStaple(s)
				}
			}
			byLeaf[c.Leaf] = e
			fresh = append(fresh, e)
		}
		idx[n] = e
	}
	m.acmeCerts.Store(&idx)
	m.maintMu.Lock()
	for n := range idx {
		if ch := m.waiters[n]; ch != nil {
			close(ch)
			delete(m.waiters, n)
		}
	}
	m.maintMu.Unlock()
	return fresh
}

// wakeWaiters ends the wait of handshakes for name (which then look
// again and fail if there is still no certificate).
func (m *Manager) wakeWaiters(name string) {
	m.maintMu.Lock()
	defer m.maintMu.Unlock()
	if ch := m.waiters[name]; ch != nil {
		close(ch)
		delete(m.waiters, name)
	}
}

// acmeEntry returns the entry serving ACME name, waiting (bounded by the
// handshake's context and acmeHandshakeWait) for a first certificate.
func (m *Manager) acmeEntry(ctx context.Context, name string) (*entry, error) {
	if e := (*m.acmeCerts.Load())[name]; e != nil {
		return e, nil
	}
	// Not indexed yet: maybe certmagic has just cached it. Run staples
	// new entries.
	if len(m.indexACME()) > 0 {
		m.kickRun()
	}
	if e := (*m.acmeCerts.Load())[name]; e != nil {
		return e, nil
	}
	m.maintMu.Lock()
	ch := m.waiters[name]
	if ch == nil {
		ch = make(chan struct{})
		m.waiters[name] = ch
	}
	m.maintMu.Unlock()
	m.kickRun()
	t := time.NewTimer(acmeHandshakeWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, errors.New("no certificate obtained in time")
	}
	if e := (*m.acmeCerts.Load())[name]; e != nil {
		return e, nil
	}
	return nil, errors.New("certificate not obtained (see the log)")
}

// observeACME records, for metrics and the log, what each ACME name
// serves: an overdue renewal (a third of the renewal window gone without
// a new certificate) is logged and counted once per certificate, and the
// ARI window is read from the stored certificate metadata.
func (m *Manager) observeACME(ctx context.Context) {
	st := m.state.Load()
	if st == nil || st.acme == nil {
		return
	}
	idx := *m.acmeCerts.Load()
	now := m.now()
	ratio := st.cfg.ACME.RenewRatio
	for _, n := range st.cfg.ACMENames {
		e := idx[n]
		if e == nil {
			continue
		}
		life := e.leaf.NotAfter.Sub(e.leaf.NotBefore)
		window := time.Duration(float64(life) * ratio)
		overdue := now.After(e.leaf.NotAfter.Add(-window * 2 / 3))
		ari := m.storedARI(ctx, st.acme, n)
		m.maintMu.Lock()
		prev := m.acmeSeen[n]
		m.acmeSeen[n] = acmeObserved{leaf: e.leaf, overdue: overdue, ari: ari}
		m.maintMu.Unlock()
		if overdue && (prev.leaf != e.leaf || !prev.overdue) {
			m.met.renewals.WithLabelValues("overdue").Inc()
			m.log.Warn("acme renewal overdue; the current certificate keeps serving", "name", n, "not_after", e.leaf.NotAfter)
		}
	}
}

// acmeObserved is what observeACME last saw for a name.
type acmeObserved struct {
	leaf    *x509.Certificate
	overdue bool
	ari     *acme.RenewalInfo // nil without ARI
}

// storedARI reads the ARI window certmagic stored with name's certificate.
func (m *Manager) storedARI(ctx context.Context, inst *acmeInstance, name string) *acme.RenewalInfo {
	raw, err := m.storage.Load(ctx, certmagic.StorageKeys.SiteMeta(inst.any.iss.IssuerKey(), name))
	if err != nil {
		return nil
	}
	var res certmagic.CertificateResource
	var data acme.Certificate
	if json.Unmarshal(raw, &res) != nil || json.Unmarshal(res.IssuerData, &data) != nil {
		return nil
	}
	if data.RenewalInfo == nil || !data.RenewalInfo.HasWindow() {
		return nil
	}
	return data.RenewalInfo
}

// moveAsideStored keeps the stored files of a certificate that does not
// load as <key>.bad-<timestamp> (any Storage: copied, then deleted),
// logs and counts it, so a new certificate can be ordered.
func (m *Manager) moveAsideStored(ctx context.Context, inst *acmeInstance, name string, problem error) {
	ik := inst.any.iss.IssuerKey()
	stamp := m.now().UTC().Format(autocertimport.BadStampLayout)
	for _, k := range []string{certmagic.StorageKeys.SiteCert(ik, name), certmagic.StorageKeys.SitePrivateKey(ik, name), certmagic.StorageKeys.SiteMeta(ik, name)} {
		data, err := m.storage.Load(ctx, k)
		if err != nil {
			continue
		}
		if err := m.storage.Store(ctx, k+".bad-"+stamp, data); err != nil {
			m.log.Error("unusable stored acme certificate could not be kept aside", "name", name, "key", k, "err", err)
			continue
		}
		if err := m.storage.Delete(ctx, k); err != nil {
			m.log.Error("unusable stored acme certificate could not be removed", "name", name, "key", k, "err", err)
		}
	}
	m.met.cacheCorrupt.WithLabelValues(autocertimport.KindCertificate).Inc()
	m.log.Error("stored acme certificate unusable; kept aside and a new certificate is being ordered",
		"name", name, "moved_to_suffix", ".bad-"+stamp, "problem", problem)
}

// serveALPN answers a tls-alpn-01 validation with certmagic's challenge
// certificate (made by this instance, or by another one sharing the
// storage).
func (m *Manager) serveALPN(st *state, name string, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if st.acme == nil || !st.cfg.ACME.TLSALPN01 || !st.acmeNames[name] {
		m.met.fail(reasonUnknownSNI)
		return nil, &handshakeError{reasonUnknownSNI, fmt.Sprintf("no tls-alpn-01 challenge for %q", name)}
	}
	return st.acme.any.cfg.GetCertificate(hello)
}

// acceptSentinel accepts and closes connections to the solver sentinel
// until it is closed. It runs in a goroutine owned by Run.
func acceptSentinel(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c.Close()
	}
}
