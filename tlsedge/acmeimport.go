package tlsedge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// importAutocert copies what the autocert cache of earlier Gatehouse
// versions (StateDir/acme) holds into the certmagic storage, so an
// upgrade orders nothing:
//
//   - the account key becomes the account of the configured CA and email
//     (unless the storage has one): certmagic registers it on its first
//     order, and the CA answers a known key with the existing account;
//   - each certificate ("name", or "name+rsa" when there is no ECDSA one)
//     that is valid now is stored under the configured CA, unless the
//     storage already has one for the name that lasts as long or longer.
//
// A file that does not parse is moved aside (.bad-<timestamp>), logged
// and counted, as before. The autocert files stay where they are (a
// downgrade still finds them). Called with updateMu held.
func (m *Manager) importAutocert(inst *acmeInstance) {
	dir := filepath.Join(m.stateDir, "acme")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	ctx := context.Background()
	for _, n := range []string{acmeAccountKeyName, acmeLegacyAccountKeyName} {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if _, problem := checkCacheEntry(n, data); problem != nil {
			m.moveAside(dir, n, cacheKindAccountKey, problem)
			continue
		}
		m.importAccount(ctx, inst, data)
		break
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || strings.Contains(n, ".bad-") ||
			n == acmeAccountKeyName || n == acmeLegacyAccountKeyName || strings.HasSuffix(n, acmeHTTPTokenSuffix) ||
			strings.HasSuffix(n, "+token") {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names) // "a.example" before "a.example+rsa"
	done := map[string]bool{}
	now := m.now()
	for _, file := range names {
		name := strings.TrimSuffix(file, "+rsa")
		if done[name] {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			continue
		}
		if _, problem := checkCacheEntry(file, data); problem != nil {
			m.moveAside(dir, file, cacheKindCertificate, problem)
			continue
		}
		keyBlk, rest := pem.Decode(data)
		cert, err := tls.X509KeyPair(rest, pem.EncodeToMemory(keyBlk))
		if err != nil || cert.Leaf == nil || !now.Before(cert.Leaf.NotAfter) || cert.Leaf.VerifyHostname(name) != nil {
			continue // expired or for other names: autocert would have ordered anew too
		}
		if m.importCert(ctx, inst, name, pem.EncodeToMemory(keyBlk), bytes.TrimSpace(rest), cert) {
			done[name] = true
		}
	}
}

// importAccount stores an autocert account key as the account of the
// configured CA and email, unless the storage has an account key there.
func (m *Manager) importAccount(ctx context.Context, inst *acmeInstance, keyPEM []byte) {
	email := strings.ToLower(strings.TrimSpace(inst.settings.Email))
	if email == "" {
		email = "default" // certmagic's name for "no email"
	}
	user := email
	if at := strings.IndexByte(email, '@'); at > 0 {
		user = email[:at]
	}
	prefix := path.Join("acme", certmagic.StorageKeys.Safe(inst.any.iss.IssuerKey()), "users", certmagic.StorageKeys.Safe(email))
	keyKey := path.Join(prefix, certmagic.StorageKeys.Safe(user)+".key")
	regKey := path.Join(prefix, certmagic.StorageKeys.Safe(user)+".json")
	if m.storage.Exists(ctx, keyKey) {
		return
	}
	acct := acme.Account{}
	if inst.settings.Email != "" {
		acct.Contact = []string{"mailto:" + inst.settings.Email}
	}
	reg, err := json.MarshalIndent(acct, "", "\t")
	if err == nil {
		err = m.storage.Store(ctx, keyKey, keyPEM)
	}
	if err == nil {
		err = m.storage.Store(ctx, regKey, reg)
	}
	if err != nil {
		m.log.Error("acme account key of the old cache not imported; a new account will be registered", "err", err)
		return
	}
	m.log.Info("imported the acme account key of the old cache", "email", inst.settings.Email, "ca", inst.settings.DirectoryURL)
}

// importCert stores one autocert certificate for name unless the storage
// has one valid at least as long. It reports whether the storage now
// holds a certificate for name from the old cache or a newer one.
func (m *Manager) importCert(ctx context.Context, inst *acmeInstance, name string, keyPEM, chainPEM []byte, cert tls.Certificate) bool {
	ik := inst.any.iss.IssuerKey()
	if stored, err := m.storage.Load(ctx, certmagic.StorageKeys.SiteCert(ik, name)); err == nil {
		if blk, _ := pem.Decode(stored); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil && !c.NotAfter.Before(cert.Leaf.NotAfter) {
				return true
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.log.Error("acme certificate of the old cache not imported", "name", name, "err", err)
		return false
	}
	issuerData, _ := json.Marshal(acme.Certificate{CA: inst.settings.DirectoryURL})
	meta, err := json.MarshalIndent(certmagic.CertificateResource{SANs: cert.Leaf.DNSNames, IssuerData: issuerData}, "", "\t")
	if err == nil {
		err = m.storage.Store(ctx, certmagic.StorageKeys.SitePrivateKey(ik, name), keyPEM)
	}
	if err == nil {
		err = m.storage.Store(ctx, certmagic.StorageKeys.SiteCert(ik, name), append(chainPEM, '\n'))
	}
	if err == nil {
		err = m.storage.Store(ctx, certmagic.StorageKeys.SiteMeta(ik, name), meta)
	}
	if err != nil {
		m.log.Error("acme certificate of the old cache not imported", "name", name, "err", err)
		return false
	}
	m.log.Info("imported an acme certificate of the old cache", "name", name, "not_after", cert.Leaf.NotAfter)
	return true
}
