package ocspstaple_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gatehouse-proxy/gatehouse/internal/ocspstaple"
)

func Example() {
	now := time.Now().Truncate(time.Second) // OCSP times have whole seconds
	// A CA that answers OCSP requests itself, and a certificate naming it.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour * 24 * 365), IsCA: true, BasicConstraintsValid: true}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := ocsp.ParseRequest(body)
		raw, _ := ocsp.CreateResponse(ca, ca, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: now, NextUpdate: now.Add(4 * time.Hour)}, caKey)
		w.Write(raw)
	}))
	defer responder.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		DNSNames: []string{"example.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		OCSPServer: []string{responder.URL}}, ca, key.Public(), caKey)
	leaf, _ := x509.ParseCertificate(leafDER)
	served := &tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key, Leaf: leaf}

	c, err := ocspstaple.NewCert(served, leaf)
	if err != nil {
		panic(err)
	}
	s := ocspstaple.NewStapler(responder.Client(), func() time.Time { return now })
	r := s.Refresh(context.Background(), c)
	fmt.Println(r.Outcome, len(c.Staple().Cert.OCSPStaple) > 0, c.Staple().RefreshAt().Sub(now))
	// Not due again before half the window:
	fmt.Println(s.Refresh(context.Background(), c).Outcome)
	// Output:
	// refreshed true 2h0m0s
	// skipped
}
