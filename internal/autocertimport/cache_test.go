package autocertimport

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// testCA issues certificates for cache entries.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-100 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issue returns the PEM chain (leaf, CA) of a certificate for name with
// key's public half, valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, name string, key crypto.Signer, notBefore, notAfter time.Time) []byte {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecPEM is key as autocert writes it (SEC 1).
func ecPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestCheckCacheEntry: what autocert cannot parse is flagged; what it can
// parse (including entries it will replace itself, such as an expired
// certificate) is left alone.
func TestCheckCacheEntry(t *testing.T) {
	ca := newTestCA(t)
	key := ecKey(t)
	keyPEM := ecPEM(t, key)
	now := time.Now()
	chain := ca.issue(t, "a.test", key, now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := ca.issue(t, "a.test", key, now.Add(-72*time.Hour), now.Add(-48*time.Hour))
	otherChain := ca.issue(t, "a.test", ecKey(t), now.Add(-time.Hour), now.Add(24*time.Hour))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	for _, tc := range []struct {
		desc, name string
		data       []byte
		kind       string
		bad        bool
	}{
		{"account key", accountKeyName, keyPEM, KindAccountKey, false},
		{"rsa account key", accountKeyName, rsaPEM, KindAccountKey, false},
		{"legacy account key garbage", legacyAccountKeyName, []byte("junk"), KindAccountKey, true},
		{"account key of a public key block", accountKeyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), KindAccountKey, true},
		{"certificate", "a.test", cat(keyPEM, chain), KindCertificate, false},
		{"expired certificate (autocert renews it)", "a.test", cat(keyPEM, expired), KindCertificate, false},
		{"rsa variant name", "a.test+rsa", cat(keyPEM, chain), KindCertificate, false},
		{"certificate for another key", "a.test", cat(keyPEM, otherChain), KindCertificate, true},
		{"truncated chain", "a.test", cat(keyPEM, chain[:len(chain)/2]), KindCertificate, true},
		{"no chain", "a.test", keyPEM, KindCertificate, true},
		{"empty", "a.test", nil, KindCertificate, true},
		{"http-01 token is not checked", "tok+http-01", []byte("anything"), "", false},
	} {
		kind, err := checkEntry(tc.name, tc.data)
		if kind != tc.kind || (err != nil) != tc.bad {
			t.Errorf("%s: kind %q, problem %v; want kind %q, bad %v", tc.desc, kind, err, tc.kind, tc.bad)
		}
	}
}

// logBuffer keeps log lines for assertions.
type logBuffer struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func newLogBuffer(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.t.Log(string(p))
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(p))
	return len(p), nil
}

