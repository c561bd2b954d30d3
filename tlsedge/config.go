package tlsedge

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/ocspstaple"
	"github.com/gatehouse-proxy/gatehouse/internal/regularfile"
)

// LetsEncryptURL is the Let's Encrypt production ACME directory, the
// default for [ACME.DirectoryURL].
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// DefaultRenewRatio is the share of a certificate's lifetime that is left
// when it is renewed if the CA gives no ARI window (or ARI is off): a
// third, so renewal starts two thirds into the lifetime (day 60 of a
// 90-day certificate, day 4 of a 6-day one), as Let's Encrypt advises.
const DefaultRenewRatio = 1.0 / 3

// Config is the certificate part of one configuration generation. It is a
// plain value: [Manager.Update] copies what it needs.
type Config struct {
	// ACME configures the ACME client used for ACMENames.
	ACME ACME
	// ACMENames are obtained and renewed through ACME, one certificate
	// per name. Wildcards ("*.example.com") need ACME.DNS.
	ACMENames []string
	// ACMEOverrides set a profile or the dns-01 challenge for some of
	// ACMENames; nil for none.
	ACMEOverrides map[string]ACMEOverride
	// Files are certificate/key pairs from disk (fullchain.pem +
	// privkey.pem, as certbot or any DNS-01 client writes them). A pair is
	// chosen by SNI: exact SAN first, then a wildcard SAN (*.example.com).
	Files []FilePair
	// SelfSigned names get one self-signed development certificate,
	// generated once and kept in StateDir/selfsigned.
	SelfSigned []string
	// Names are every host name some site claims. Each must be covered by
	// ACMENames, a file certificate (exact or wildcard) or SelfSigned.
	Names []string
	// DefaultName, when set, is the name whose certificate is served to
	// clients that send no SNI (access by IP address). "" means such
	// handshakes fail (counted as unknown_sni). It must be covered like
	// Names.
	DefaultName string
	// DisableOCSP turns off OCSP stapling: no OCSP request is made and no
	// staple is served (saved staples stay on disk for when it is turned
	// back on); a must-staple certificate file is then a configuration
	// error. Zero value: stapling is on, opportunistically (only for
	// certificates that name a responder).
	DisableOCSP bool
}

// ACME is the ACME account and challenge configuration.
type ACME struct {
	// Email is the account contact; optional.
	Email string
	// DirectoryURL is the ACME directory; "" means [LetsEncryptURL].
	DirectoryURL string
	// EAB is the external account binding some CAs require; nil for none.
	EAB *EAB
	// HTTP01 enables the http-01 challenge (served by [Manager.HTTPHandler]
	// on port 80).
	HTTP01 bool
	// TLSALPN01 enables the tls-alpn-01 challenge (served on port 443
	// through [Manager.GetCertificate]). Unless every name uses DNS-01, at
	// least one of HTTP01 and TLSALPN01 must be on.
	TLSALPN01 bool
	// RootCAs, when non-nil, is the only trust for the directory's HTTPS
	// certificate (tests: Pebble's). nil means the system roots.
	RootCAs *x509.CertPool
	// Profile is the ACME certificate profile to order (draft-aaron-acme-
	// profiles, e.g. "shortlived" or "tlsserver" at Let's Encrypt); "" lets
	// the CA choose. ACMEOverrides can set it per name.
	Profile string
	// RenewRatio is the share of the lifetime left at which a certificate
	// is renewed when the CA gives no ARI window; 0 means
	// [DefaultRenewRatio]. It must be below 1 unless in tests.
	RenewRatio float64
	// DisableARI stops asking the CA for ACME Renewal Information (RFC
	// 9773): renewal then follows RenewRatio only. Zero value: ARI is
	// used, and renewals name the certificate they replace.
	DisableARI bool
	// DNS configures the dns-01 challenge; nil means none. Wildcard names
	// and names whose ACMEOverrides say DNS01 are obtained with it, all
	// other names with http-01 or tls-alpn-01.
	DNS *DNS
}

