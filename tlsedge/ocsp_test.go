package tlsedge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-proxy/gatehouse/internal/ocspstaple"
)

// stapleOf handshakes and returns the stapled OCSP response.
func stapleOf(t *testing.T, addr, name string, ca *testCA) []byte {
	t.Helper()
	return stapleFrom(t, addr, name, ca.pool)
}

// stapleFrom handshakes trusting roots and returns the stapled response.
func stapleFrom(t *testing.T, addr, name string, roots *x509.CertPool) []byte {
	t.Helper()
	c, err := dial(addr, name, roots, nil)
	if err != nil {
		t.Fatalf("handshake %s: %v", name, err)
	}
	defer c.Close()
	return c.ConnectionState().OCSPResponse
}

func TestOCSPStapling(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	dir, state := t.TempDir(), t.TempDir()
	cc, ck, leaf := ca.issue(t, issueOpts{names: []string{"stapled.test"}, ocspURL: resp.srv.URL})
	nc, nk, _ := ca.issue(t, issueOpts{names: []string{"plain.test"}})
	cfg := Config{
		Files: []FilePair{writePair(t, dir, "stapled", cc, ck), writePair(t, dir, "plain", nc, nk)},
		Names: []string{"stapled.test", "plain.test"},
	}
	m, reg := newTestManager(t, state, clock)
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	if s := stapleOf(t, addr, "stapled.test", ca); s != nil {
		t.Fatal("staple before the first maintenance pass")
	}
	m.maintain(context.Background())
	first := stapleOf(t, addr, "stapled.test", ca)
	r, err := ocsp.ParseResponseForCert(first, leaf, ca.cert)
	if err != nil || r.Status != ocsp.Good {
		t.Fatalf("staple: %v, status %v", err, r)
	}
	if err := testutilGatherHas(reg, "gatehouse_tls_ocsp_next_update_seconds", "stapled.test", float64(r.NextUpdate.Unix())); err != nil {
		t.Error(err)
	}
	// No OCSP URL: no staple, no fetch.
	hits := resp.hits.Load()
	if s := stapleOf(t, addr, "plain.test", ca); s != nil {
		t.Error("certificate without OCSP URL got a staple")
	}

	// Before half the window nothing is fetched; after it, a new response.
	clock.Advance(time.Hour)
	m.maintain(context.Background())
	if got := resp.hits.Load(); got != hits {
		t.Errorf("responder hit %d times before refresh point, want 0", got-hits)
	}
	clock.Advance(90 * time.Minute) // 2.5h into a 4h window
	m.maintain(context.Background())
	second := stapleOf(t, addr, "stapled.test", ca)
	if bytes.Equal(first, second) {
		t.Fatal("staple not refreshed after half its window")
	}
	r2, _ := ocsp.ParseResponse(second, ca.cert)
	if !r2.ThisUpdate.After(r.ThisUpdate) {
		t.Errorf("refreshed ThisUpdate %v not after %v", r2.ThisUpdate, r.ThisUpdate)
	}

	// Restart with the responder down: the persisted staple is used at once.
	resp.down.Store(true)
	m2, _ := newTestManager(t, state, clock)
	if err := m2.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr2 := serveTLS(t, m2, m2.TLSConfig(Policy{}))
	if got := stapleOf(t, addr2, "stapled.test", ca); !bytes.Equal(got, second) {
		t.Error("restart did not staple the persisted response")
	}

	// Responder down past the refresh point: the valid staple is retained.
	clock.Advance(3 * time.Hour) // 3h into the second 4h window
	m2.maintain(context.Background())
	if got := stapleOf(t, addr2, "stapled.test", ca); !bytes.Equal(got, second) {
		t.Error("valid staple dropped while the responder is down")
	}
	// Past NextUpdate the staple is gone, not served expired.
	clock.Advance(2 * time.Hour)
	m2.maintain(context.Background())
	if got := stapleOf(t, addr2, "stapled.test", ca); got != nil {
		t.Error("expired staple served")
	}
	// The responder returns: stapled again.
	resp.down.Store(false)
	clock.Advance(ocspstaple.RetryAfter)
	m2.maintain(context.Background())
	if got := stapleOf(t, addr2, "stapled.test", ca); got == nil {
		t.Error("no staple after the responder came back")
	}
}

