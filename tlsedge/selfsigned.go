package tlsedge

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/devcert"
	"github.com/gatehouse-proxy/gatehouse/internal/statefile"
)

// selfSignedMinLeft: the development certificate (valid for
// devcert.Lifetime) is regenerated when less than this remains or names
// change.
const selfSignedMinLeft = 30 * 24 * time.Hour

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
// when it covers names, else generates (package devcert) and persists a
// new one.
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
	certPEM, keyPEM, err := devcert.Generate(names, now)
	if err != nil {
		return nil, err
	}
	if err := statefile.Write(keyPath, keyPEM); err != nil {
		return nil, fmt.Errorf("self-signed key: %w", err)
	}
	if err := statefile.Write(certPath, certPEM); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	m.log.Info("generated self-signed development certificate", "names", names, "file", certPath)
	return newEntry(certPEM, keyPEM, now, "self-signed")
}
