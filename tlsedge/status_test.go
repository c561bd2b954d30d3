package tlsedge

import (
	"slices"
	"testing"
	"time"
)

// TestCertificates: the status view lists each served certificate once
// with the names it serves, its issuer, validity and renewal time; an
// ACME name without a certificate yet is listed as pending.
func TestCertificates(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	notAfter := time.Now().Add(60 * 24 * time.Hour).Truncate(time.Second)
	wc, wk, _ := ca.issue(t, issueOpts{names: []string{"*.example.com"}, notAfter: notAfter})
	m, _ := newTestManager(t, "", nil)
	if got := m.Certificates(); got != nil {
		t.Errorf("Certificates before any Update = %v, want none", got)
	}
	fp := writePair(t, dir, "wild", wc, wk)
	cfg := Config{
		Files:      []FilePair{fp},
		SelfSigned: []string{"dev.test"},
		ACMENames:  []string{"acme.example.org"},
		ACME:       ACME{DirectoryURL: "https://127.0.0.1:9/directory", HTTP01: true},
		Names:      []string{"www.example.com", "shop.example.com", "dev.test", "acme.example.org"},
	}
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	got := m.Certificates()
	if len(got) != 3 {
		t.Fatalf("Certificates = %+v, want 3 (file, self-signed, pending ACME)", got)
	}
	f := got[0]
	if f.Source != "file" || f.File != fp.CertFile || !slices.Equal(f.Names, []string{"www.example.com", "shop.example.com"}) ||
		f.Issuer != "tlsedge test CA" || !f.NotAfter.Equal(notAfter) || !f.RenewAt.IsZero() {
		t.Errorf("file certificate = %+v", f)
	}
	ss := got[1]
	if ss.Source != "self-signed" || !slices.Equal(ss.Names, []string{"dev.test"}) || ss.NotAfter.IsZero() ||
		!ss.RenewAt.Equal(ss.NotAfter.Add(-selfSignedMinLeft)) || ss.Issuer == "" {
		t.Errorf("self-signed certificate = %+v", ss)
	}
	a := got[2]
	if a.Source != "acme" || !slices.Equal(a.Names, []string{"acme.example.org"}) || !a.NotAfter.IsZero() || a.Issuer != "" {
		t.Errorf("pending ACME name = %+v, want source acme without validity", a)
	}
}

// TestCertificatesACME: an obtained ACME certificate is listed with its
// issuer, validity and renewal time (NotAfter less the renewal window).
func TestCertificatesACME(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	cfg := acmeConfig(p, true, false, "site.example.com")
	e := startEdge(t, t.TempDir(), cfg, tlsLn, httpLn, Options{})
	c, err := dialSlow(e.tlsAddr, "site.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance via http-01): %v", err)
	}
	leaf := leafOf(c)
	c.Close()
	waitFor(t, func() bool {
		e.m.maintMu.Lock()
		o := e.m.acmeSeen["site.example.com"]
		e.m.maintMu.Unlock()
		got := e.m.Certificates()
		return o.leaf != nil && len(got) == 1 && !got[0].NotAfter.IsZero()
	})
	got := e.m.Certificates()[0]
	// Renewal at the time the CA's ARI selected, else at RenewRatio of
	// the lifetime left.
	want := leaf.NotAfter.Add(-time.Duration(float64(leaf.NotAfter.Sub(leaf.NotBefore)) * normalize(cfg).ACME.RenewRatio))
	e.m.maintMu.Lock()
	if o := e.m.acmeSeen["site.example.com"]; o.ari != nil && o.leaf != nil && o.leaf.Equal(leaf) && !o.ari.SelectedTime.IsZero() {
		want = o.ari.SelectedTime
	}
	e.m.maintMu.Unlock()
	if got.Source != "acme" || !slices.Equal(got.Names, []string{"site.example.com"}) || got.Issuer != leaf.Issuer.CommonName ||
		got.Issuer == "" || !got.NotAfter.Equal(leaf.NotAfter) || !got.RenewAt.Equal(want) {
		t.Errorf("ACME certificate = %+v; leaf issuer %q, not after %v", got, leaf.Issuer.CommonName, leaf.NotAfter)
	}
}
