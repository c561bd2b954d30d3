package tlsedge

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultTicketRotation is how often session ticket keys rotate when
// Options.TicketRotation is zero; ticketKeysKept keys are kept, so a ticket
// stays usable for up to 36 h.
const (
	DefaultTicketRotation = 12 * time.Hour
	ticketKeysKept        = 3
)

// Policy is the TLS protocol policy of one listener. The zero value is the
// recommended policy.
type Policy struct {
	// MinVersion is the lowest protocol version; 0 means TLS 1.2.
	MinVersion uint16
	// MaxVersion is the highest protocol version; 0 means TLS 1.3.
	MaxVersion uint16
	// CipherSuites are the TLS 1.2 suites (TLS 1.3 suites are not
	// configurable in Go); nil means [DefaultCipherSuites].
	CipherSuites []uint16
	// CurvePreferences are the key exchanges in order; nil means
	// X25519MLKEM768, X25519, P-256.
	CurvePreferences []tls.CurveID
	// SessionTickets enables session resumption tickets, with keys rotated
	// by [Manager.Run]. Off by default (nginx ssl_session_tickets off):
	// without rotation a ticket key undoes forward secrecy.
	SessionTickets bool
	// NextProtos are the ALPN protocols; nil means h2, http/1.1.
	// acme-tls/1 is always appended for tls-alpn-01.
	NextProtos []string
}

// DefaultCipherSuites returns the TLS 1.2 suites allowed by default: ECDHE
// key exchange with AEAD ciphers only (no CBC, no RSA key exchange).
func DefaultCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ParseVersion maps "1.2" / "1.3" (also "TLS1.2", "tlsv1.3") to a version.
func ParseVersion(s string) (uint16, error) {
	v := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "tls"), "v")
	switch v {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.0", "1.1":
		return 0, fmt.Errorf("tls version %q: versions below 1.2 are not supported", s)
	}
	return 0, fmt.Errorf("tls version %q: want 1.2 or 1.3", s)
}

// ParseCipherSuite maps a Go/IANA suite name such as
// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" to its ID. Insecure suites and
// TLS 1.3 suites (not configurable) are errors.
func ParseCipherSuite(name string) (uint16, error) {
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
				return 0, fmt.Errorf("cipher suite %q: tls 1.3 suites are not configurable", name)
			}
			return s.ID, nil
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return 0, fmt.Errorf("cipher suite %q: insecure", name)
		}
	}
	return 0, fmt.Errorf("cipher suite %q: unknown", name)
}

// CheckPolicy reports problems with p: versions below 1.2, min above max,
// insecure or unknown suites.
func CheckPolicy(p Policy) error {
	var errs []error
	if p.MinVersion != 0 && p.MinVersion < tls.VersionTLS12 {
		errs = append(errs, errors.New("min version: below tls 1.2 is not supported"))
	}
	if p.MaxVersion != 0 && p.MinVersion > p.MaxVersion {
		errs = append(errs, errors.New("min version is above max version"))
	}
	for _, id := range p.CipherSuites {
		ok := false
		for _, s := range tls.CipherSuites() {
			ok = ok || s.ID == id
		}
		if !ok {
			errs = append(errs, fmt.Errorf("cipher suite %s: insecure or unknown", tls.CipherSuiteName(id)))
		}
	}
	return errors.Join(errs...)
}

// ticketConfig is a tls.Config whose ticket keys Run rotates.
type ticketConfig struct {
	cfg  *tls.Config
	keys [][32]byte
}

// TLSConfig returns a server configuration for p whose certificates come
// from m. Handshakes are counted (gatehouse_tls_handshakes_total) through
// VerifyConnection. Each call returns a new *tls.Config; callers must not
// modify it after use starts.
func (m *Manager) TLSConfig(p Policy) *tls.Config {
	c := &tls.Config{
		MinVersion:       p.MinVersion,
		MaxVersion:       p.MaxVersion,
		CipherSuites:     slices.Clone(p.CipherSuites),
		CurvePreferences: slices.Clone(p.CurvePreferences),
		NextProtos:       slices.Clone(p.NextProtos),
		GetCertificate:   m.GetCertificate,
		VerifyConnection: m.countHandshake,
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.CipherSuites == nil {
		c.CipherSuites = DefaultCipherSuites()
	}
	if c.CurvePreferences == nil {
		c.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}
	}
	if c.NextProtos == nil {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	if !slices.Contains(c.NextProtos, acmeALPNProto) {
		c.NextProtos = append(c.NextProtos, acmeALPNProto)
	}
	if !p.SessionTickets {
		c.SessionTicketsDisabled = true
		return c
	}
	tc := &ticketConfig{cfg: c}
	m.ticketsMu.Lock()
	defer m.ticketsMu.Unlock()
	m.rotateLocked(tc)
	m.tickets = append(m.tickets, tc)
	return c
}

// rotateTickets gives every ticket-enabled config a fresh key.
func (m *Manager) rotateTickets() {
	m.ticketsMu.Lock()
	defer m.ticketsMu.Unlock()
	for _, tc := range m.tickets {
		m.rotateLocked(tc)
	}
}

func (m *Manager) rotateLocked(tc *ticketConfig) {
	var k [32]byte
	rand.Read(k[:])
	keys := append([][32]byte{k}, tc.keys...)
	if len(keys) > ticketKeysKept {
		keys = keys[:ticketKeysKept]
	}
	tc.keys = keys
	tc.cfg.SetSessionTicketKeys(keys)
}

// countHandshake counts completed handshakes by version.
func (m *Manager) countHandshake(cs tls.ConnectionState) error {
	m.met.handshake(cs.Version)
	return nil
}
