package tlsedge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

func TestRFC6979Key(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := withRFC6979(&tls.Certificate{PrivateKey: k})
	s, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		t.Fatalf("wrapped key %T is not a crypto.Signer", c.PrivateKey)
	}
	d := sha256.Sum256([]byte("transcript"))
	a, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if !bytes.Equal(a, b) {
		t.Error("two signatures of one digest differ: the nonce is not deterministic")
	}
	if !ecdsa.VerifyASN1(&k.PublicKey, d[:], a) {
		t.Error("signature does not verify")
	}
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	rc := &tls.Certificate{PrivateKey: r}
	if withRFC6979(rc) != rc {
		t.Error("an RSA certificate was changed")
	}
}

// TestRFC6979Handshake: crypto/tls takes the wrapper as the certificate's
// key, for TLS 1.3 and TLS 1.2 (ECDHE-ECDSA), and the client verifies.
func TestRFC6979Handshake(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example"},
		DNSNames: []string{"a.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	e, err := entryFor(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.cert.PrivateKey.(rfc6979Key); !ok {
		t.Fatalf("entry key is %T, want rfc6979Key", e.cert.PrivateKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		a, b := net.Pipe()
		srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{*e.cert}, MaxVersion: v})
		go srv.Handshake()
		cl := tls.Client(b, &tls.Config{ServerName: "a.example", RootCAs: roots, MaxVersion: v})
		cl.SetDeadline(time.Now().Add(10 * time.Second))
		if err := cl.Handshake(); err != nil {
			t.Errorf("version %x: %v", v, err)
		}
		a.Close()
		b.Close()
	}
}
