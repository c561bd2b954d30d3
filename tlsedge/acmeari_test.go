package tlsedge

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const day = 24 * time.Hour

// ariCertID is the RFC 9773 identifier of c: base64url(AKI).base64url(serial),
// the serial in its DER encoding without tag and length, so with a leading
// zero byte when its top bit is set (a positive INTEGER).
func ariCertID(c *x509.Certificate) string {
	serial := c.SerialNumber.Bytes()
	if len(serial) == 0 || serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...)
	}
	return base64.RawURLEncoding.EncodeToString(c.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(serial)
}

// TestARICertIDSerial: a serial whose top bit is set keeps the DER sign
// byte in the identifier (the flake this fixed: about half of Pebble's
// random serials).
func TestARICertIDSerial(t *testing.T) {
	for _, c := range []struct {
		serial int64
		want   string
	}{
		{0x7f01, "fwE"},  // 7f 01
		{0xe26d, "AOJt"}, // 00 e2 6d
		{0, "AA"},        // 00
	} {
		cert := &x509.Certificate{AuthorityKeyId: []byte{1}, SerialNumber: big.NewInt(c.serial)}
		if got := ariCertID(cert); got != "AQ."+c.want {
			t.Errorf("serial %#x: %s, want AQ.%s", c.serial, got, c.want)
		}
	}
}

// setARI makes Pebble answer renewalInfo for c with the window [start, end].
func (p *pebbleCA) setARI(t *testing.T, c *x509.Certificate, start, end time.Time) {
	t.Helper()
	window, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start, "end": end}})
	body, _ := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})),
		"ARIResponse": string(window),
	})
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tlsConfig{RootCAs: p.wfeRoots}}}
	defer cl.CloseIdleConnections()
	res, err := cl.Post(p.baseURL()+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("set-renewal-info: %s", res.Status)
	}
}

