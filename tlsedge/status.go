package tlsedge

import (
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// CertificateInfo describes one certificate the Manager serves, for status
// views.
type CertificateInfo struct {
	// Names are the configured names this certificate is served for, in
	// configuration order.
	Names []string
	// Source is "acme", "file" or "self-signed".
	Source string
	// File is the certificate file of a "file" certificate.
	File string
	// Issuer is the issuer's common name (its full name when it has none);
	// empty while an ACME certificate is still being obtained.
	Issuer string
	// NotBefore and NotAfter are the validity; zero while an ACME
	// certificate is still being obtained.
	NotBefore, NotAfter time.Time
	// RenewAt is when the Manager renews the certificate: for ACME, the
	// time the CA's renewal information (ARI) selected, else when
	// RenewRatio of the lifetime is left; for the self-signed certificate,
	// 30 days before NotAfter, at the first configuration load from then
	// on. Zero for files: whoever writes them renews them, and a changed
	// file is picked up within the poll interval.
	RenewAt time.Time
}

// Certificates lists the certificates of the current configuration, one
// entry per certificate with the configured names it serves (ACME names
// whose certificate is not obtained yet have an entry each, without
// validity). It reads the current state and takes the maintenance lock
// briefly; it does no I/O.
func (m *Manager) Certificates() []CertificateInfo {
	st := m.state.Load()
	if st == nil {
		return nil
	}
	acmeEntries := *m.acmeCerts.Load()
	m.maintMu.Lock()
	aris := map[string]*acme.RenewalInfo{}
	for n, o := range m.acmeSeen {
		if o.ari != nil && acmeEntries[n] != nil && acmeEntries[n].leaf == o.leaf {
			aris[n] = o.ari
		}
	}
	m.maintMu.Unlock()

	var out []CertificateInfo
	index := map[*entry]int{}
	seen := map[string]bool{}
	for _, n := range append(append(append([]string(nil), st.cfg.Names...), st.cfg.ACMENames...), st.cfg.SelfSigned...) {
		if seen[n] {
			continue
		}
		seen[n] = true
		var e *entry
		isACME := false
		switch {
		case st.exact[n] != nil:
			e = st.exact[n]
		case st.acmeNames[n]:
			isACME = true
			e = acmeEntries[n]
		default:
			if i := strings.IndexByte(n, '.'); i > 0 {
				e = st.wildcard["*"+n[i:]]
			}
		}
		if e == nil {
			if isACME {
				out = append(out, CertificateInfo{Names: []string{n}, Source: "acme"})
			}
			continue
		}
		if i, ok := index[e]; ok {
			out[i].Names = append(out[i].Names, n)
			continue
		}
		index[e] = len(out)
		ci := CertificateInfo{Names: []string{n}, NotBefore: e.leaf.NotBefore, NotAfter: e.leaf.NotAfter, Issuer: e.leaf.Issuer.CommonName}
		if ci.Issuer == "" {
			ci.Issuer = e.leaf.Issuer.String()
		}
		switch e.src {
		case "acme":
			ci.Source = "acme"
			life := e.leaf.NotAfter.Sub(e.leaf.NotBefore)
			ci.RenewAt = e.leaf.NotAfter.Add(-time.Duration(float64(life) * st.cfg.ACME.RenewRatio))
			if a := aris[n]; a != nil && !a.SelectedTime.IsZero() {
				ci.RenewAt = a.SelectedTime
			}
		case "self-signed":
			ci.Source = "self-signed"
			ci.RenewAt = e.leaf.NotAfter.Add(-selfSignedMinLeft)
		default:
			ci.Source, ci.File = "file", e.src
		}
		out = append(out, ci)
	}
	return out
}
