// Package ocspstaple keeps OCSP staples for server certificates: it asks
// a certificate's responder, verifies the answer against the issuer and
// decides when to ask again, the way certmagic's ocsp.go does.
//
// A [Cert] is one served certificate with its current [Staple]; a
// [Stapler] refreshes Certs. Only Good answers that are current and do
// not outlive the certificate are stapled, and a staple is refreshed
// half-way through its validity window. A failed fetch keeps a valid
// staple and waits [RetryAfter] before asking again. A verified Revoked
// answer drops the staple (it is never stapled itself). Certificates
// without a responder URL (every Let's Encrypt certificate since 2025)
// are the normal case: nothing is asked. Where staples are persisted, and
// what is logged and counted, is the caller's: [Stapler.Refresh] reports
// what happened and hands back the answer to save.
package ocspstaple

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// RetryAfter is the pause after a failed OCSP fetch: the responder is
// not hammered every poll while the current staple (if any) keeps serving.
const RetryAfter = 5 * time.Minute

// revokedRecheck is how long to wait before asking again about a
// certificate the responder called revoked when the answer names no next
// update: an hourly error log is loud enough and costs the responder
// nothing.
const revokedRecheck = time.Hour

// maxResponse bounds a responder's answer; real ones are a few KB.
const maxResponse = 1 << 20

// Staple is a verified OCSP response and the certificate carrying it.
// It is never modified.
type Staple struct {
	// Cert is a copy of the Cert's certificate with OCSPStaple set: what
	// a handshake serves.
	Cert *tls.Certificate
	// Raw is the DER response.
	Raw []byte
	// ThisUpdate and NextUpdate bound the response's validity.
	ThisUpdate, NextUpdate time.Time
}

// RefreshAt is half-way through the response's validity window.
func (s *Staple) RefreshAt() time.Time {
	return s.ThisUpdate.Add(s.NextUpdate.Sub(s.ThisUpdate) / 2)
}

// Cert is one served certificate and its current staple. The
// certificate is fixed at [NewCert]; the staple may be read and replaced
// concurrently.
type Cert struct {
	cert   *tls.Certificate // as loaded, never carries a staple
	leaf   *x509.Certificate
	issuer *x509.Certificate // nil when the chain has no issuer
	url    string            // the first OCSP responder of leaf; "" for none
	fp     [32]byte          // sha256 of the leaf

	staple atomic.Pointer[Staple]
	// fetching is set while a goroutine asks the responder about this
	// certificate, so two callers of Refresh do not both ask.
	fetching atomic.Bool
}

// NewCert returns the Cert of cert, whose parsed leaf is leaf. The
// issuer is the chain's second certificate; a chain without one cannot
// be stapled.
func NewCert(cert *tls.Certificate, leaf *x509.Certificate) (*Cert, error) {
	c := &Cert{cert: cert, leaf: leaf, fp: sha256.Sum256(leaf.Raw)}
	if len(cert.Certificate) > 1 {
		iss, err := x509.ParseCertificate(cert.Certificate[1])
		if err != nil {
			return nil, fmt.Errorf("issuer certificate: %w", err)
		}
		c.issuer = iss
	}
	if len(leaf.OCSPServer) > 0 {
		c.url = leaf.OCSPServer[0]
	}
	return c, nil
}

// Responder is the URL of the certificate's OCSP responder; "" when it
// names none.
func (c *Cert) Responder() string { return c.url }

// Stapleable reports whether the certificate names a responder and its
// chain holds the issuer to verify answers with.
func (c *Cert) Stapleable() bool { return c.url != "" && c.issuer != nil }

// Fingerprint is the SHA-256 of the leaf certificate: the same for every
// Cert of one certificate, and a stable key for a saved staple.
func (c *Cert) Fingerprint() [32]byte { return c.fp }

// Staple returns the current staple, or nil. It may have expired: serve
// it only while the clock is before its NextUpdate.
func (c *Cert) Staple() *Staple { return c.staple.Load() }

