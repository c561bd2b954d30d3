package tlsedge

import (
	"context"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestFilesSNIExactThenWildcard(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	wc, wk, wleaf := ca.issue(t, issueOpts{names: []string{"*.example.com"}})
	ec, ek, eleaf := ca.issue(t, issueOpts{names: []string{"api.example.com"}})
	m, _ := newTestManager(t, "", nil)
	cfg := Config{
		Files: []FilePair{writePair(t, dir, "wild", wc, wk), writePair(t, dir, "api", ec, ek)},
		Names: []string{"api.example.com", "www.example.com", "shop.example.com"},
	}
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	for _, tc := range []struct {
		sni  string
		want string
	}{
		{"api.example.com", eleaf.SerialNumber.String()},
		{"API.Example.COM", eleaf.SerialNumber.String()},
		{"www.example.com", wleaf.SerialNumber.String()},
		{"shop.example.com", wleaf.SerialNumber.String()},
	} {
		c, err := dial(addr, tc.sni, ca.pool, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		if got := leafOf(c).SerialNumber.String(); got != tc.want {
			t.Errorf("%s: served serial %s, want %s", tc.sni, got, tc.want)
		}
		c.Close()
	}
	// No SNI: fails, unless a default name is configured.
	if _, err := m.GetCertificate(&tlsHello{}); err == nil {
		t.Error("no SNI without DefaultName: certificate served")
	}
	cfg.DefaultName = "www.example.com"
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if c, err := m.GetCertificate(&tlsHello{}); err != nil || c.Leaf.SerialNumber.Cmp(wleaf.SerialNumber) != 0 {
		t.Errorf("no SNI with DefaultName: %v", err)
	}
	cfg.DefaultName = "nothere.org"
	if err := m.Update(cfg); err == nil || !strings.Contains(err.Error(), "nothere.org") {
		t.Errorf("uncovered DefaultName accepted: %v", err)
	}
	// Unknown names, including a two-level name under the wildcard, fail.
	for _, sni := range []string{"example.com", "a.b.example.com", "other.org"} {
		before := failures(m, reasonUnknownSNI)
		if c, err := dial(addr, sni, ca.pool, func(c *tlsConfig) { c.InsecureSkipVerify = true }); err == nil {
			c.Close()
			t.Errorf("%s: handshake succeeded, want failure", sni)
		}
		if got := failures(m, reasonUnknownSNI); got != before+1 {
			t.Errorf("%s: unknown_sni failures %v, want %v", sni, got, before+1)
		}
	}
}

func TestFileReplacedServedOnNextHandshake(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1, l1 := ca.issue(t, issueOpts{names: []string{"site.test"}})
	fp := writePair(t, dir, "site", c1, k1)
	m, reg := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{fp}, Names: []string{"site.test"}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	open, err := dial(addr, "site.test", ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got := leafOf(open).SerialNumber; got.Cmp(l1.SerialNumber) != 0 {
		t.Fatalf("served %v, want %v", got, l1.SerialNumber)
	}

	// Renewal on disk (as certbot does): new cert, new key.
	c2, k2, l2 := ca.issue(t, issueOpts{names: []string{"site.test"}, notAfter: time.Now().Add(60 * 24 * time.Hour)})
	replaceFile(t, fp.KeyFile, k2)
	replaceFile(t, fp.CertFile, c2)
	// Make the change visible even on coarse-mtime file systems.
	future := time.Now().Add(time.Minute)
	os.Chtimes(fp.CertFile, future, future)
	m.maintain(context.Background())

	c, err := dial(addr, "site.test", ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := leafOf(c).SerialNumber; got.Cmp(l2.SerialNumber) != 0 {
		t.Errorf("after replacement served %v, want %v", got, l2.SerialNumber)
	}
	c.Close()
	// The connection opened before the replacement still works.
	if resp, err := get(open); err != nil || !strings.Contains(resp, "ok") {
		t.Errorf("old connection: %q, %v", resp, err)
	}
	if err := testutilGatherHas(reg, "gatehouse_tls_certificate_not_after_seconds", "site.test", float64(l2.NotAfter.Unix())); err != nil {
		t.Error(err)
	}

	// A broken replacement (key of another cert) is rejected; the loaded
	// certificate keeps serving.
	_, k3, _ := ca.issue(t, issueOpts{names: []string{"site.test"}})
	replaceFile(t, fp.KeyFile, k3)
	future = future.Add(time.Minute)
	os.Chtimes(fp.KeyFile, future, future)
	m.maintain(context.Background())
	c, err = dial(addr, "site.test", ca.pool, nil)
	if err != nil {
		t.Fatalf("after broken replacement: %v", err)
	}
	if got := leafOf(c).SerialNumber; got.Cmp(l2.SerialNumber) != 0 {
		t.Errorf("after broken replacement served %v, want %v", got, l2.SerialNumber)
	}
	c.Close()
}

// TestRunPollsFiles: Run's maintenance pass picks up replaced certificate
// files at its next poll, not sooner and not a poll later. It runs on
// synctest's fake clock (the manager's own clock, which judges validity,
// follows it from the real time the test began), so the poll is exact
// whatever the load.
func TestRunPollsFiles(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1, l1 := ca.issue(t, issueOpts{names: []string{"site.test"}})
	c2, k2, l2 := ca.issue(t, issueOpts{names: []string{"site.test"}})
	fp := writePair(t, dir, "site", c1, k1)
	stateDir := t.TempDir()
	realStart := time.Now()
	synctest.Test(t, func(t *testing.T) {
		const poll = 20 * time.Millisecond
		fakeStart := time.Now()
		m, err := New(Options{StateDir: stateDir, PollInterval: poll, Logger: testLogger(t),
			Now: func() time.Time { return realStart.Add(time.Since(fakeStart)) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Update(Config{Files: []FilePair{fp}, Names: []string{"site.test"}}); err != nil {
			t.Fatal(err)
		}
		serial := func() string {
			c, err := m.GetCertificate(&tlsHello{ServerName: "site.test"})
			if err != nil {
				return err.Error()
			}
			return c.Leaf.SerialNumber.String()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait() // the first pass is done; Run waits for its ticker

		replaceFile(t, fp.KeyFile, k2)
		replaceFile(t, fp.CertFile, c2)
		future := realStart.Add(time.Minute) // a new mtime, whatever the file system's resolution
		os.Chtimes(fp.CertFile, future, future)
		time.Sleep(poll - time.Nanosecond)
		synctest.Wait()
		if got := serial(); got != l1.SerialNumber.String() {
			t.Fatalf("before the next poll the certificate served is %s, want the first (%s)", got, l1.SerialNumber)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := serial(); got != l2.SerialNumber.String() {
			t.Fatalf("after the next poll the certificate served is %s, want the replacement (%s)", got, l2.SerialNumber)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckErrors(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	now := time.Now()
	goodC, goodK, _ := ca.issue(t, issueOpts{names: []string{"good.test"}})
	otherC, _, _ := ca.issue(t, issueOpts{names: []string{"mismatch.test"}})
	expC, expK, _ := ca.issue(t, issueOpts{names: []string{"old.test"}, notBefore: now.Add(-90 * 24 * time.Hour), notAfter: now.Add(-time.Hour)})
	good := writePair(t, dir, "good", goodC, goodK)
	mismatch := FilePair{CertFile: writePair(t, dir, "mm", otherC, goodK).CertFile, KeyFile: good.KeyFile}
	expired := writePair(t, dir, "exp", expC, expK)
	missing := FilePair{CertFile: dir + "/nope.crt", KeyFile: dir + "/nope.key"}

	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{Files: []FilePair{good}, Names: []string{"good.test"}}, nil},
		{"mismatch", Config{Files: []FilePair{mismatch}}, []string{mismatch.CertFile, "private key does not match public key"}},
		{"expired", Config{Files: []FilePair{expired}}, []string{expired.CertFile, "expired at"}},
		{"missing", Config{Files: []FilePair{missing}}, []string{"nope.crt", "no such file"}},
		{"uncovered", Config{Files: []FilePair{good}, Names: []string{"good.test", "bad.test"}}, []string{`site name "bad.test": not covered`}},
		{"all at once", Config{Files: []FilePair{good, mismatch, expired}, Names: []string{"x.test"}}, []string{"does not match", "expired at", `"x.test"`}},
		{"acme no challenge", Config{ACMENames: []string{"a.test"}}, []string{"enable at least one of http01 and tls_alpn01"}},
		{"acme wildcard", Config{ACMENames: []string{"*.a.test"}, ACME: ACME{HTTP01: true}}, []string{`acme name "*.a.test"`}},
		{"acme http directory", Config{ACMENames: []string{"a.test"}, ACME: ACME{HTTP01: true, DirectoryURL: "http://ca/dir"}}, []string{"must be an https URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.cfg, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check: nil error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestUpdateErrorKeepsServing(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1, l1 := ca.issue(t, issueOpts{names: []string{"site.test"}})
	fp := writePair(t, dir, "site", c1, k1)
	m, _ := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{fp}, Names: []string{"site.test"}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))
	_, k2, _ := ca.issue(t, issueOpts{names: []string{"site.test"}})
	bad := writePair(t, dir, "bad", c1, k2)
	err := m.Update(Config{Files: []FilePair{bad}, Names: []string{"site.test", "new.test"}})
	if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), `"new.test"`) {
		t.Fatalf("Update error = %v, want key mismatch and uncovered new.test", err)
	}
	c, err := dial(addr, "site.test", ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := leafOf(c).SerialNumber; got.Cmp(l1.SerialNumber) != 0 {
		t.Errorf("served %v, want old %v", got, l1.SerialNumber)
	}
}

func TestSelfSignedPersisted(t *testing.T) {
	dir := t.TempDir()
	m, _ := newTestManager(t, dir, nil)
	if err := m.Update(Config{SelfSigned: []string{"localhost", "127.0.0.1"}, Names: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	c1, err := m.GetCertificate(&tlsHello{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir + "/selfsigned/key.pem", dir + "/selfsigned/cert.pem"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir + "/selfsigned"); fi.Mode().Perm() != 0o700 {
		t.Errorf("selfsigned dir mode %v, want 0700", fi.Mode().Perm())
	}
	m2, _ := newTestManager(t, dir, nil)
	if err := m2.Update(Config{SelfSigned: []string{"localhost", "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	c2, err := m2.GetCertificate(&tlsHello{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) != 0 {
		t.Error("restart generated a new self-signed certificate, want the persisted one")
	}
}