func TestOCSPRejectsBadResponses(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	dir := t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"s.test"}, ocspURL: resp.srv.URL})
	m, _ := newTestManager(t, "", clock)
	if err := m.Update(Config{Files: []FilePair{writePair(t, dir, "s", cc, ck)}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	for _, tc := range []struct {
		name  string
		setup func()
	}{
		{"expired response", func() { resp.stale.Store(true) }},
		{"revoked", func() { resp.status.Store(ocsp.Revoked) }},
		{"outlives certificate", func() { resp.window.Store(int64(40 * 24 * time.Hour)) }},
	} {
		resp.stale.Store(false)
		resp.status.Store(ocsp.Good)
		resp.window.Store(int64(4 * time.Hour))
		tc.setup()
		clock.Advance(3 * time.Hour) // past any wait the previous case set
		hits := resp.hits.Load()
		m.maintain(context.Background())
		if resp.hits.Load() == hits {
			t.Errorf("%s: responder not asked", tc.name)
		}
		if got := stapleOf(t, addr, "s.test", ca); got != nil {
			t.Errorf("%s: stapled", tc.name)
		}
	}
	// A response signed by another CA is rejected too.
	other := newTestCA(t)
	resp.ca.Store(&testCA{cert: ca.cert, key: other.key, pool: ca.pool})
	resp.window.Store(int64(4 * time.Hour))
	resp.status.Store(ocsp.Good)
	clock.Advance(3 * time.Hour)
	hits := resp.hits.Load()
	m.maintain(context.Background())
	if resp.hits.Load() == hits {
		t.Error("bad signature: responder not asked")
	}
	if got := stapleOf(t, addr, "s.test", ca); got != nil {
		t.Error("response with a bad signature stapled")
	}
}

func TestMustStaple(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	resp.down.Store(true)
	dir := t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"ms.test"}, ocspURL: resp.srv.URL, mustStaple: true})
	m, _ := newTestManager(t, "", clock)
	if err := m.Update(Config{Files: []FilePair{writePair(t, dir, "ms", cc, ck)}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	m.maintain(context.Background())
	if c, err := dial(addr, "ms.test", ca.pool, nil); err == nil {
		c.Close()
		t.Fatal("must-staple certificate served without a staple")
	}
	if got := failures(m, reasonMustStaple); got != 1 {
		t.Errorf("must_staple failures = %v, want 1", got)
	}
	_, err := m.GetCertificate(&tlsHello{ServerName: "ms.test"})
	if err == nil || !strings.Contains(err.Error(), "must-staple") {
		t.Errorf("GetCertificate error = %v, want a must-staple reason", err)
	}
	resp.down.Store(false)
	clock.Advance(ocspstaple.RetryAfter)
	m.maintain(context.Background())
	if got := stapleOf(t, addr, "ms.test", ca); got == nil {
		t.Error("must-staple certificate served without staple")
	}

	// Must-staple without any responder URL is a configuration error.
	cc2, ck2, _ := ca.issue(t, issueOpts{names: []string{"ms2.test"}, mustStaple: true})
	err = Check(Config{Files: []FilePair{writePair(t, dir, "ms2", cc2, ck2)}}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "must-staple") {
		t.Errorf("Check = %v, want must-staple error", err)
	}
}

// runManager runs m.Run until the test ends.
func runManager(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestOCSPRevokedReplacesStaple: a Good staple is no longer served once the
// responder says "revoked"; the answer is logged at error level with the
// certificate's names and serial, counted, and survives a restart (the
// saved Good staple does not come back).
func TestOCSPRevokedReplacesStaple(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	dir, state := t.TempDir(), t.TempDir()
	cc, ck, leaf := ca.issue(t, issueOpts{names: []string{"rev.test", "www.rev.test"}, ocspURL: resp.srv.URL})
	cfg := Config{Files: []FilePair{writePair(t, dir, "rev", cc, ck)}, Names: []string{"rev.test"}}
	logger, logs := newLogBuffer(t)
	m, reg := newTestManagerWith(t, Options{StateDir: state, Now: clock.Now, Logger: logger})
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	m.maintain(context.Background())
	good := stapleOf(t, addr, "rev.test", ca)
	if good == nil {
		t.Fatal("no Good staple to start with")
	}
	const revokedMetric = "gatehouse_tls_ocsp_revoked_total"

	// A "revoked" answer that does not verify (signed by another key) is a
	// failed fetch: the valid Good staple stays.
	other := newTestCA(t)
	resp.ca.Store(&testCA{cert: ca.cert, key: other.key, pool: ca.pool})
	resp.status.Store(ocsp.Revoked)
	clock.Advance(150 * time.Minute) // past half the 4 h window
	m.maintain(context.Background())
	if got := stapleOf(t, addr, "rev.test", ca); !bytes.Equal(got, good) {
		t.Error("a forged revoked answer changed the staple")
	}
	if got := counterValue(t, reg, revokedMetric); got != 0 {
		t.Errorf("%s = %v after a forged answer, want 0", revokedMetric, got)
	}

	// A genuine revoked answer older than the staple (a replay from before
	// a certificate hold was lifted) is a failed fetch too.
	resp.ca.Store(ca)
	resp.stale.Store(true)
	clock.Advance(ocspstaple.RetryAfter)
	m.maintain(context.Background())
	if got := stapleOf(t, addr, "rev.test", ca); !bytes.Equal(got, good) {
		t.Error("a revoked answer older than the staple changed the staple")
	}
	if got := counterValue(t, reg, revokedMetric); got != 0 {
		t.Errorf("%s = %v after a replayed answer, want 0", revokedMetric, got)
	}

	// The real answer: the Good staple is gone.
	resp.stale.Store(false)
	clock.Advance(ocspstaple.RetryAfter)
	m.maintain(context.Background())
	got := stapleOf(t, addr, "rev.test", ca)
	if bytes.Equal(got, good) {
		t.Fatal("still stapling the Good response after the responder said revoked")
	}
	if got != nil {
		t.Errorf("stapled %d bytes after revocation, want no staple", len(got))
	}
	if got := counterValue(t, reg, revokedMetric); got != 1 {
		t.Errorf("%s = %v, want 1", revokedMetric, got)
	}
	if _, ok := logs.find("ERROR", "revoked", "rev.test", "www.rev.test", leaf.SerialNumber.String()); !ok {
		t.Error("no error-level log line naming the certificate's names and serial")
	}

	// The responder is not asked again at every pass.
	hits := resp.hits.Load()
	clock.Advance(ocspstaple.RetryAfter)
	m.maintain(context.Background())
	if got := resp.hits.Load(); got != hits {
		t.Errorf("responder asked %d more times right after a revoked answer", got-hits)
	}

	// A restart with the responder down does not bring the Good staple back.
	resp.down.Store(true)
	m2, _ := newTestManager(t, state, clock)
	if err := m2.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr2 := serveTLS(t, m2, m2.TLSConfig(Policy{}))
	if got := stapleOf(t, addr2, "rev.test", ca); got != nil {
		t.Errorf("restart stapled %d bytes (Good staple equal: %v), want none", len(got), bytes.Equal(got, good))
	}
}

// TestOCSPStartupRefreshesHalfSpentStaple: a saved staple past half its
// validity is served at once after a restart and refreshed by Run's first
// pass, without the handshake waiting for the responder.
func TestOCSPStartupRefreshesHalfSpentStaple(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	dir, state := t.TempDir(), t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"start.test"}, ocspURL: resp.srv.URL})
	cfg := Config{Files: []FilePair{writePair(t, dir, "start", cc, ck)}, Names: []string{"start.test"}}
	m, _ := newTestManager(t, state, clock)
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	m.maintain(context.Background())
	saved, err := os.ReadFile(filepath.Join(state, "ocsp", hexFingerprint(t, cc)))
	if err != nil {
		t.Fatalf("staple not saved: %v", err)
	}

	clock.Advance(150 * time.Minute) // 2.5 h into the 4 h window
	gate := make(chan struct{})
	resp.gate.Store(&gate)
	resp.drain()
	// A poll interval far beyond the test: the fetch must be the start-up one.
	m2, _ := newTestManagerWith(t, Options{StateDir: state, Now: clock.Now, PollInterval: time.Hour})
	if err := m2.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m2, m2.TLSConfig(Policy{}))
	runManager(t, m2)
	resp.awaitRequest(t)
	// The responder is holding the refresh: the handshake is not waiting.
	if got := stapleOf(t, addr, "start.test", ca); !bytes.Equal(got, saved) {
		t.Errorf("during the refresh the handshake stapled %d bytes, want the saved staple", len(got))
	}
	close(gate)
	waitUntil(t, "the refreshed staple is served", func() bool {
		got := stapleOf(t, addr, "start.test", ca)
		return got != nil && !bytes.Equal(got, saved)
	})
}

