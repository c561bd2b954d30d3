package tlsnames

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for s, want := range map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13, "TLSv1.2": tls.VersionTLS12, "tls1.3": tls.VersionTLS13, "v1.3": tls.VersionTLS13} {
		if got, ok := Version(s); !ok || got != want {
			t.Errorf("Version(%q) = %x, %v; want %x", s, got, ok, want)
		}
	}
	for _, bad := range []string{"", "1.1", "1.0", "SSLv3", "13"} {
		if _, ok := Version(bad); ok {
			t.Errorf("Version(%q) accepted", bad)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if got, ok := Version(VersionName(v)); !ok || got != v {
			t.Errorf("Version(VersionName(%x)) = %x, %v", v, got, ok)
		}
	}
}

func TestCurve(t *testing.T) {
	for s, want := range map[string]tls.CurveID{"X25519MLKEM768": tls.X25519MLKEM768, "x25519": tls.X25519, "P-256": tls.CurveP256,
		"prime256v1": tls.CurveP256, "secp256r1": tls.CurveP256, "P_384": tls.CurveP384, "secp384r1": tls.CurveP384} {
		if got, ok := Curve(s); !ok || got != want {
			t.Errorf("Curve(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, bad := range []string{"", "P521", "X448", "ffdhe2048"} {
		if _, ok := Curve(bad); ok {
			t.Errorf("Curve(%q) accepted", bad)
		}
	}
	for _, id := range []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384} {
		if got, ok := Curve(CurveName(id)); !ok || got != id {
			t.Errorf("Curve(CurveName(%v)) = %v, %v", id, got, ok)
		}
	}
}

func TestCipherSuite(t *testing.T) {
	allowed := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	for s, want := range map[string]uint16{
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		"ECDHE-RSA-AES128-GCM-SHA256":           tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		"ecdhe-ecdsa-chacha20-poly1305":         tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		if got, err := CipherSuite(s, allowed); err != nil || got != want {
			t.Errorf("CipherSuite(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	for _, bad := range []string{"ECDHE-RSA-AES256-GCM-SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", ""} {
		if _, err := CipherSuite(bad, allowed); err == nil || !strings.Contains(err.Error(), "is not allowed") {
			t.Errorf("CipherSuite(%q) = %v, want not allowed", bad, err)
		}
	}
	for _, id := range allowed {
		if got, err := CipherSuite(tls.CipherSuiteName(id), allowed); err != nil || got != id {
			t.Errorf("CipherSuite(tls.CipherSuiteName(%x)) = %x, %v", id, got, err)
		}
	}
}
