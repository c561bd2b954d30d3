package tlsedge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeHTTPTimeout bounds one request to the ACME directory, so a hung CA
// cannot hold an obtain goroutine (and Run's shutdown) for long.
const acmeHTTPTimeout = 30 * time.Second

// errRetired is returned for ACME traffic of a replaced client.
var errRetired = errors.New("tlsedge: acme client retired")

// acmeInstance is one autocert.Manager with its settings. autocert fields
// cannot change after first use, so a changed ACME section builds a new
// instance and retires the old one (its transport refuses every request,
// which also ends autocert's renewal attempts for it).
type acmeInstance struct {
	am          *autocert.Manager
	http01      http.Handler // nil when http-01 is disabled
	tlsALPN     bool
	renewBefore time.Duration
	tr          *acmeTransport
}

func (a *acmeInstance) retire() { a.tr.retired.Store(true) }

// acmeObserved is what the monitor last saw for an ACME name.
type acmeObserved struct {
	leaf    *x509.Certificate // autocert's leaf, the key of Manager.acmeCerts
	serial  string
	overdue bool
}

func acmeEqual(a, b ACME) bool {
	if a.Email != b.Email || a.DirectoryURL != b.DirectoryURL || a.RenewBefore != b.RenewBefore ||
		a.HTTP01 != b.HTTP01 || a.TLSALPN01 != b.TLSALPN01 {
		return false
	}
	if (a.EAB == nil) != (b.EAB == nil) || a.EAB != nil && (a.EAB.KeyID != b.EAB.KeyID || !bytes.Equal(a.EAB.HMACKey, b.EAB.HMACKey)) {
		return false
	}
	if (a.RootCAs == nil) != (b.RootCAs == nil) || a.RootCAs != nil && !a.RootCAs.Equal(b.RootCAs) {
		return false
	}
	return true
}

// newACME builds an autocert.Manager for a (normalized, validated).
func (m *Manager) newACME(a ACME) (*acmeInstance, error) {
	if _, err := m.ensureDir("acme"); err != nil {
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	base := m.httpClient.Transport
	if a.RootCAs != nil {
		base = &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: a.RootCAs, MinVersion: tls.VersionTLS12},
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConns:        4,
			IdleConnTimeout:     time.Minute,
		}
	}
	if base == nil {
		base = http.DefaultTransport
	}
	tr := &acmeTransport{base: base, dropTLSALPN: !a.TLSALPN01}
	inst := &acmeInstance{tlsALPN: a.TLSALPN01, renewBefore: a.RenewBefore, tr: tr}
	am := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       m.acmeCache,
		RenewBefore: a.RenewBefore,
		Email:       a.Email,
		Client: &acme.Client{
			DirectoryURL: a.DirectoryURL,
			HTTPClient:   &http.Client{Transport: tr, Timeout: acmeHTTPTimeout},
		},
		HostPolicy: m.acmePolicy,
	}
	if a.EAB != nil {
		am.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: a.EAB.KeyID, Key: a.EAB.HMACKey}
	}
	if a.HTTP01 {
		// Calling HTTPHandler is what enables http-01 in autocert.
		inst.http01 = am.HTTPHandler(http.NotFoundHandler())
	}
	inst.am = am
	return inst, nil
}

// acmePolicy admits only names in the current Config.ACMENames that also
// pass Options.HostPolicy. autocert's http-01 handler passes the Host
// header, which may carry a port.
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

// acmeTransport carries the ACME client's traffic. It refuses everything
// once retired and, when tls-alpn-01 is disabled, removes that challenge
// from authorization objects (autocert always tries tls-alpn-01 first and
// would otherwise burn a failed validation and a second order on it).
type acmeTransport struct {
	base        http.RoundTripper
	dropTLSALPN bool
	retired     atomic.Bool
}

func (t *acmeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.retired.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errRetired
	}
	res, err := t.base.RoundTrip(req)
	if err != nil || !t.dropTLSALPN || req.Method != http.MethodPost || res.StatusCode != http.StatusOK {
		return res, err
	}
	if !strings.Contains(res.Header.Get("Content-Type"), "json") {
		return res, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	body = dropChallenge(body, "tls-alpn-01")
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return res, nil
}

// dropChallenge removes challenges of type typ from an ACME authorization
// object; any other body is returned unchanged.
func dropChallenge(body []byte, typ string) []byte {
	if !bytes.Contains(body, []byte(`"challenges"`)) || !bytes.Contains(body, []byte(typ)) {
		return body
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return body
	}
	var chals []json.RawMessage
	if json.Unmarshal(obj["challenges"], &chals) != nil {
		return body
	}
	kept := chals[:0]
	for _, c := range chals {
		var h struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(c, &h) == nil && h.Type == typ {
			continue
		}
		kept = append(kept, c)
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return body
	}
	obj["challenges"] = raw
	out, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return out
}