// find reports whether a line logged at level contains every one of subs.
func (b *logBuffer) find(level string, subs ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
next:
	for _, l := range b.lines {
		if !strings.Contains(l, "level="+level+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return true
	}
	return false
}

// TestCacheMovesAside: a corrupt entry moved aside twice in the same
// second leaves two kept files (the first is never overwritten), each
// logged at error level and reported.
func TestCacheMovesAside(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	logger, logs := newLogBuffer(t)
	var corrupt []string
	im := &importer{Options{Dir: dir, Now: func() time.Time { return now }, Logger: logger,
		Corrupt: func(kind string) { corrupt = append(corrupt, kind) }}}
	for _, data := range []string{"first bad", "second bad"} {
		if err := os.WriteFile(filepath.Join(dir, accountKeyName), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := im.moveAside(accountKeyName, KindAccountKey, errors.New("bad")); err != nil {
			t.Fatal(err)
		}
	}
	stamp := now.UTC().Format(BadStampLayout)
	base := filepath.Join(dir, accountKeyName)
	for file, want := range map[string]string{base + ".bad-" + stamp: "first bad", base + ".bad-" + stamp + "-2": "second bad"} {
		if got, err := os.ReadFile(file); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", file, got, err, want)
		}
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt key still in place: %v", err)
	}
	if len(corrupt) != 2 || corrupt[0] != KindAccountKey || corrupt[1] != KindAccountKey {
		t.Errorf("reported %v, want two %s", corrupt, KindAccountKey)
	}
	if !logs.find("ERROR", base+".bad-"+stamp+"-2") {
		t.Error("second move not logged at error level")
	}
}

// TestImport: the account key and the certificates autocert left are
// stored where certmagic looks for them; expired certificates, names a
// certificate does not cover, corrupt files (moved aside) and a name the
// storage already holds a longer-lived certificate for are not.
func TestImport(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	dir, store := t.TempDir(), t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	acct, key := ecKey(t), ecKey(t)
	write(accountKeyName, ecPEM(t, acct))
	valid := cat(ecPEM(t, key), ca.issue(t, "a.test", key, now.Add(-time.Hour), now.Add(24*time.Hour)))
	write("a.test", valid)
	write("a.test+rsa", cat(ecPEM(t, key), ca.issue(t, "a.test", key, now.Add(-time.Hour), now.Add(48*time.Hour))))
	write("old.test", cat(ecPEM(t, key), ca.issue(t, "old.test", key, now.Add(-72*time.Hour), now.Add(-time.Hour))))
	write("other.test", cat(ecPEM(t, key), ca.issue(t, "a.test", key, now.Add(-time.Hour), now.Add(24*time.Hour))))
	write("bad.test", []byte("garbage"))
	write("tok+http-01", []byte("token"))

	storage := &certmagic.FileStorage{Path: store}
	ctx := context.Background()
	const ik = "ca.test-dir"
	// kept.test: the storage holds a certificate lasting longer.
	longer := ca.issue(t, "kept.test", key, now.Add(-time.Hour), now.Add(72*time.Hour))
	if err := storage.Store(ctx, certmagic.StorageKeys.SiteCert(ik, "kept.test"), longer); err != nil {
		t.Fatal(err)
	}
	write("kept.test", cat(ecPEM(t, key), ca.issue(t, "kept.test", key, now.Add(-time.Hour), now.Add(24*time.Hour))))

	var corrupt []string
	Import(ctx, Options{Dir: dir, Storage: storage, IssuerKey: ik, DirectoryURL: "https://ca.test/dir",
		Email: "Ops@Example.com", Now: func() time.Time { return now },
		Corrupt: func(kind string) { corrupt = append(corrupt, kind) }})

	if got, err := storage.Load(ctx, "acme/"+ik+"/users/ops@example.com/ops.key"); err != nil || !bytes.Equal(got, ecPEM(t, acct)) {
		t.Errorf("account key in storage: %v (equal %v)", err, bytes.Equal(got, ecPEM(t, acct)))
	}
	if got, err := storage.Load(ctx, certmagic.StorageKeys.SiteCert(ik, "a.test")); err != nil || !bytes.Contains(valid, bytes.TrimSpace(got)) {
		t.Errorf("a.test: %v; want the ECDSA entry's chain (not the +rsa one)", err)
	}
	if _, err := storage.Load(ctx, certmagic.StorageKeys.SitePrivateKey(ik, "a.test")); err != nil {
		t.Errorf("a.test key: %v", err)
	}
	for _, n := range []string{"old.test", "other.test", "bad.test", "tok+http-01"} {
		if storage.Exists(ctx, certmagic.StorageKeys.SiteCert(ik, n)) {
			t.Errorf("%s imported", n)
		}
	}
	if got, _ := storage.Load(ctx, certmagic.StorageKeys.SiteCert(ik, "kept.test")); !bytes.Equal(got, longer) {
		t.Error("kept.test: the longer-lived stored certificate was replaced")
	}
	if len(corrupt) != 1 || corrupt[0] != KindCertificate {
		t.Errorf("reported %v, want one %s", corrupt, KindCertificate)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "bad.test.bad-*")); len(aside) != 1 {
		t.Errorf("moved aside: %v, want bad.test.bad-<timestamp>", aside)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.test")); err != nil {
		t.Errorf("imported file no longer in the old cache: %v", err)
	}
}
