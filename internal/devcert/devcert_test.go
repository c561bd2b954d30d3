package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"
)

// TestGenerate: the pair loads as a TLS certificate, verifies against
// itself for every name (DNS and IP), is for server authentication and
// valid from an hour before now for Lifetime.
func TestGenerate(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	names := []string{"localhost", "dev.test", "127.0.0.1", "::1"}
	certPEM, keyPEM, err := Generate(names, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("pair does not load: %v", err)
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "localhost" {
		t.Errorf("common name %q, want the first name", leaf.Subject.CommonName)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost", "dev.test"}) || len(leaf.IPAddresses) != 2 ||
		!leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("DNS names %v, IP addresses %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.Add(Lifetime)) {
		t.Errorf("valid %v to %v, want %v to %v", leaf.NotBefore, leaf.NotAfter, now.Add(-time.Hour), now.Add(Lifetime))
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	other, _, err := Generate(names, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(other) == string(certPEM) {
		t.Error("two calls made the same certificate")
	}
	if _, _, err := Generate(nil, now); err == nil {
		t.Error("no names: no error")
	}
}