// monitorHello is the ClientHello the monitor presents to autocert: an
// ECDSA-capable modern client, so it sees the certificate browsers get.
func monitorHello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        name,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// maintainACME obtains missing ACME certificates in the background and
// records the served certificate of each name: expiry for metrics, a new
// serial as a renewal, and an overdue renewal as a warning.
func (m *Manager) maintainACME(ctx context.Context) {
	st := m.state.Load()
	if st == nil || st.acme == nil {
		return
	}
	inst := st.acme
	for _, name := range st.cfg.ACMENames {
		m.maintMu.Lock()
		busy := m.obtaining[name]
		if !busy {
			m.obtaining[name] = true
			m.wg.Add(1)
		}
		m.maintMu.Unlock()
		if busy || ctx.Err() != nil {
			if !busy {
				m.maintMu.Lock()
				delete(m.obtaining, name)
				m.maintMu.Unlock()
				m.wg.Done()
			}
			continue
		}
		go m.observeACME(ctx, inst, name)
	}
}

// observeACME asks autocert for name's certificate (obtaining it when not
// cached) and records it. A certificate seen for the first time gets its
// OCSP staple at once (a missing or half-spent saved staple is fetched
// here, not a poll interval later); handshakes meanwhile are served
// without waiting. It runs in a goroutine owned by Run (m.wg).
func (m *Manager) observeACME(ctx context.Context, inst *acmeInstance, name string) {
	defer m.wg.Done()
	defer func() {
		m.maintMu.Lock()
		delete(m.obtaining, name)
		m.maintMu.Unlock()
	}()
	c, err := inst.am.GetCertificate(monitorHello(name))
	if err != nil {
		if !errors.Is(err, errRetired) && !inst.tr.retired.Load() {
			m.met.renewals.WithLabelValues("failure").Inc()
			m.log.Error("acme certificate unavailable", "name", name, "err", err)
		}
		return
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return
		}
	}
	now := m.now()
	serial := leaf.SerialNumber.String()
	m.maintMu.Lock()
	prev, seen := m.acmeSeen[name]
	obs := acmeObserved{leaf: leaf, serial: serial}
	// autocert renews at NotAfter-RenewBefore (plus jitter) and retries
	// failures every 30-60 min; a third of the window later without a new
	// certificate, renewal is failing.
	window := min(inst.renewBefore, DefaultRenewBefore)
	obs.overdue = now.After(leaf.NotAfter.Add(-window * 2 / 3))
	m.acmeSeen[name] = obs
	m.maintMu.Unlock()

	switch {
	case !seen:
		m.log.Info("acme certificate ready", "name", name, "not_after", leaf.NotAfter, "serial", serial)
	case prev.serial != serial:
		m.met.renewals.WithLabelValues("success").Inc()
		m.log.Info("acme certificate renewed", "name", name, "not_after", leaf.NotAfter, "serial", serial)
	}
	if obs.overdue && (!seen || !prev.overdue || prev.serial != serial) {
		m.met.renewals.WithLabelValues("overdue").Inc()
		m.log.Warn("acme renewal overdue; the current certificate keeps serving", "name", name, "not_after", leaf.NotAfter)
	}
	if e := m.indexACMECert(c, leaf); e != nil {
		m.refreshStaple(ctx, e)
	}
}

// indexACMECert makes an entry for an autocert certificate so it can be
// stapled, dropping entries for certificates no name serves any more. It
// returns the entry when it is new, nil when c was already indexed.
func (m *Manager) indexACMECert(c *tls.Certificate, leaf *x509.Certificate) *entry {
	m.maintMu.Lock()
	defer m.maintMu.Unlock()
	cur := *m.acmeCerts.Load()
	if _, ok := cur[leaf]; ok {
		return nil
	}
	cp := *c
	cp.Leaf = leaf
	e, err := entryFor(&cp, "acme")
	if err != nil {
		return nil
	}
	e.cert = withRFC6979(c)
	st := m.state.Load()
	disable := st != nil && st.cfg.DisableOCSP
	if !disable {
		if s := m.loadStaple(e, m.now()); s != nil {
			e.staple.Store(s)
		}
	}
	next := make(map[*x509.Certificate]*entry, len(cur)+1)
	live := map[*x509.Certificate]bool{leaf: true}
	for _, o := range m.acmeSeen {
		live[o.leaf] = true
	}
	for k, v := range cur {
		if live[k] {
			next[k] = v
		}
	}
	next[leaf] = e
	m.acmeCerts.Store(&next)
	return e
}

// shutdownACME cuts off every ACME client and waits for obtain goroutines.
func (m *Manager) shutdownACME() {
	if st := m.state.Load(); st != nil && st.acme != nil {
		st.acme.retire()
	}
	m.maintMu.Lock()
	for _, r := range m.retired {
		r.retire()
	}
	m.maintMu.Unlock()
	m.wg.Wait()
}
