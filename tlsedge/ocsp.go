package tlsedge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspRetryAfter is the pause after a failed OCSP fetch: the responder is
// not hammered every poll while the current staple (if any) keeps serving.
const ocspRetryAfter = 5 * time.Minute

// ocspRevokedRecheck is how long to wait before asking again about a
// certificate the responder called revoked when the answer names no next
// update: an hourly error log is loud enough and costs the responder
// nothing.
const ocspRevokedRecheck = time.Hour

// ocspMaxResponse bounds a responder's answer; real ones are a few KB.
const ocspMaxResponse = 1 << 20

// staple is a verified OCSP response and the certificate carrying it.
type staple struct {
	cert       *tls.Certificate // copy of the entry's certificate with OCSPStaple set
	raw        []byte
	thisUpdate time.Time
	nextUpdate time.Time
}

// refreshAt is half-way through the response's validity window.
func (s *staple) refreshAt() time.Time {
	return s.thisUpdate.Add(s.nextUpdate.Sub(s.thisUpdate) / 2)
}

// verifyStaple parses raw for e and returns a staple when the response is
// signed by e's issuer (or a responder it delegated to), is for e's serial,
// says Good, is current at now and does not outlive the certificate.
func verifyStaple(e *entry, raw []byte, now time.Time) (*staple, error) {
	s, rev, err := checkResponse(e, raw, now)
	if err != nil {
		return nil, err
	}
	if rev != nil {
		return nil, errors.New("certificate status is revoked")
	}
	return s, nil
}

// checkResponse verifies raw for e. A Good answer that passes every check
// of verifyStaple comes back as a staple. A Revoked answer comes back as
// the parsed response once its signature and serial verify: revocation is
// final, so it counts even when stale or outliving the certificate. Every
// other answer is an error.
func checkResponse(e *entry, raw []byte, now time.Time) (*staple, *ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(raw, e.leaf, e.issuer)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case r.SerialNumber == nil || r.SerialNumber.Cmp(e.leaf.SerialNumber) != 0:
		return nil, nil, errors.New("response is for another certificate")
	case r.Status == ocsp.Revoked:
		return nil, r, nil
	case r.Status != ocsp.Good:
		return nil, nil, fmt.Errorf("certificate status is %s", statusName(r.Status))
	case r.NextUpdate.IsZero():
		return nil, nil, errors.New("response has no next update time")
	case now.Before(r.ThisUpdate):
		return nil, nil, fmt.Errorf("response not valid before %s", r.ThisUpdate.UTC().Format(time.RFC3339))
	case !now.Before(r.NextUpdate):
		return nil, nil, fmt.Errorf("response expired at %s", r.NextUpdate.UTC().Format(time.RFC3339))
	case r.NextUpdate.After(e.leaf.NotAfter):
		return nil, nil, errors.New("response outlives the certificate")
	}
	c := *e.cert
	c.OCSPStaple = raw
	return &staple{cert: &c, raw: raw, thisUpdate: r.ThisUpdate, nextUpdate: r.NextUpdate}, nil, nil
}

func statusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	default:
		return "unknown"
	}
}

// staplePath is where e's staple is persisted.
func (m *Manager) staplePath(e *entry) string {
	return filepath.Join(m.stateDir, "ocsp", hex.EncodeToString(e.fp[:]))
}

// loadStaple returns a still valid persisted staple for e, or nil.
func (m *Manager) loadStaple(e *entry, now time.Time) *staple {
	if e.ocspURL == "" || e.issuer == nil {
		return nil
	}
	raw, err := os.ReadFile(m.staplePath(e))
	if err != nil {
		return nil
	}
	s, err := verifyStaple(e, raw, now)
	if err != nil {
		return nil
	}
	return s
}

