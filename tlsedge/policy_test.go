package tlsedge

import (
	"crypto/tls"
	"testing"
)

func TestTLSPolicy(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"p.test"}})
	rc, rk, _ := ca.issue(t, issueOpts{names: []string{"rsa.test"}, key: rsaKey(t)})
	m, _ := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{writePair(t, dir, "p", cc, ck), writePair(t, dir, "r", rc, rk)}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{}))

	c, err := dial(addr, "p.test", ca.pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("default client negotiated %x, want TLS 1.3", v)
	}
	c.Close()

	protoBefore := failures(m, reasonProtocol)
	if c, err := dial(addr, "p.test", ca.pool, func(c *tls.Config) {
		c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	}); err == nil {
		c.Close()
		t.Error("TLS 1.1 client accepted")
	}
	for _, name := range []string{"p.test", "rsa.test"} {
		if c, err := dial(addr, name, ca.pool, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
				tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
			}
		}); err == nil {
			c.Close()
			t.Errorf("%s: TLS 1.2 client with only CBC/RSA-kx suites accepted", name)
		}
	}
	// TLS 1.2 with a good suite works, for ECDSA and RSA certificates.
	for _, name := range []string{"p.test", "rsa.test"} {
		c, err := dial(addr, name, ca.pool, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
		if err != nil {
			t.Fatalf("%s TLS 1.2: %v", name, err)
		}
		if v := c.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Errorf("%s: version %x, want TLS 1.2", name, v)
		}
		c.Close()
	}
	// The three rejections reached the error log and were counted.
	waitFor(t, func() bool { return failures(m, reasonProtocol) >= protoBefore+3 })

	// No session tickets when off: a second connection does not resume.
	cache := tls.NewLRUClientSessionCache(4)
	for i := 0; i < 2; i++ {
		c, err := dial(addr, "p.test", ca.pool, func(c *tls.Config) { c.ClientSessionCache = cache })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := get(c); err != nil { // read so TLS 1.3 tickets would arrive
			t.Fatal(err)
		}
		if c.ConnectionState().DidResume {
			t.Errorf("connection %d resumed with tickets off", i)
		}
		c.Close()
	}
}

func TestSessionTicketsOnResume(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cc, ck, _ := ca.issue(t, issueOpts{names: []string{"p.test"}})
	m, _ := newTestManager(t, "", nil)
	if err := m.Update(Config{Files: []FilePair{writePair(t, dir, "p", cc, ck)}}); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m, m.TLSConfig(Policy{SessionTickets: true}))
	cache := tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		c, err := dial(addr, "p.test", ca.pool, func(c *tls.Config) { c.ClientSessionCache = cache })
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := get(c); err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().DidResume
	}
	resumed()
	if !resumed() {
		t.Fatal("tickets on: second connection did not resume")
	}
	// After more rotations than kept keys, old tickets no longer work.
	for i := 0; i < ticketKeysKept; i++ {
		m.rotateTickets()
	}
	if resumed() {
		t.Error("resumed with a ticket whose key was rotated out")
	}
}

func TestParsePolicy(t *testing.T) {
	if v, err := ParseVersion("1.3"); err != nil || v != tls.VersionTLS13 {
		t.Errorf("ParseVersion(1.3) = %x, %v", v, err)
	}
	if _, err := ParseVersion("1.1"); err == nil {
		t.Error("ParseVersion(1.1) accepted")
	}
	if id, err := ParseCipherSuite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"); err != nil || id != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("ParseCipherSuite = %x, %v", id, err)
	}
	for _, bad := range []string{"TLS_RSA_WITH_RC4_128_SHA", "TLS_AES_128_GCM_SHA256", "nope"} {
		if _, err := ParseCipherSuite(bad); err == nil {
			t.Errorf("ParseCipherSuite(%s) accepted", bad)
		}
	}
	if err := CheckPolicy(Policy{MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("CheckPolicy accepted TLS 1.0")
	}
	if err := CheckPolicy(Policy{CipherSuites: []uint16{tls.TLS_RSA_WITH_RC4_128_SHA}}); err == nil {
		t.Error("CheckPolicy accepted RC4")
	}
}