// SetStaple replaces the current staple (nil drops it). s must come from
// this Cert's [Cert.Verify].
func (c *Cert) SetStaple(s *Staple) { c.staple.Store(s) }

// Verify parses raw for c and returns a staple when the response is
// signed by c's issuer (or a responder it delegated to), is for c's
// serial, says Good, is current at now and does not outlive the
// certificate.
func (c *Cert) Verify(raw []byte, now time.Time) (*Staple, error) {
	if c.issuer == nil {
		return nil, errors.New("certificate chain has no issuer")
	}
	s, rev, err := c.check(raw, now)
	if err != nil {
		return nil, err
	}
	if rev != nil {
		return nil, errors.New("certificate status is revoked")
	}
	return s, nil
}

// check verifies raw for c. A Good answer that passes every check of
// Verify comes back as a staple. A Revoked answer comes back as the
// parsed response once its signature and serial verify: revocation is
// final, so it counts even when stale or outliving the certificate. Every
// other answer is an error.
func (c *Cert) check(raw []byte, now time.Time) (*Staple, *ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(raw, c.leaf, c.issuer)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case r.SerialNumber == nil || r.SerialNumber.Cmp(c.leaf.SerialNumber) != 0:
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
	case r.NextUpdate.After(c.leaf.NotAfter):
		return nil, nil, errors.New("response outlives the certificate")
	}
	tc := *c.cert
	tc.OCSPStaple = raw
	return &Staple{Cert: &tc, Raw: raw, ThisUpdate: r.ThisUpdate, NextUpdate: r.NextUpdate}, nil, nil
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

// Stapler refreshes the staples of Certs. It remembers, per certificate
// fingerprint, when to ask again after a failure or a revoked answer. It
// is safe for concurrent use.
type Stapler struct {
	client *http.Client
	now    func() time.Time

	mu   sync.Mutex
	next map[[32]byte]time.Time // fingerprint → earliest next fetch after a failure or a revoked answer
}

// NewStapler returns a Stapler asking responders through client and
// reading the time from now.
func NewStapler(client *http.Client, now func() time.Time) *Stapler {
	return &Stapler{client: client, now: now, next: map[[32]byte]time.Time{}}
}

// Outcome says what [Stapler.Refresh] did.
type Outcome int

