package tlsedge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"
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

// TestACMECacheMovesAside: a corrupt entry read twice in the same second
// leaves two kept files (the first is never overwritten) and reads as a
// miss; a good entry is returned unchanged.
func TestACMECacheMovesAside(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	logger, logs := newLogBuffer(t)
	var counted []string
	c := &acmeCache{dir: autocert.DirCache(dir), log: logger, now: clock.Now, corrupt: func(k string) { counted = append(counted, k) }}
	ctx := context.Background()
	for i, data := range []string{"first bad", "second bad"} {
		if err := c.Put(ctx, acmeAccountKeyName, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, acmeAccountKeyName); !errors.Is(err, autocert.ErrCacheMiss) {
			t.Fatalf("Get of a corrupt key #%d: %v, want ErrCacheMiss", i+1, err)
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
	if strings.Join(counted, ",") != "account_key,account_key" {
		t.Errorf("counted %v, want two account_key", counted)
	}
	if _, ok := logs.find("ERROR", base+".bad-"+stamp+"-2"); !ok {
		t.Error("second move not logged at error level")
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	good := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := c.Put(ctx, acmeAccountKeyName, good); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, acmeAccountKeyName); err != nil || string(got) != string(good) {
		t.Errorf("Get of a good key: %v", err)
	}
}
