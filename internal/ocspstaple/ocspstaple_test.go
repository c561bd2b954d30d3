package ocspstaple

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ca is a test certificate authority that also signs OCSP responses.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(t *testing.T, now time.Time) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &ca{cert: c, key: key}
}

// issue returns a certificate (leaf and ca in the chain) valid for 90
// days naming responder url ("" for none), with extra extensions.
func (a *ca) issue(t *testing.T, now time.Time, url string, ext ...pkix.Extension) (*tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		ExtraExtensions: ext,
	}
	if url != "" {
		tmpl.OCSPServer = []string{url}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: key, Leaf: leaf}, leaf
}

// respond is a response signed by a for serial.
func (a *ca) respond(t *testing.T, serial *big.Int, status int, this, next time.Time) []byte {
	t.Helper()
	raw, err := ocsp.CreateResponse(a.cert, a.cert, ocsp.Response{
		Status: status, SerialNumber: serial, ThisUpdate: this, NextUpdate: next, RevokedAt: this,
	}, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// responder is a real OCSP responder over HTTP for a ca.
type responder struct {
	ca    *ca
	clock *clock
	srv   *httptest.Server

	mu     sync.Mutex
	status int           // ocsp.Good etc.
	window time.Duration // NextUpdate - ThisUpdate
	age    time.Duration // how long before now ThisUpdate lies
	down   bool          // answer 503
	hits   int
}

func newResponder(t *testing.T, a *ca, c *clock) *responder {
	r := &responder{ca: a, clock: c, status: ocsp.Good, window: 4 * time.Hour}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		status, window, age, down := r.status, r.window, r.age, r.down
		r.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		oreq, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		this := r.clock.Now().Add(-age)
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(r.ca.respond(t, oreq.SerialNumber, status, this, this.Add(window)))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *responder) set(f func(r *responder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *responder) hitCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// setup returns a clock, a responder and a Cert naming it, with a Stapler.
func setup(t *testing.T) (*clock, *responder, *Cert, *Stapler) {
	t.Helper()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	a := newCA(t, clk.Now())
	r := newResponder(t, a, clk)
	tc, leaf := a.issue(t, clk.Now(), r.srv.URL)
	c, err := NewCert(tc, leaf)
	if err != nil {
		t.Fatal(err)
	}
	return clk, r, c, NewStapler(r.srv.Client(), clk.Now)
}

// TestRefreshLifecycle: a Good answer is stapled, refreshed half-way
// through its window and not before; a failure keeps the valid staple and
// waits RetryAfter before asking again; a Revoked answer drops it.
func TestRefreshLifecycle(t *testing.T) {
	clk, r, c, s := setup(t)
	ctx := context.Background()

	res := s.Refresh(ctx, c)
	if res.Outcome != Refreshed || c.Staple() == nil || res.Staple != c.Staple() || len(res.Raw) == 0 {
		t.Fatalf("first refresh: outcome %v, staple %v; want Refreshed with the staple served", res.Outcome, c.Staple())
	}
	first := c.Staple()
	if got := first.Cert.OCSPStaple; string(got) != string(res.Raw) {
		t.Error("staple's certificate does not carry the response")
	}
	if c.cert.OCSPStaple != nil {
		t.Error("the Cert's own certificate was modified")
	}
	if want := clk.Now().Add(4 * time.Hour); !first.NextUpdate.Equal(want) {
		t.Errorf("NextUpdate %v, want %v", first.NextUpdate, want)
	}

	// Not due before half the window: nothing asked.
	clk.Advance(2*time.Hour - time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Skipped || r.hitCount() != 1 {
		t.Errorf("before half the window: outcome %v, %d requests; want Skipped, 1", res.Outcome, r.hitCount())
	}
	clk.Advance(time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Refreshed || c.Staple() == first || res.Previous != first {
		t.Fatalf("at half the window: outcome %v; want Refreshed with a new staple", res.Outcome)
	}
	second := c.Staple()

	// The responder fails: the valid staple stays, and it is not asked
	// again before RetryAfter.
	clk.Advance(2 * time.Hour)
	r.set(func(r *responder) { r.down = true })
	res = s.Refresh(ctx, c)
	if res.Outcome != Failed || res.Err == nil || !strings.Contains(res.Err.Error(), "503") || !res.PreviousValid || c.Staple() != second {
		t.Fatalf("responder down: outcome %v, err %v, previous valid %v; want Failed (503), staple kept", res.Outcome, res.Err, res.PreviousValid)
	}
	hits := r.hitCount()
	r.set(func(r *responder) { r.down = false })
	clk.Advance(RetryAfter - time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Skipped || r.hitCount() != hits {
		t.Errorf("within RetryAfter of a failure: outcome %v, %d new requests; want Skipped, none", res.Outcome, r.hitCount()-hits)
	}
	clk.Advance(time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Refreshed {
		t.Errorf("after RetryAfter: outcome %v (%v), want Refreshed", res.Outcome, res.Err)
	}

	// Revoked: the staple is dropped and the answer handed back to save.
	clk.Advance(2 * time.Hour)
	r.set(func(r *responder) { r.status = ocsp.Revoked })
	res = s.Refresh(ctx, c)
	if res.Outcome != Revoked || res.Revocation == nil || len(res.Raw) == 0 || c.Staple() != nil || res.Previous == nil {
		t.Fatalf("revoked: outcome %v, staple %v; want Revoked, staple dropped", res.Outcome, c.Staple())
	}
	// Asked again half-way through the revoked answer's window (2 h), not
	// at every call.
	hits = r.hitCount()
	clk.Advance(2*time.Hour - time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Skipped || r.hitCount() != hits {
		t.Errorf("soon after a revoked answer: outcome %v, %d new requests; want Skipped, none", res.Outcome, r.hitCount()-hits)
	}
	clk.Advance(time.Second)
	if res := s.Refresh(ctx, c); res.Outcome != Revoked {
		t.Errorf("half-way through the revoked answer: outcome %v, want Revoked", res.Outcome)
	}
}

// TestRefreshReplayedRevocation: a revoked answer older than the current
// staple (a replay from before a certificate hold was lifted) is a
// failure, and the Good staple keeps serving.
func TestRefreshReplayedRevocation(t *testing.T) {
	clk, r, c, s := setup(t)
	ctx := context.Background()
	if res := s.Refresh(ctx, c); res.Outcome != Refreshed {
		t.Fatalf("first refresh: %v (%v)", res.Outcome, res.Err)
	}
	good := c.Staple()
	clk.Advance(3 * time.Hour)
	r.set(func(r *responder) { r.status, r.age = ocsp.Revoked, 3*time.Hour+time.Minute })
	res := s.Refresh(ctx, c)
	if res.Outcome != Failed || res.Err == nil || !strings.Contains(res.Err.Error(), "older than the staple") || c.Staple() != good {
		t.Errorf("replayed revocation: outcome %v, err %v; want Failed (older than the staple), staple kept", res.Outcome, res.Err)
	}
}

// TestRefreshWithoutResponder: a certificate naming no responder is not
// stapleable and nothing is asked.
func TestRefreshWithoutResponder(t *testing.T) {
	clk, r, _, s := setup(t)
	tc, leaf := r.ca.issue(t, clk.Now(), "")
	c, err := NewCert(tc, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stapleable() || c.Responder() != "" {
		t.Errorf("stapleable %v, responder %q; want false, none", c.Stapleable(), c.Responder())
	}
	if res := s.Refresh(context.Background(), c); res.Outcome != Skipped || r.hitCount() != 0 {
		t.Errorf("outcome %v, %d requests; want Skipped, none", res.Outcome, r.hitCount())
	}
}

// TestRefreshCanceled: a fetch ended by ctx is not the responder's
// failure: no retry wait is recorded.
func TestRefreshCanceled(t *testing.T) {
	_, _, c, s := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := s.Refresh(ctx, c); res.Outcome != Skipped {
		t.Errorf("canceled: outcome %v (%v), want Skipped", res.Outcome, res.Err)
	}
	if res := s.Refresh(context.Background(), c); res.Outcome != Refreshed {
		t.Errorf("after a canceled fetch: outcome %v (%v), want Refreshed at once", res.Outcome, res.Err)
	}
}

// TestVerify: only a Good answer signed by the issuer, for the serial,
// current and not outliving the certificate, makes a staple.
func TestVerify(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	a, other := newCA(t, now), newCA(t, now)
	tc, leaf := a.issue(t, now, "http://ocsp.test")
	c, err := NewCert(tc, leaf)
	if err != nil {
		t.Fatal(err)
	}
	serial := leaf.SerialNumber
	for _, tc := range []struct {
		name string
		raw  []byte
		want string // error substring; "" for a staple
	}{
		{"good", a.respond(t, serial, ocsp.Good, now, now.Add(time.Hour)), ""},
		{"signed by another CA", other.respond(t, serial, ocsp.Good, now, now.Add(time.Hour)), "signature"},
		{"another serial", a.respond(t, big.NewInt(7), ocsp.Good, now, now.Add(time.Hour)), "no response matching"},
		{"revoked", a.respond(t, serial, ocsp.Revoked, now, now.Add(time.Hour)), "revoked"},
		{"unknown", a.respond(t, serial, ocsp.Unknown, now, now.Add(time.Hour)), "status is unknown"},
		{"no next update", a.respond(t, serial, ocsp.Good, now, time.Time{}), "no next update"},
		{"not yet valid", a.respond(t, serial, ocsp.Good, now.Add(time.Minute), now.Add(time.Hour)), "not valid before"},
		{"expired", a.respond(t, serial, ocsp.Good, now.Add(-2*time.Hour), now), "expired"},
		{"outlives the certificate", a.respond(t, serial, ocsp.Good, now, leaf.NotAfter.Add(time.Hour)), "outlives"},
		{"garbage", []byte("not ocsp"), "asn1"},
	} {
		s, err := c.Verify(tc.raw, now)
		switch {
		case tc.want == "" && (err != nil || s == nil || string(s.Cert.OCSPStaple) != string(tc.raw)):
			t.Errorf("%s: %v, want a staple carrying the response", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestMustStaple: the TLS feature extension with status_request is
// Must-Staple; other features are not.
func TestMustStaple(t *testing.T) {
	now := time.Now()
	a := newCA(t, now)
	ext := func(features ...int) pkix.Extension {
		v, _ := asn1.Marshal(features)
		return pkix.Extension{Id: oidTLSFeature, Value: v}
	}
	for _, tc := range []struct {
		name string
		ext  []pkix.Extension
		want bool
	}{
		{"none", nil, false},
		{"status_request", []pkix.Extension{ext(5)}, true},
		{"other feature", []pkix.Extension{ext(17)}, false},
	} {
		_, leaf := a.issue(t, now, "", tc.ext...)
		if got := MustStaple(leaf); got != tc.want {
			t.Errorf("%s: MustStaple %v, want %v", tc.name, got, tc.want)
		}
	}
}