// hexFingerprint is the staple file name of the leaf in chainPEM.
func hexFingerprint(t *testing.T, chainPEM []byte) string {
	t.Helper()
	blk, _ := pem.Decode(chainPEM)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	sum := sha256.Sum256(blk.Bytes)
	return hex.EncodeToString(sum[:])
}

// TestOCSPStaplingOff: with stapling off no OCSP request is made and no
// staple is served, also when a saved staple exists or stapling is turned
// off by a reload; a Must-Staple certificate is refused.
func TestOCSPStaplingOff(t *testing.T) {
	ca := newTestCA(t)
	clock := newClock()
	resp := newResponder(t, ca, clock)
	dir, state := t.TempDir(), t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"off.test"}, ocspURL: resp.srv.URL})
	cfg := Config{Files: []FilePair{writePair(t, dir, "off", cc, ck)}, Names: []string{"off.test"}}
	m, _ := newTestManager(t, state, clock)
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	m.maintain(context.Background())
	if stapleOf(t, addr, "off.test", ca) == nil {
		t.Fatal("no staple with stapling on")
	}

	// Turned off by a reload.
	cfg.DisableOCSP = true
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	hits := resp.hits.Load()
	if got := stapleOf(t, addr, "off.test", ca); got != nil {
		t.Error("staple served after stapling was turned off")
	}
	clock.Advance(3 * time.Hour) // past the refresh point
	m.maintain(context.Background())
	if got := stapleOf(t, addr, "off.test", ca); got != nil {
		t.Error("staple served with stapling off")
	}

	// Off from the start, with a saved staple in the state directory.
	m2, _ := newTestManager(t, state, clock)
	if err := m2.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr2 := serveTLS(t, m2, m2.TLSConfig(Policy{}))
	m2.maintain(context.Background())
	if got := stapleOf(t, addr2, "off.test", ca); got != nil {
		t.Error("saved staple served with stapling off")
	}
	if got := resp.hits.Load(); got != hits {
		t.Errorf("%d OCSP requests with stapling off, want 0", got-hits)
	}

	// A Must-Staple certificate cannot be served without stapling.
	mc, mk, _ := ca.issue(t, issueOpts{names: []string{"ms.off.test"}, ocspURL: resp.srv.URL, mustStaple: true})
	msCfg := Config{Files: []FilePair{writePair(t, dir, "ms", mc, mk)}, DisableOCSP: true}
	for _, err := range []error{Check(msCfg, clock.Now()), m2.Update(msCfg)} {
		if err == nil || !strings.Contains(err.Error(), "must-staple") || !strings.Contains(err.Error(), "stapling") {
			t.Errorf("must-staple certificate with stapling off: %v, want an error", err)
		}
	}
}
