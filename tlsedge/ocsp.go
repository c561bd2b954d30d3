package tlsedge

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/ocspstaple"
	"github.com/gatehouse-proxy/gatehouse/internal/statefile"
)

// OCSP stapling itself (fetching, verifying, when to ask again) is
// package ocspstaple's; the Manager decides which certificates are
// stapled, persists staples in StateDir/ocsp, logs and counts.

// stapleName is the file name of e's staple in StateDir/ocsp.
func stapleName(e *entry) string {
	fp := e.ocsp.Fingerprint()
	return hex.EncodeToString(fp[:])
}

// loadStaple returns a still valid persisted staple for e, or nil.
func (m *Manager) loadStaple(e *entry, now time.Time) *ocspstaple.Staple {
	if !e.ocsp.Stapleable() {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(m.stateDir, "ocsp", stapleName(e)))
	if err != nil {
		return nil
	}
	s, err := e.ocsp.Verify(raw, now)
	if err != nil {
		return nil
	}
	return s
}

// adoptStaple gives a new entry the staple of an identical certificate in
// old, or a persisted one.
func (m *Manager) adoptStaple(e *entry, old *state, now time.Time, disabled bool) {
	if disabled || !e.ocsp.Stapleable() {
		return
	}
	if old != nil {
		for _, o := range append(append([]*entry(nil), old.files...), old.selfSigned) {
			if o != nil && o.ocsp.Fingerprint() == e.ocsp.Fingerprint() {
				if s := o.ocsp.Staple(); s != nil && now.Before(s.NextUpdate) {
					// Rebuild around e's certificate so the served
					// certificate is e's, not o's.
					if ns, err := e.ocsp.Verify(s.Raw, now); err == nil {
						e.ocsp.SetStaple(ns)
						return
					}
				}
			}
		}
	}
	if s := m.loadStaple(e, now); s != nil {
		e.ocsp.SetStaple(s)
	}
}

// refreshStaples fetches OCSP responses for every certificate that names a
// responder and whose staple is missing or past half its window.
func (m *Manager) refreshStaples(ctx context.Context) {
	st := m.state.Load()
	if st == nil || st.cfg.DisableOCSP {
		return
	}
	entries := append([]*entry(nil), st.files...)
	if st.selfSigned != nil {
		entries = append(entries, st.selfSigned)
	}
	for _, e := range *m.acmeCerts.Load() {
		entries = append(entries, e)
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		m.refreshStaple(ctx, e)
	}
}

// refreshStaple refreshes e's staple when stapling is on (see
// [ocspstaple.Stapler.Refresh] for when it asks and what it keeps), then
// persists, logs and counts the answer:
//   - Good: the new staple is served and saved;
//   - Revoked: the staple is dropped, the answer replaces the saved staple
//     so a restart cannot bring the Good one back, and it is logged at
//     error level and counted;
//   - a failure is logged and counted; a valid staple keeps serving.
func (m *Manager) refreshStaple(ctx context.Context, e *entry) {
	if st := m.state.Load(); st == nil || st.cfg.DisableOCSP {
		return
	}
	r := m.stapler.Refresh(ctx, e.ocsp)
	switch r.Outcome {
	case ocspstaple.Failed:
		m.met.ocspFailures.Inc()
		m.log.Warn("ocsp refresh failed", "certificate", e.src, "responder", e.ocsp.Responder(), "keeping_valid_staple", r.PreviousValid, "err", r.Err)
	case ocspstaple.Revoked:
		m.saveStaple(e, r.Raw)
		m.met.ocspRevoked.Inc()
		rev := r.Revocation
		m.log.Error("certificate revoked according to its ocsp responder; it is served without a staple until it is replaced",
			"certificate", e.src, "names", certNames(e.leaf), "serial", e.leaf.SerialNumber.String(),
			"revoked_at", rev.RevokedAt, "reason", rev.RevocationReason, "responder", e.ocsp.Responder(),
			"dropped_good_staple", r.Previous != nil, "must_staple", e.mustStaple)
	case ocspstaple.Refreshed:
		m.saveStaple(e, r.Raw)
		m.log.Debug("ocsp staple refreshed", "certificate", e.src, "next_update", r.Staple.NextUpdate)
	}
}

// certNames lists a certificate's DNS and IP subject alternative names.
func certNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// saveStaple persists raw as e's saved OCSP response.
func (m *Manager) saveStaple(e *entry, raw []byte) {
	dir, err := m.ensureDir("ocsp")
	if err == nil {
		err = statefile.Write(filepath.Join(dir, stapleName(e)), raw)
	}
	if err != nil {
		m.log.Warn("ocsp response not saved", "certificate", e.src, "err", err)
	}
}
