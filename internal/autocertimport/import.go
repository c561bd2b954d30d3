// Package autocertimport copies the cache that
// golang.org/x/crypto/acme/autocert kept for Gatehouse versions before
// certmagic (StateDir/acme) into certmagic's storage, so an upgrade orders
// nothing. A cache file that autocert could not have read is moved aside
// as <name>.bad-<timestamp>, logged and reported, never deleted; the
// usable files stay where they are, so a downgrade still finds them.
package autocertimport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// Options say where the cache is and where its contents go. Every field
// but Logger and Corrupt is required.
type Options struct {
	// Dir is the autocert cache directory; a missing one imports nothing.
	Dir string
	// Storage is the certmagic storage that receives the account key and
	// the certificates.
	Storage certmagic.Storage
	// IssuerKey is the storage key of the configured CA
	// (certmagic.ACMEIssuer.IssuerKey).
	IssuerKey string
	// DirectoryURL is the configured CA's ACME directory, recorded with
	// each imported certificate.
	DirectoryURL string
	// Email is the configured account email; "" for none.
	Email string
	// Now is the clock: certificates expired by now are not imported, and
	// it stamps the names of files moved aside.
	Now func() time.Time
	// Logger receives what was imported and moved aside; nil discards.
	Logger *slog.Logger
	// Corrupt, if not nil, is called once for each file moved aside with
	// its kind, [KindAccountKey] or [KindCertificate].
	Corrupt func(kind string)
}

// Import copies what the autocert cache in o.Dir holds into o.Storage:
//
//   - the account key becomes the account of the configured CA and email
//     (unless the storage has one): certmagic registers it on its first
//     order, and the CA answers a known key with the existing account;
//   - each certificate ("name", or "name+rsa" when there is no ECDSA one)
//     that is valid now is stored under the configured CA, unless the
//     storage already has one for the name that lasts as long or longer.
//
// A file that does not parse is moved aside (.bad-<timestamp>), logged
// and reported to o.Corrupt. Problems are logged, not returned: whatever
// is not imported is ordered anew.
func Import(ctx context.Context, o Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	im := &importer{Options: o}
	ents, err := os.ReadDir(o.Dir)
	if err != nil {
		return
	}
	dir := o.Dir
	for _, n := range []string{accountKeyName, legacyAccountKeyName} {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if _, problem := checkEntry(n, data); problem != nil {
			im.moveAside(n, KindAccountKey, problem)
			continue
		}
		im.importAccount(ctx, data)
		break
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || strings.Contains(n, ".bad-") ||
			n == accountKeyName || n == legacyAccountKeyName || strings.HasSuffix(n, httpTokenSuffix) ||
			strings.HasSuffix(n, "+token") {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names) // "a.example" before "a.example+rsa"
	done := map[string]bool{}
	now := o.Now()
	for _, file := range names {
		name := strings.TrimSuffix(file, "+rsa")
		if done[name] {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			continue
		}
		if _, problem := checkEntry(file, data); problem != nil {
			im.moveAside(file, KindCertificate, problem)
			continue
		}
		keyBlk, rest := pem.Decode(data)
		cert, err := tls.X509KeyPair(rest, pem.EncodeToMemory(keyBlk))
		if err != nil || cert.Leaf == nil || !now.Before(cert.Leaf.NotAfter) || cert.Leaf.VerifyHostname(name) != nil {
			continue // expired or for other names: autocert would have ordered anew too
		}
		if im.importCert(ctx, name, pem.EncodeToMemory(keyBlk), bytes.TrimSpace(rest), cert) {
			done[name] = true
		}
	}
}

// importer is one run of Import.
type importer struct {
	Options
}

// importAccount stores an autocert account key as the account of the
// configured CA and email, unless the storage has an account key there.
func (im *importer) importAccount(ctx context.Context, keyPEM []byte) {
	email := strings.ToLower(strings.TrimSpace(im.Email))
	if email == "" {
		email = "default" // certmagic's name for "no email"
	}
	user := email
	if at := strings.IndexByte(email, '@'); at > 0 {
		user = email[:at]
	}
	prefix := path.Join("acme", certmagic.StorageKeys.Safe(im.IssuerKey), "users", certmagic.StorageKeys.Safe(email))
	keyKey := path.Join(prefix, certmagic.StorageKeys.Safe(user)+".key")
	regKey := path.Join(prefix, certmagic.StorageKeys.Safe(user)+".json")
	if im.Storage.Exists(ctx, keyKey) {
		return
	}
	acct := acme.Account{}
	if im.Email != "" {
		acct.Contact = []string{"mailto:" + im.Email}
	}
	reg, err := json.MarshalIndent(acct, "", "\t")
	if err == nil {
		err = im.Storage.Store(ctx, keyKey, keyPEM)
	}
	if err == nil {
		err = im.Storage.Store(ctx, regKey, reg)
	}
	if err != nil {
		im.Logger.Error("acme account key of the old cache not imported; a new account will be registered", "err", err)
		return
	}
	im.Logger.Info("imported the acme account key of the old cache", "email", im.Email, "ca", im.DirectoryURL)
}

// importCert stores one autocert certificate for name unless the storage
// has one valid at least as long. It reports whether the storage now
// holds a certificate for name from the old cache or a newer one.
func (im *importer) importCert(ctx context.Context, name string, keyPEM, chainPEM []byte, cert tls.Certificate) bool {
	ik := im.IssuerKey
	if stored, err := im.Storage.Load(ctx, certmagic.StorageKeys.SiteCert(ik, name)); err == nil {
		if blk, _ := pem.Decode(stored); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil && !c.NotAfter.Before(cert.Leaf.NotAfter) {
				return true
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		im.Logger.Error("acme certificate of the old cache not imported", "name", name, "err", err)
		return false
	}
	issuerData, _ := json.Marshal(acme.Certificate{CA: im.DirectoryURL})
	meta, err := json.MarshalIndent(certmagic.CertificateResource{SANs: cert.Leaf.DNSNames, IssuerData: issuerData}, "", "\t")
	if err == nil {
		err = im.Storage.Store(ctx, certmagic.StorageKeys.SitePrivateKey(ik, name), keyPEM)
	}
	if err == nil {
		err = im.Storage.Store(ctx, certmagic.StorageKeys.SiteCert(ik, name), append(chainPEM, '\n'))
	}
	if err == nil {
		err = im.Storage.Store(ctx, certmagic.StorageKeys.SiteMeta(ik, name), meta)
	}
	if err != nil {
		im.Logger.Error("acme certificate of the old cache not imported", "name", name, "err", err)
		return false
	}
	im.Logger.Info("imported an acme certificate of the old cache", "name", name, "not_after", cert.Leaf.NotAfter)
	return true
}