// DNS configures the dns-01 challenge.
type DNS struct {
	// Provider is "rfc2136" (dynamic updates signed with TSIG),
	// "cloudflare" (its API through libdns) or "exec" (a program).
	Provider string
	// Server is the rfc2136 primary's host:port.
	Server string
	// KeyName and KeyAlgorithm name the rfc2136 TSIG key ("hmac-sha256"
	// when empty).
	KeyName      string
	KeyAlgorithm string
	// Secret is the provider's credential: the base64 TSIG secret for
	// rfc2136, the API token for cloudflare. The caller reads it from a
	// file or an environment variable; it is never part of the TOML.
	Secret []byte
	// Command is the exec provider's program, run as
	// `Command present|cleanup FQDN VALUE` (FQDN with a trailing dot).
	Command string
	// Resolvers are the DNS servers (host:port) asked for the zone of a
	// name and for the record's propagation; nil means the system's.
	Resolvers []string
	// PropagationTimeout is how long to wait for the record to be visible
	// before telling the CA to validate; 0 means certmagic's 2 minutes and
	// a negative value skips the check.
	PropagationTimeout time.Duration
	// PropagationDelay is a pause before the first propagation check; 0
	// means none.
	PropagationDelay time.Duration
}

// ACMEOverride changes the ACME settings of one name.
type ACMEOverride struct {
	// Profile replaces ACME.Profile for the name; "" keeps it.
	Profile string
	// DNS01 obtains the name with the dns-01 challenge (ACME.DNS must be
	// set). Wildcard names always use it.
	DNS01 bool
}

// EAB is an ACME external account binding.
type EAB struct {
	KeyID   string
	HMACKey []byte
}

// FilePair names a PEM certificate chain (leaf first) and its private key.
type FilePair struct {
	CertFile string
	KeyFile  string
}

// normName lower-cases a host name and drops a trailing dot.
func normName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// normalize returns a copy of c with every name normalized and every slice
// copied, so later mutation by the caller does not reach the Manager.
func normalize(c Config) Config {
	n := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, s := range in {
			out = append(out, normName(s))
		}
		return out
	}
	c.ACMENames = n(c.ACMENames)
	c.SelfSigned = n(c.SelfSigned)
	c.Names = n(c.Names)
	c.DefaultName = normName(c.DefaultName)
	c.Files = slices.Clone(c.Files)
	if c.ACME.DirectoryURL == "" {
		c.ACME.DirectoryURL = LetsEncryptURL
	}
	if c.ACME.RenewRatio == 0 {
		c.ACME.RenewRatio = DefaultRenewRatio
	}
	if c.ACME.EAB != nil {
		e := *c.ACME.EAB
		e.HMACKey = bytes.Clone(e.HMACKey)
		c.ACME.EAB = &e
	}
	if c.ACME.DNS != nil {
		d := *c.ACME.DNS
		d.Secret = bytes.Clone(d.Secret)
		d.Resolvers = slices.Clone(d.Resolvers)
		if d.Provider == "rfc2136" && d.KeyAlgorithm == "" {
			d.KeyAlgorithm = "hmac-sha256"
		}
		d.KeyAlgorithm = strings.ToLower(strings.TrimSuffix(d.KeyAlgorithm, "."))
		c.ACME.DNS = &d
	}
	if c.ACMEOverrides != nil {
		o := make(map[string]ACMEOverride, len(c.ACMEOverrides))
		for n, v := range c.ACMEOverrides {
			o[normName(n)] = v
		}
		c.ACMEOverrides = o
	}
	return c
}

// validHostname reports a problem with a DNS name, or nil.
func validHostname(name string, wildcardOK bool) error {
	if name == "" {
		return errors.New("empty name")
	}
	if net.ParseIP(name) != nil {
		return nil
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && wildcardOK && len(labels) > 2 {
			continue
		}
		if l == "" || len(l) > 63 {
			return fmt.Errorf("invalid name %q", name)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("invalid name %q", name)
			}
		}
	}
	return nil
}