// adoptStaple gives a new entry the staple of an identical certificate in
// old, or a persisted one.
func (m *Manager) adoptStaple(e *entry, old *state, now time.Time, disabled bool) {
	if disabled || e.ocspURL == "" || e.issuer == nil {
		return
	}
	if old != nil {
		for _, o := range append(append([]*entry(nil), old.files...), old.selfSigned) {
			if o != nil && o.fp == e.fp {
				if s := o.staple.Load(); s != nil && now.Before(s.nextUpdate) {
					// Rebuild around e.cert so the served certificate is
					// e's, not o's.
					if ns, err := verifyStaple(e, s.raw, now); err == nil {
						e.staple.Store(ns)
						return
					}
				}
			}
		}
	}
	if s := m.loadStaple(e, now); s != nil {
		e.staple.Store(s)
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

// refreshStaple asks e's responder for a new response when stapling is on,
// e names a responder, its staple is missing or past half its window and
// no earlier failure or revoked answer asks to wait. Network I/O happens
// without locks; the result is swapped in atomically:
//   - Good: the new staple is served and saved;
//   - Revoked: the staple is dropped (a revoked response is never
//     stapled), the answer replaces the saved staple so a restart cannot
//     bring the Good one back, and it is logged at error level and counted;
//   - anything else is a failure: a valid staple keeps serving.
func (m *Manager) refreshStaple(ctx context.Context, e *entry) {
	if st := m.state.Load(); st == nil || st.cfg.DisableOCSP {
		return
	}
	if e.ocspURL == "" || e.issuer == nil {
		return // the normal case since Let's Encrypt dropped OCSP
	}
	if !e.fetching.CompareAndSwap(false, true) {
		return
	}
	defer e.fetching.Store(false)
	now := m.now()
	s := e.staple.Load()
	if s != nil && now.Before(s.refreshAt()) {
		return
	}
	m.maintMu.Lock()
	next := m.ocspNext[e.fp]
	m.maintMu.Unlock()
	if now.Before(next) {
		return
	}
	raw, err := m.fetchOCSP(ctx, e)
	var ns *staple
	var rev *ocsp.Response
	if err == nil {
		ns, rev, err = checkResponse(e, raw, now)
	}
	if rev != nil && s != nil && rev.ThisUpdate.Before(s.thisUpdate) {
		// A replayed answer from before a certificate hold was lifted.
		rev, err = nil, fmt.Errorf("revoked response of %s is older than the staple of %s",
			rev.ThisUpdate.UTC().Format(time.RFC3339), s.thisUpdate.UTC().Format(time.RFC3339))
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not the responder's failure.
	case err != nil:
		m.maintMu.Lock()
		m.ocspNext[e.fp] = now.Add(ocspRetryAfter)
		m.maintMu.Unlock()
		m.met.ocspFailures.Inc()
		valid := s != nil && now.Before(s.nextUpdate)
		m.log.Warn("ocsp refresh failed", "certificate", e.src, "responder", e.ocspURL, "keeping_valid_staple", valid, "err", err)
	case rev != nil:
		e.staple.Store(nil)
		m.maintMu.Lock()
		m.ocspNext[e.fp] = revokedRecheck(rev, now)
		m.maintMu.Unlock()
		m.saveStaple(e, raw)
		m.met.ocspRevoked.Inc()
		m.log.Error("certificate revoked according to its ocsp responder; it is served without a staple until it is replaced",
			"certificate", e.src, "names", certNames(e.leaf), "serial", e.leaf.SerialNumber.String(),
			"revoked_at", rev.RevokedAt, "reason", rev.RevocationReason, "responder", e.ocspURL,
			"dropped_good_staple", s != nil, "must_staple", e.mustStaple)
	default:
		m.maintMu.Lock()
		delete(m.ocspNext, e.fp)
		m.maintMu.Unlock()
		e.staple.Store(ns)
		m.saveStaple(e, raw)
		m.log.Debug("ocsp staple refreshed", "certificate", e.src, "next_update", ns.nextUpdate)
	}
}

// revokedRecheck is when to ask again about a certificate the responder
// called revoked: half-way through the answer's validity window, but not
// sooner than ocspRetryAfter, or after ocspRevokedRecheck when the answer
// names no next update.
func revokedRecheck(r *ocsp.Response, now time.Time) time.Time {
	if r.NextUpdate.IsZero() {
		return now.Add(ocspRevokedRecheck)
	}
	half := r.ThisUpdate.Add(r.NextUpdate.Sub(r.ThisUpdate) / 2)
	if soonest := now.Add(ocspRetryAfter); half.Before(soonest) {
		return soonest
	}
	return half
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
		err = writeFileAtomic(filepath.Join(dir, hex.EncodeToString(e.fp[:])), raw)
	}
	if err != nil {
		m.log.Warn("ocsp response not saved", "certificate", e.src, "err", err)
	}
}

// fetchOCSP asks e's responder (POST) and returns the raw answer.
func (m *Manager) fetchOCSP(ctx context.Context, e *entry) ([]byte, error) {
	reqDER, err := ocsp.CreateRequest(e.leaf, e.issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ocspURL, bytes.NewReader(reqDER))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	res, err := m.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("responder answered %s", res.Status)
	}
	return io.ReadAll(io.LimitReader(res.Body, ocspMaxResponse))
}