const (
	// Skipped: nothing was asked, or the fetch ended because ctx did
	// (not the responder's failure). The staple is unchanged.
	Skipped Outcome = iota
	// Refreshed: a Good answer is the new staple; Result.Raw is to save.
	Refreshed
	// Revoked: the responder says the certificate is revoked. The staple
	// is dropped; Result.Raw replaces the saved staple so a restart cannot
	// bring a Good one back.
	Revoked
	// Failed: the fetch or the answer failed (Result.Err); the staple is
	// unchanged and the next fetch waits RetryAfter.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Skipped:
		return "skipped"
	case Refreshed:
		return "refreshed"
	case Revoked:
		return "revoked"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is what [Stapler.Refresh] did and what the caller logs, counts
// and saves.
type Result struct {
	Outcome Outcome
	// Previous is the staple before the call (nil for none).
	Previous *Staple
	// Staple is the new staple (Refreshed).
	Staple *Staple
	// Raw is the answer to persist (Refreshed, Revoked).
	Raw []byte
	// Revocation is the verified revoked answer (Revoked).
	Revocation *ocsp.Response
	// Err says why the refresh failed (Failed).
	Err error
	// PreviousValid reports that Previous was still valid at the time of
	// the refresh (Failed: it keeps serving).
	PreviousValid bool
}

// Refresh asks c's responder for a new response when c is stapleable, its
// staple is missing or past half its window and no earlier failure or
// revoked answer asks to wait; otherwise it returns a Skipped result at
// once, as it does while another Refresh of c is asking. Network I/O
// happens without locks and the result is swapped in atomically:
//   - Good: the new staple is served;
//   - Revoked: the staple is dropped (a revoked response is never
//     stapled) and the answer is rechecked half-way through its window
//     (at least RetryAfter later, an hour when it names no next update).
//     A revoked answer older than the current staple is a replay from
//     before a certificate hold was lifted, and a failure;
//   - anything else is a failure: a valid staple keeps serving.
func (s *Stapler) Refresh(ctx context.Context, c *Cert) Result {
	if !c.Stapleable() {
		return Result{} // the normal case since Let's Encrypt dropped OCSP
	}
	if !c.fetching.CompareAndSwap(false, true) {
		return Result{}
	}
	defer c.fetching.Store(false)
	now := s.now()
	prev := c.staple.Load()
	if prev != nil && now.Before(prev.RefreshAt()) {
		return Result{Previous: prev}
	}
	s.mu.Lock()
	next := s.next[c.fp]
	s.mu.Unlock()
	if now.Before(next) {
		return Result{Previous: prev}
	}
	raw, err := s.fetch(ctx, c)
	var ns *Staple
	var rev *ocsp.Response
	if err == nil {
		ns, rev, err = c.check(raw, now)
	}
	if rev != nil && prev != nil && rev.ThisUpdate.Before(prev.ThisUpdate) {
		// A replayed answer from before a certificate hold was lifted.
		rev, err = nil, fmt.Errorf("revoked response of %s is older than the staple of %s",
			rev.ThisUpdate.UTC().Format(time.RFC3339), prev.ThisUpdate.UTC().Format(time.RFC3339))
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not the responder's failure.
		return Result{Previous: prev}
	case err != nil:
		s.mu.Lock()
		s.next[c.fp] = now.Add(RetryAfter)
		s.mu.Unlock()
		return Result{Outcome: Failed, Previous: prev, Err: err, PreviousValid: prev != nil && now.Before(prev.NextUpdate)}
	case rev != nil:
		c.staple.Store(nil)
		s.mu.Lock()
		s.next[c.fp] = recheckRevoked(rev, now)
		s.mu.Unlock()
		return Result{Outcome: Revoked, Previous: prev, Raw: raw, Revocation: rev}
	default:
		s.mu.Lock()
		delete(s.next, c.fp)
		s.mu.Unlock()
		c.staple.Store(ns)
		return Result{Outcome: Refreshed, Previous: prev, Staple: ns, Raw: raw}
	}
}

// recheckRevoked is when to ask again about a certificate the responder
// called revoked: half-way through the answer's validity window, but not
// sooner than RetryAfter, or after revokedRecheck when the answer names
// no next update.
func recheckRevoked(r *ocsp.Response, now time.Time) time.Time {
	if r.NextUpdate.IsZero() {
		return now.Add(revokedRecheck)
	}
	half := r.ThisUpdate.Add(r.NextUpdate.Sub(r.ThisUpdate) / 2)
	if soonest := now.Add(RetryAfter); half.Before(soonest) {
		return soonest
	}
	return half
}

// fetch asks c's responder (POST) and returns the raw answer.
func (s *Stapler) fetch(ctx context.Context, c *Cert) ([]byte, error) {
	reqDER, err := ocsp.CreateRequest(c.leaf, c.issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(reqDER))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	res, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("responder answered %s", res.Status)
	}
	return io.ReadAll(io.LimitReader(res.Body, maxResponse))
}

// oidTLSFeature is id-pe-tlsfeature (RFC 7633); status_request is 5.
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// MustStaple reports whether c carries the TLS feature extension with
// status_request (OCSP Must-Staple).
func MustStaple(c *x509.Certificate) bool {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidTLSFeature) {
			continue
		}
		var features []int
		if _, err := asn1.Unmarshal(ext.Value, &features); err != nil {
			return false
		}
		return slices.Contains(features, 5)
	}
	return false
}
