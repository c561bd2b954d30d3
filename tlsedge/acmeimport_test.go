package tlsedge

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// autocertCache obtains a certificate for name with autocert (what
// Gatehouse used before certmagic, configured as it was) against p,
// answering tls-alpn-01 on tlsLn, and leaves autocert's cache in
// state/acme.
func autocertCache(t *testing.T, p *pebbleCA, state, name string, tlsLn net.Listener) *tls.Certificate {
	t.Helper()
	am := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(state, "acme")),
		Email:      "ops@example.com",
		HostPolicy: autocert.HostWhitelist(name),
		Client: &acme.Client{
			DirectoryURL: p.dirURL,
			HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.wfeRoots}}, Timeout: time.Minute},
		},
	}
	ln := tls.NewListener(tlsLn, am.TLSConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer func() {
		tlsLn.Close()
		<-done
	}()
	c, err := am.GetCertificate(monitorHello(name))
	if err != nil {
		t.Fatalf("autocert: %v", err)
	}
	return c
}

// TestACMEImportAutocertCache: the cache written by autocert (the account
// key and the certificate) is imported on the first start: the old
// certificate is served at once and nothing is ordered; a name added
// later is ordered with the imported account (no new account).
func TestACMEImportAutocertCache(t *testing.T) {
	const name = "old.example.com"
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	state := t.TempDir()
	old := autocertCache(t, p, state, name, tlsLn)
	if p.orders.Load() != 1 || p.accounts.Load() != 1 {
		t.Fatalf("autocert: %d orders, %d accounts; want 1 and 1", p.orders.Load(), p.accounts.Load())
	}
	p.orders.Store(0)
	p.accounts.Store(0)

	tlsLn2, _ := listen(t)
	cfg := acmeConfig(p, true, false, name)
	e := startEdge(t, state, cfg, tlsLn2, httpLn, Options{})
	c, err := dial(e.tlsAddr, name, p.certRoots, nil)
	if err != nil {
		t.Fatalf("handshake after the upgrade: %v", err)
	}
	if got := leafOf(c).SerialNumber; got.Cmp(old.Leaf.SerialNumber) != 0 {
		t.Errorf("served serial %v, want autocert's %v", got, old.Leaf.SerialNumber)
	}
	c.Close()
	quiesce(t, e.m)
	if got := p.orders.Load(); got != 0 {
		t.Errorf("orders after the upgrade = %d, want 0", got)
	}

	// A new name is ordered with the imported account.
	cfg = acmeConfig(p, true, false, name, "new.example.com")
	if err := e.m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	c, err = dialSlow(e.tlsAddr, "new.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake for a new name: %v", err)
	}
	c.Close()
	if got := p.orders.Load(); got != 1 {
		t.Errorf("orders for the new name = %d, want 1", got)
	}
	if got := p.accounts.Load(); got != 0 {
		t.Errorf("accounts created after the upgrade = %d, want 0 (the imported one is used)", got)
	}
}

// TestACMEStoredCertificateUnusable: a certificate in the certmagic
// storage that does not load (a torn copy) is kept aside as
// <file>.bad-<timestamp>, counted, and a new one is ordered instead of
// the name failing until someone deletes the file.
func TestACMEStoredCertificateUnusable(t *testing.T) {
	const name = "torn.example.com"
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	state := t.TempDir()
	cfg := acmeConfig(p, true, false, name)
	e := startEdge(t, state, cfg, tlsLn, httpLn, Options{})
	c, err := dialSlow(e.tlsAddr, name, p.certRoots)
	if err != nil {
		t.Fatal(err)
	}
	first := leafOf(c).SerialNumber
	c.Close()
	e.stop()
	crts, _ := filepath.Glob(filepath.Join(state, "certmagic", "certificates", "*", name, name+".crt"))
	if len(crts) != 1 {
		t.Fatalf("stored certificates: %v", crts)
	}
	if err := os.WriteFile(crts[0], []byte("-----BEGIN CERTIFICATE-----\ntorn\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tlsLn2, _ := listen(t)
	// Port 80 again, where Pebble validates (the first edge closed it).
	httpLn2, err := net.Listen("tcp", httpLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpLn2.Close() })
	reg := newRegistry()
	e2 := startEdge(t, state, cfg, tlsLn2, httpLn2, Options{Registerer: reg})
	c, err = dialSlow(e2.tlsAddr, name, p.certRoots)
	if err != nil {
		t.Fatalf("handshake with a torn stored certificate: %v", err)
	}
	if leafOf(c).SerialNumber.Cmp(first) == 0 {
		t.Error("served the old serial")
	}
	c.Close()
	if aside, _ := filepath.Glob(crts[0] + ".bad-*"); len(aside) != 1 {
		t.Errorf("kept aside: %v, want one %s.bad-<timestamp>", aside, crts[0])
	}
	if got := counterValue(t, reg, "gatehouse_tls_acme_cache_corrupt_total", "kind", "certificate"); got != 1 {
		t.Errorf("gatehouse_tls_acme_cache_corrupt_total{kind=certificate} = %v, want 1", got)
	}
	if got := p.orders.Load(); got != 2 {
		t.Errorf("orders = %d, want 2", got)
	}
}