// Check validates c at time now with no side effects: every certificate
// file is read and parsed, keys must match, certificates must be currently
// valid and every claimed name covered. All problems are joined; each names
// the offending file or host name. It is what `gatehouse check` runs.
func Check(c Config, now time.Time) error {
	_, err := prepare(normalize(c), now)
	return err
}

// prepared is the result of validating a Config: file entries loaded.
type prepared struct {
	cfg   Config
	files []*entry
}

// prepare validates c (already normalized) and loads its file certificates.
func prepare(c Config, now time.Time) (*prepared, error) {
	var errs []error
	p := &prepared{cfg: c}

	// ACME.
	errs = append(errs, checkACME(c)...)

	// Self-signed.
	for _, n := range c.SelfSigned {
		if err := validHostname(n, false); err != nil {
			errs = append(errs, fmt.Errorf("self-signed name %q: %w", n, err))
		}
	}

	// Files.
	for _, fp := range c.Files {
		e, err := loadPair(fp, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e.mustStaple && c.DisableOCSP {
			errs = append(errs, fmt.Errorf("certificate %s requires OCSP stapling (must-staple) but stapling is off", fp.CertFile))
			continue
		}
		p.files = append(p.files, e)
	}

	// Coverage.
	names := c.Names
	if c.DefaultName != "" && !slices.Contains(names, c.DefaultName) {
		names = append(slices.Clone(names), c.DefaultName)
	}
	for _, n := range names {
		if slices.Contains(c.ACMENames, n) || slices.Contains(c.SelfSigned, n) {
			continue
		}
		if err := validHostname(n, false); err != nil {
			errs = append(errs, fmt.Errorf("site name %q: %w", n, err))
			continue
		}
		covered := false
		for _, e := range p.files {
			if e.leaf.VerifyHostname(n) == nil {
				covered = true
				break
			}
		}
		if !covered {
			errs = append(errs, fmt.Errorf("site name %q: not covered by any certificate (add it to acme, a certificate file or self-signed)", n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// loadPair reads and validates one certificate/key pair. The files are
// read as regular files only, under a size limit, without blocking
// (internal/regularfile): at a reload and when pollFiles finds them
// changed, a path that became a FIFO, or a link to /dev/zero, is an
// error rather than a read that never ends while holding updateMu.
// Links are followed (certbot's live/ holds links into archive/).
func loadPair(fp FilePair, now time.Time) (*entry, error) {
	rule := regularfile.Rule{MaxBytes: regularfile.MaxPEMBytes}
	certPEM, err := regularfile.Read(fp.CertFile, rule)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	keyPEM, err := regularfile.Read(fp.KeyFile, rule)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	e, err := newEntry(certPEM, keyPEM, now, fp.CertFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", fp.CertFile, fp.KeyFile, err)
	}
	e.pair = fp
	e.sum = sha256.Sum256(append(certPEM, keyPEM...))
	return e, nil
}

// newEntry parses a PEM pair into an entry and checks its validity at now.
func newEntry(certPEM, keyPEM []byte, now time.Time, src string) (*entry, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	e, err := entryFor(&cert, src)
	if err != nil {
		return nil, err
	}
	if now.After(e.leaf.NotAfter) {
		return nil, fmt.Errorf("certificate expired at %s", e.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(e.leaf.NotBefore) {
		return nil, fmt.Errorf("certificate not valid before %s", e.leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if len(e.leaf.DNSNames) == 0 && len(e.leaf.IPAddresses) == 0 {
		return nil, errors.New("certificate has no DNS or IP subject alternative names")
	}
	if e.mustStaple && e.ocsp.Responder() == "" {
		return nil, errors.New("certificate requires OCSP stapling (must-staple) but names no OCSP responder")
	}
	return e, nil
}

// entryFor builds an entry around an already parsed certificate.
func entryFor(cert *tls.Certificate, src string) (*entry, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate in chain")
	}
	leaf := cert.Leaf
	if leaf == nil {
		l, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, err
		}
		leaf = l
	}
	oc, err := ocspstaple.NewCert(cert, leaf)
	if err != nil {
		return nil, err
	}
	return &entry{cert: cert, leaf: leaf, src: src, mustStaple: ocspstaple.MustStaple(leaf), ocsp: oc}, nil
}

// tsigAlgorithms are the TSIG algorithms an rfc2136 key may use.
var tsigAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

// checkACME validates the ACME part of c (normalized).
func checkACME(c Config) []error {
	var errs []error
	a := c.ACME
	needHTTPish := false
	for _, n := range c.ACMENames {
		wild := strings.HasPrefix(n, "*.")
		if err := validHostname(n, true); err != nil {
			errs = append(errs, fmt.Errorf("acme name %q: %w", n, err))
			continue
		} else if !strings.Contains(strings.TrimPrefix(n, "*."), ".") || net.ParseIP(n) != nil {
			errs = append(errs, fmt.Errorf("acme name %q: must be a DNS name with at least two labels", n))
			continue
		}
		dns01 := wild || c.ACMEOverrides[n].DNS01
		if dns01 && a.DNS == nil {
			if wild {
				errs = append(errs, fmt.Errorf("acme name %q: a wildcard needs the dns-01 challenge; configure acme dns", n))
			} else {
				errs = append(errs, fmt.Errorf("acme name %q: dns-01 requested but acme dns is not configured", n))
			}
		}
		if !dns01 {
			needHTTPish = true
		}
	}
	for n := range c.ACMEOverrides {
		if !slices.Contains(c.ACMENames, n) {
			errs = append(errs, fmt.Errorf("acme override for %q: not an acme name", n))
		}
	}
	if len(c.ACMENames) == 0 {
		return errs
	}
	if needHTTPish && !a.HTTP01 && !a.TLSALPN01 {
		errs = append(errs, errors.New("acme: enable at least one of http01 and tls_alpn01"))
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("acme directory %q: must be an https URL", a.DirectoryURL))
	}
	if !(a.RenewRatio > 0 && a.RenewRatio <= 1) {
		errs = append(errs, fmt.Errorf("acme renew ratio %v: must be above 0 and below 1", a.RenewRatio))
	}
	if a.EAB != nil && (a.EAB.KeyID == "" || len(a.EAB.HMACKey) == 0) {
		errs = append(errs, errors.New("acme external account binding: both key id and hmac key are required"))
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		errs = append(errs, fmt.Errorf("acme email %q: not an email address", a.Email))
	}
	if d := a.DNS; d != nil {
		errs = append(errs, checkDNS(d)...)
	}
	return errs
}

// checkDNS validates a dns-01 provider configuration.
func checkDNS(d *DNS) []error {
	var errs []error
	switch d.Provider {
	case "rfc2136":
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			errs = append(errs, fmt.Errorf("acme dns server %q: want host:port", d.Server))
		}
		if d.KeyName == "" {
			errs = append(errs, errors.New("acme dns: rfc2136 needs a tsig key name"))
		}
		if !slices.Contains(tsigAlgorithms, d.KeyAlgorithm) {
			errs = append(errs, fmt.Errorf("acme dns key algorithm %q: want one of %s", d.KeyAlgorithm, strings.Join(tsigAlgorithms, ", ")))
		}
		if len(d.Secret) == 0 {
			errs = append(errs, errors.New("acme dns: rfc2136 needs the tsig secret"))
		} else if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(d.Secret))); err != nil {
			errs = append(errs, fmt.Errorf("acme dns: the tsig secret is not base64: %w", err))
		}
	case "cloudflare":
		if len(bytes.TrimSpace(d.Secret)) == 0 {
			errs = append(errs, errors.New("acme dns: cloudflare needs an api token"))
		}
	case "exec":
		if d.Command == "" || !filepath.IsAbs(d.Command) {
			errs = append(errs, fmt.Errorf("acme dns command %q: must be an absolute path", d.Command))
		}
	default:
		errs = append(errs, fmt.Errorf("acme dns provider %q: want rfc2136, cloudflare or exec", d.Provider))
	}
	for _, r := range d.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			errs = append(errs, fmt.Errorf("acme dns resolver %q: want host:port", r))
		}
	}
	return errs
}
