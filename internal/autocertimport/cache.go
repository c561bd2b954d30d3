package autocertimport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Names autocert (Gatehouse before certmagic) gave its cache entries (x/crypto/acme/autocert:
// Manager.accountKey, certKey.String, httpTokenCacheKey). Every other name
// is a certificate: "example.com", "example.com+rsa" or a tls-alpn-01
// "example.com+token", each a PEM private key followed by the PEM chain.
const (
	accountKeyName       = "acme_account+key"
	legacyAccountKeyName = "acme_account.key"
	httpTokenSuffix      = "+http-01"
)

// Kinds of cache entry moved aside, as passed to Options.Corrupt (and
// the label values of gatehouse_tls_acme_cache_corrupt_total).
const (
	KindAccountKey  = "account_key"
	KindCertificate = "certificate"
)

// BadStampLayout is the UTC timestamp in the name of a file moved aside
// (<name>.bad-<timestamp>).
const BadStampLayout = "20060102T150405Z"

// moveAside renames the corrupt entry name of the cache directory to a
// free <name>.bad-<timestamp>[-N] and reports it (logged at error level
// with both paths, passed to Corrupt). The file is never deleted.
func (im *importer) moveAside(name, kind string, problem error) error {
	src := filepath.Join(im.Dir, filepath.Clean("/"+name))
	stamp := im.Now().UTC().Format(BadStampLayout)
	dst := src + ".bad-" + stamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); err != nil {
			break // free (or unreadable: Rename reports it)
		}
		dst = fmt.Sprintf("%s.bad-%s-%d", src, stamp, i)
	}
	if err := os.Rename(src, dst); err != nil {
		im.Logger.Error("corrupt acme cache file could not be moved aside; move or delete it by hand",
			"file", src, "kind", kind, "problem", problem, "err", err)
		return fmt.Errorf("autocertimport: acme cache %s is corrupt (%v) and could not be moved aside: %w", src, problem, err)
	}
	if im.Corrupt != nil {
		im.Corrupt(kind)
	}
	switch kind {
	case KindAccountKey:
		im.Logger.Error("corrupt acme account key moved aside; it is not imported and a new account is created when one is needed",
			"file", src, "moved_to", dst, "problem", problem)
	default:
		im.Logger.Error("corrupt cached acme certificate moved aside; it is not imported and a new certificate is ordered",
			"file", src, "moved_to", dst, "problem", problem)
	}
	return nil
}

// checkEntry parses data as autocert would read the entry name and
// returns the entry's kind and what makes it unusable (nil when usable or
// not checked: http-01 tokens are opaque).
func checkEntry(name string, data []byte) (kind string, problem error) {
	switch {
	case name == accountKeyName || name == legacyAccountKeyName:
		_, err := parseCachedKey(data)
		return KindAccountKey, err
	case strings.HasSuffix(name, httpTokenSuffix):
		return "", nil
	}
	return KindCertificate, checkCachedCert(data)
}

// parseCachedKey reads the first PEM block of data as autocert does
// (autocert.parsePrivateKey: PKCS#1, PKCS#8 RSA or ECDSA, SEC 1 EC).
func parseCachedKey(data []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || !strings.Contains(blk.Type, "PRIVATE") {
		return nil, errors.New("no PEM private key")
	}
	return parseKeyDER(blk.Bytes)
}

func parseKeyDER(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("private key does not parse")
}

// checkCachedCert checks a certificate entry: a private key, then a PEM
// chain that parses with nothing left over, whose leaf holds the key's
// public half.
func checkCachedCert(data []byte) error {
	key, err := parseCachedKey(data)
	if err != nil {
		return err
	}
	_, rest := pem.Decode(data)
	var der []byte
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		der = append(der, b.Bytes...)
	}
	if len(rest) > 0 {
		return errors.New("data after the certificate chain is not PEM")
	}
	certs, err := x509.ParseCertificates(der)
	if err != nil {
		return fmt.Errorf("certificate chain does not parse: %w", err)
	}
	if len(certs) == 0 {
		return errors.New("no certificate after the private key")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return errors.New("private key does not match the certificate")
	}
	return nil
}
