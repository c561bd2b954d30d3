package tlsedge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspRetryAfter is the pause after a failed OCSP fetch: the responder is
// not hammered every poll while the current staple (if any) keeps serving.
const ocspRetryAfter = 5 * time.Minute

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
	r, err := ocsp.ParseResponseForCert(raw, e.leaf, e.issuer)
	if err != nil {
		return nil, err
	}
	switch {
	case r.SerialNumber == nil || r.SerialNumber.Cmp(e.leaf.SerialNumber) != 0:
		return nil, errors.New("response is for another certificate")
	case r.Status != ocsp.Good:
		return nil, fmt.Errorf("certificate status is %s", statusName(r.Status))
	case r.NextUpdate.IsZero():
		return nil, errors.New("response has no next update time")
	case now.Before(r.ThisUpdate):
		return nil, fmt.Errorf("response not valid before %s", r.ThisUpdate.UTC().Format(time.RFC3339))
	case !now.Before(r.NextUpdate):
		return nil, fmt.Errorf("response expired at %s", r.NextUpdate.UTC().Format(time.RFC3339))
	case r.NextUpdate.After(e.leaf.NotAfter):
		return nil, errors.New("response outlives the certificate")
	}
	c := *e.cert
	c.OCSPStaple = raw
	return &staple{cert: &c, raw: raw, thisUpdate: r.ThisUpdate, nextUpdate: r.NextUpdate}, nil
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
// responder and whose staple is missing or past half its window. Network
// I/O happens without locks; a new staple is swapped in atomically. A
// failed fetch keeps the old staple while it is valid.
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
		if e.ocspURL == "" || e.issuer == nil {
			continue // the normal case since Let's Encrypt dropped OCSP
		}
		now := m.now()
		s := e.staple.Load()
		if s != nil && now.Before(s.refreshAt()) {
			continue
		}
		m.maintMu.Lock()
		retry := m.ocspRetry[e.fp]
		m.maintMu.Unlock()
		if now.Before(retry) {
			continue
		}
		ns, err := m.fetchStaple(ctx, e, now)
		if err != nil {
			m.maintMu.Lock()
			m.ocspRetry[e.fp] = now.Add(ocspRetryAfter)
			m.maintMu.Unlock()
			m.met.ocspFailures.Inc()
			valid := s != nil && now.Before(s.nextUpdate)
			m.log.Warn("ocsp refresh failed", "certificate", e.src, "responder", e.ocspURL, "keeping_valid_staple", valid, "err", err)
			continue
		}
		m.maintMu.Lock()
		delete(m.ocspRetry, e.fp)
		m.maintMu.Unlock()
		e.staple.Store(ns)
		if dir, err := m.ensureDir("ocsp"); err == nil {
			if err := writeFileAtomic(filepath.Join(dir, hex.EncodeToString(e.fp[:])), ns.raw); err != nil {
				m.log.Warn("ocsp staple not persisted", "err", err)
			}
		}
		m.log.Debug("ocsp staple refreshed", "certificate", e.src, "next_update", ns.nextUpdate)
	}
}

// fetchStaple asks e's responder (POST) and verifies the answer.
func (m *Manager) fetchStaple(ctx context.Context, e *entry, now time.Time) (*staple, error) {
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
	raw, err := io.ReadAll(io.LimitReader(res.Body, ocspMaxResponse))
	if err != nil {
		return nil, err
	}
	return verifyStaple(e, raw, now)
}
