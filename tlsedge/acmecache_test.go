package tlsedge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckCacheEntry: what autocert cannot parse is flagged; what it can
// parse (including entries it will replace itself, such as an expired
// certificate) is left alone.
func TestCheckCacheEntry(t *testing.T) {
	ca := newTestCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(key)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	chain, _, _ := ca.issue(t, issueOpts{names: []string{"a.test"}, key: key})
	expired, _, _ := ca.issue(t, issueOpts{names: []string{"a.test"}, key: key,
		notBefore: time.Now().Add(-72 * time.Hour), notAfter: time.Now().Add(-48 * time.Hour)})
	otherChain, _, _ := ca.issue(t, issueOpts{names: []string{"a.test"}})
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey(t).(*rsa.PrivateKey))})
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tc := range []struct {
		desc, name string
		data       []byte
		kind       string
		bad        bool
	}{
		{"account key", acmeAccountKeyName, ecPEM, cacheKindAccountKey, false},
		{"rsa account key", acmeAccountKeyName, rsaPEM, cacheKindAccountKey, false},
		{"legacy account key garbage", acmeLegacyAccountKeyName, []byte("junk"), cacheKindAccountKey, true},
		{"account key of a public key block", acmeAccountKeyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), cacheKindAccountKey, true},
		{"certificate", "a.test", cat(ecPEM, chain), cacheKindCertificate, false},
		{"expired certificate (autocert renews it)", "a.test", cat(ecPEM, expired), cacheKindCertificate, false},
		{"rsa variant name", "a.test+rsa", cat(ecPEM, chain), cacheKindCertificate, false},
		{"certificate for another key", "a.test", cat(ecPEM, otherChain), cacheKindCertificate, true},
		{"truncated chain", "a.test", cat(ecPEM, chain[:len(chain)/2]), cacheKindCertificate, true},
		{"no chain", "a.test", ecPEM, cacheKindCertificate, true},
		{"empty", "a.test", nil, cacheKindCertificate, true},
		{"http-01 token is not checked", "tok+http-01", []byte("anything"), "", false},
	} {
		kind, err := checkCacheEntry(tc.name, tc.data)
		if kind != tc.kind || (err != nil) != tc.bad {
			t.Errorf("%s: kind %q, problem %v; want kind %q, bad %v", tc.desc, kind, err, tc.kind, tc.bad)
		}
	}
}

// TestACMECacheMovesAside: a corrupt entry moved aside twice in the same
// second leaves two kept files (the first is never overwritten), each
// logged at error level and counted.
func TestACMECacheMovesAside(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	logger, logs := newLogBuffer(t)
	m, reg := newTestManagerWith(t, Options{Now: clock.Now, Logger: logger})
	for _, data := range []string{"first bad", "second bad"} {
		if err := os.WriteFile(filepath.Join(dir, acmeAccountKeyName), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.moveAside(dir, acmeAccountKeyName, cacheKindAccountKey, errors.New("bad")); err != nil {
			t.Fatal(err)
		}
	}
	stamp := clock.Now().UTC().Format(badStampLayout)
	base := filepath.Join(dir, acmeAccountKeyName)
	for file, want := range map[string]string{base + ".bad-" + stamp: "first bad", base + ".bad-" + stamp + "-2": "second bad"} {
		if got, err := os.ReadFile(file); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", file, got, err, want)
		}
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt key still in place: %v", err)
	}
	if got := counterValue(t, reg, "gatehouse_tls_acme_cache_corrupt_total", "kind", "account_key"); got != 2 {
		t.Errorf("counted %v, want 2", got)
	}
	if _, ok := logs.find("ERROR", base+".bad-"+stamp+"-2"); !ok {
		t.Error("second move not logged at error level")
	}
}
