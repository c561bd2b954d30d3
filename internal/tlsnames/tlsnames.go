// Package tlsnames reads and writes the names Gatehouse's configuration
// gives TLS protocol versions, cipher suites and key exchanges, in the
// forms operators bring from nginx, HAProxy and OpenSSL: package config
// parses them, package configdump writes them back, and each name
// written reads back as the same value.
package tlsnames

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// Curve is the key exchange s names: X25519MLKEM768, X25519, P256 or
// P384, in any case, with or without dashes and underscores, or by their
// OpenSSL names (prime256v1, secp256r1, secp384r1).
func Curve(s string) (tls.CurveID, bool) {
	switch strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(s, "-", ""), "_", "")) {
	case "x25519mlkem768":
		return tls.X25519MLKEM768, true
	case "x25519":
		return tls.X25519, true
	case "p256", "prime256v1", "secp256r1":
		return tls.CurveP256, true
	case "p384", "secp384r1":
		return tls.CurveP384, true
	}
	return 0, false
}

// Version is the protocol version s names: "1.2" or "1.3", also written
// "TLSv1.2", "tls1.3" and so on.
func Version(s string) (uint16, bool) {
	switch strings.TrimPrefix(strings.ToLower(s), "tls") {
	case "1.2", "v1.2":
		return tls.VersionTLS12, true
	case "1.3", "v1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

// CipherSuite is the TLS 1.2 suite name names, which must be one of
// allowed (the forward-secret AEAD suites the caller accepts). It takes
// Go names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) and the OpenSSL names
// nginx and HAProxy use (ECDHE-RSA-AES128-GCM-SHA256); write one back
// with tls.CipherSuiteName.
func CipherSuite(name string, allowed []uint16) (uint16, error) {
	openssl := map[string]string{
		"ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"ECDHE-RSA-AES128-GCM-SHA256":   "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384":   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"ECDHE-RSA-CHACHA20-POLY1305":   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	}
	goName := name
	if n, ok := openssl[strings.ToUpper(name)]; ok {
		goName = n
	}
	for _, id := range allowed {
		if tls.CipherSuiteName(id) == goName {
			return id, nil
		}
	}
	return 0, fmt.Errorf("cipher %q is not allowed: use forward-secret AEAD suites such as ECDHE-ECDSA-AES128-GCM-SHA256 or ECDHE-RSA-CHACHA20-POLY1305", name)
}

// VersionName is the name Version reads back as v: "1.3" for TLS 1.3,
// "1.2" for anything else.
func VersionName(v uint16) string {
	if v == tls.VersionTLS13 {
		return "1.3"
	}
	return "1.2"
}

// CurveName is the name Curve reads back as id (for a key exchange Curve
// does not know, crypto/tls's name for it).
func CurveName(id tls.CurveID) string {
	switch id {
	case tls.X25519MLKEM768:
		return "X25519MLKEM768"
	case tls.X25519:
		return "X25519"
	case tls.CurveP256:
		return "P256"
	case tls.CurveP384:
		return "P384"
	}
	return id.String()
}