// TestACMEARIRenewal: a 90-day certificate is not due, until the CA moves
// its ARI window to the past: the next ARI check (on the CA's
// Retry-After cadence, here 1 s) renews it, the new order names the
// replaced certificate, the new certificate is served and the window is
// exported.
func TestACMEARIRenewal(t *testing.T) {
	const name = "ari.example.com"
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, uint64(90*day/time.Second))
	ra := "1"
	p.ariRetryAfter.Store(&ra)
	reg := newRegistry()
	e := startEdge(t, t.TempDir(), acmeConfig(p, true, false, name), tlsLn, httpLn,
		Options{Registerer: reg, RenewCheckInterval: 100 * time.Millisecond})
	c, err := dialSlow(e.tlsAddr, name, p.certRoots)
	if err != nil {
		t.Fatal(err)
	}
	first := leafOf(c)
	c.Close()
	// The CA's own window (two thirds into the lifetime) is exported.
	waitUntil(t, "the ARI window is exported", func() bool {
		n, _ := testutil.GatherAndCount(reg, "gatehouse_tls_acme_ari_window_start_seconds")
		return n == 1
	})
	if got := p.orders.Load(); got != 1 {
		t.Fatalf("orders before the ARI change = %d, want 1", got)
	}

	now := time.Now()
	p.setARI(t, first, now.Add(-2*time.Hour), now.Add(-time.Hour))
	waitUntil(t, "a renewed certificate is served", func() bool {
		c, err := dial(e.tlsAddr, name, p.certRoots, nil)
		if err != nil {
			return false
		}
		defer c.Close()
		return leafOf(c).SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if got := p.replacesSeen(); !slices.Contains(got, ariCertID(first)) {
		t.Errorf("orders named replaces %q, want one naming %s", got, ariCertID(first))
	}
	// Another instance's (or the maintenance's) reload can serve the new
	// certificate a moment before the renewal's own event is counted.
	waitUntil(t, "the renewal is counted", func() bool {
		return testutil.ToFloat64(e.m.met.renewals.WithLabelValues("success")) >= 1
	})
}

// TestACMEProfiles: the global profile and a per-name override order
// certificates of the profiles' lifetimes.
func TestACMEProfiles(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebbleWith(t, pebbleOpts{httpPort: httpPort, tlsPort: tlsPort, validity: uint64(90 * day / time.Second),
		profiles: map[string]uint64{"shortlived": uint64(6 * day / time.Second), "tlsserver": uint64(45 * day / time.Second)}})
	cfg := acmeConfig(p, true, false, "short.example.com", "server.example.com")
	cfg.ACME.Profile = "tlsserver"
	cfg.ACMEOverrides = map[string]ACMEOverride{"short.example.com": {Profile: "shortlived"}}
	e := startEdge(t, t.TempDir(), cfg, tlsLn, httpLn, Options{})
	for name, want := range map[string]time.Duration{"short.example.com": 6 * day, "server.example.com": 45 * day} {
		c, err := dialSlow(e.tlsAddr, name, p.certRoots)
		if err != nil {
			t.Fatal(err)
		}
		l := leafOf(c)
		c.Close()
		if got := l.NotAfter.Sub(l.NotBefore).Round(time.Hour); got != want {
			t.Errorf("%s: lifetime %v, want %v", name, got, want)
		}
	}
	if got := p.orders.Load(); got != 2 {
		t.Errorf("orders = %d, want 2", got)
	}
}

// baseURL is the scheme and host of the directory.
func (p *pebbleCA) baseURL() string { return strings.TrimSuffix(p.dirURL, wfe.DirectoryPath) }

// TestACMERemovedNameNotRenewed: a name removed from the configuration
// leaves certmagic's maintenance: with every certificate due at once
// (renew ratio 1) the remaining name keeps being renewed, the removed one
// is never ordered again, and its handshakes fail like any unknown name's
// without reaching the CA.
func TestACMERemovedNameNotRenewed(t *testing.T) {
	// certmagic keeps a renewal backoff per name for the whole process:
	// fresh names keep -count=N runs apart.
	keepName, goneName := uniqueName("keep"), uniqueName("gone")
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 3600)
	cfg := acmeConfig(p, true, false, keepName, goneName)
	cfg.ACME.RenewRatio = 1
	e := startEdge(t, t.TempDir(), cfg, tlsLn, httpLn, Options{RenewCheckInterval: 50 * time.Millisecond})
	for _, n := range []string{keepName, goneName} {
		c, err := dialSlow(e.tlsAddr, n, p.certRoots)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	cfg2 := acmeConfig(p, true, false, keepName)
	cfg2.ACME.RenewRatio = 1
	if err := e.m.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	// The removal is applied by Run's pass: wait until it is done, then
	// until the kept name has been renewed twice more.
	waitUntil(t, goneName+" no longer managed", func() bool {
		e.m.maintMu.Lock()
		defer e.m.maintMu.Unlock()
		_, ok := e.m.managing[goneName]
		return !ok
	})
	// A renewal already past the policy check when the name was removed
	// may still complete: one more order at most, then none.
	gone := p.ordersFor(goneName)
	for round := range 2 {
		keep := p.ordersFor(keepName)
		waitUntil(t, keepName+" renewed twice more", func() bool { return p.ordersFor(keepName) >= keep+2 })
		got := p.ordersFor(goneName)
		if round == 0 && got > gone+1 || round == 1 && got != gone {
			t.Fatalf("%s ordered %d more times after its removal (round %d)", goneName, got-gone, round)
		}
		gone = got
	}
	if c, err := dial(e.tlsAddr, goneName, p.certRoots, nil); err == nil {
		c.Close()
		t.Error("a removed name is still served")
	}
	if got := p.ordersFor(goneName); got != gone {
		t.Errorf("a handshake for a removed name reached the CA")
	}
}

// uniqueName is a host name under example.com no other test run uses.
func uniqueName(label string) string {
	return fmt.Sprintf("%s-%d.example.com", label, time.Now().UnixNano())
}
