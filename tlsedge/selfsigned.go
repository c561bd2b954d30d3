package tlsedge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSignedLifetime is the validity of the development certificate; it is
// regenerated when less than selfSignedMinLeft remains or names change.
const (
	selfSignedLifetime = 365 * 24 * time.Hour
	selfSignedMinLeft  = 30 * 24 * time.Hour
)

// coversAll reports whether e is valid for every name for a while yet.
func coversAll(e *entry, names []string, now time.Time) bool {
	if now.Add(selfSignedMinLeft).After(e.leaf.NotAfter) || now.Before(e.leaf.NotBefore) {
		return false
	}
	for _, n := range names {
		if e.leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// selfSigned loads the development certificate from StateDir/selfsigned
// when it covers names, else generates and persists a new one.
func (m *Manager) selfSigned(names []string, now time.Time) (*entry, error) {
	dir, err := m.ensureDir("selfsigned")
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if c, err := os.ReadFile(certPath); err == nil {
		if k, err := os.ReadFile(keyPath); err == nil {
			if e, err := newEntry(c, k, now, "self-signed"); err == nil && coversAll(e, names, now) {
				return e, nil
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("self-signed serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"Gatehouse development certificate"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("self-signed key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return nil, fmt.Errorf("self-signed key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	m.log.Info("generated self-signed development certificate", "names", names, "file", certPath)
	return newEntry(certPEM, keyPEM, now, "self-signed")
}
