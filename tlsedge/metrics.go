package tlsedge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log"
	"strings"

	"github.com/mholt/acmez/v3/acme"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-proxy/gatehouse/internal/autocertimport"
)

// Handshake failure reasons, the fixed label set of
// gatehouse_tls_handshake_failures_total.
const (
	reasonUnknownSNI    = "unknown_sni"    // no certificate configured for the SNI, or no SNI
	reasonNoCertificate = "no_certificate" // configured but unavailable (ACME not obtained yet, nothing loaded)
	reasonMustStaple    = "must_staple"    // must-staple certificate without a valid staple
	reasonProtocol      = "protocol"       // version, cipher, curve, ALPN or record-layer mismatch
	reasonOther         = "other"          // EOF, reset, timeout, anything else
)

// metrics holds the counters; gauges are produced at scrape time by
// Collect from the current state, so a reload leaves no stale series.
type metrics struct {
	m            *Manager
	renewals     *prometheus.CounterVec
	handshakes   [3]prometheus.Counter // 1.2, 1.3, other
	failures     map[string]prometheus.Counter
	ocspFailures prometheus.Counter
	ocspRevoked  prometheus.Counter
	cacheCorrupt *prometheus.CounterVec

	notAfterDesc   *prometheus.Desc
	notBeforeDesc  *prometheus.Desc
	failingDesc    *prometheus.Desc
	ariStartDesc   *prometheus.Desc
	ariEndDesc     *prometheus.Desc
	ariChosenDesc  *prometheus.Desc
	nextUpdateDesc *prometheus.Desc
}

func newMetrics(m *Manager, reg prometheus.Registerer) (*metrics, error) {
	hs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_tls_handshakes_total",
		Help: "Completed TLS handshakes by negotiated protocol version.",
	}, []string{"version"})
	fails := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_tls_handshake_failures_total",
		Help: "Failed TLS handshakes by reason (unknown_sni, no_certificate, must_staple, protocol, other).",
	}, []string{"reason"})
	mt := &metrics{
		m: m,
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_tls_renewals_total",
			Help: "ACME certificate events: success (a renewed certificate was stored), failure (an order or renewal attempt failed; retried with backoff), overdue (renewal window a third gone without a new certificate).",
		}, []string{"result"}),
		ocspFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_tls_ocsp_fetch_failures_total",
			Help: "Failed OCSP fetches or rejected OCSP responses.",
		}),
		ocspRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_tls_ocsp_revoked_total",
			Help: "Verified OCSP answers saying a served certificate is revoked; its staple is dropped. Replace the certificate.",
		}),
		cacheCorrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_tls_acme_cache_corrupt_total",
			Help: "Corrupt ACME cache files (kind=account_key|certificate) moved aside to <name>.bad-<timestamp>; a new account key and account, or a new certificate, replaces each.",
		}, []string{"kind"}),
		failures:       map[string]prometheus.Counter{},
		notAfterDesc:   prometheus.NewDesc("gatehouse_tls_certificate_not_after_seconds", "Expiry (Unix seconds) of the certificate served for each configured name.", []string{"name"}, nil),
		notBeforeDesc:  prometheus.NewDesc("gatehouse_tls_certificate_not_before_seconds", "Start of validity (Unix seconds) of the certificate served for each configured name; with not_after it gives the lifetime.", []string{"name"}, nil),
		failingDesc:    prometheus.NewDesc("gatehouse_tls_certificate_renewal_failing", "1 when the last attempt to obtain or renew the ACME certificate of a configured name failed (it is retried with backoff), else 0 (always 0 for certificate files and self-signed names).", []string{"name"}, nil),
		ariStartDesc:   prometheus.NewDesc("gatehouse_tls_acme_ari_window_start_seconds", "Start (Unix seconds) of the renewal window the CA suggests through ARI (RFC 9773) for the certificate of each ACME name; absent without ARI.", []string{"name"}, nil),
		ariEndDesc:     prometheus.NewDesc("gatehouse_tls_acme_ari_window_end_seconds", "End (Unix seconds) of the ARI renewal window of each ACME name; absent without ARI.", []string{"name"}, nil),
		ariChosenDesc:  prometheus.NewDesc("gatehouse_tls_acme_ari_renewal_time_seconds", "The random time inside the ARI window (Unix seconds) at which each ACME name's certificate is renewed; absent without ARI.", []string{"name"}, nil),
		nextUpdateDesc: prometheus.NewDesc("gatehouse_tls_ocsp_next_update_seconds", "NextUpdate (Unix seconds) of the OCSP staple served for each configured name; absent without a staple.", []string{"name"}, nil),
	}
	for i, v := range []string{"1.2", "1.3", "other"} {
		mt.handshakes[i] = hs.WithLabelValues(v)
	}
	for _, r := range []string{reasonUnknownSNI, reasonNoCertificate, reasonMustStaple, reasonProtocol, reasonOther} {
		mt.failures[r] = fails.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure", "overdue"} {
		mt.renewals.WithLabelValues(r)
	}
	for _, k := range []string{autocertimport.KindAccountKey, autocertimport.KindCertificate} {
		mt.cacheCorrupt.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{hs, fails, mt.renewals, mt.ocspFailures, mt.ocspRevoked, mt.cacheCorrupt, mt} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return mt, nil
}

func (mt *metrics) fail(reason string) { mt.failures[reason].Inc() }

func (mt *metrics) handshake(v uint16) {
	switch v {
	case tls.VersionTLS12:
		mt.handshakes[0].Inc()
	case tls.VersionTLS13:
		mt.handshakes[1].Inc()
	default:
		mt.handshakes[2].Inc()
	}
}

// Describe implements prometheus.Collector.
func (mt *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- mt.notAfterDesc
	ch <- mt.notBeforeDesc
	ch <- mt.failingDesc
	ch <- mt.ariStartDesc
	ch <- mt.ariEndDesc
	ch <- mt.ariChosenDesc
	ch <- mt.nextUpdateDesc
}

// Collect implements prometheus.Collector, reading the current state.
func (mt *metrics) Collect(ch chan<- prometheus.Metric) {
	st := mt.m.state.Load()
	if st == nil {
		return
	}
	acmeEntries := *mt.m.acmeCerts.Load()
	mt.m.maintMu.Lock()
	failing := make(map[string]bool, len(mt.m.acmeFailing))
	for n := range mt.m.acmeFailing {
		failing[n] = true
	}
	aris := map[string]*acme.RenewalInfo{}
	for n, o := range mt.m.acmeSeen {
		if o.ari != nil && acmeEntries[n] != nil && acmeEntries[n].leaf == o.leaf {
			aris[n] = o.ari
		}
	}
	mt.m.maintMu.Unlock()
	now := mt.m.now()
	seen := map[string]bool{}
	names := append(append(append([]string(nil), st.cfg.Names...), st.cfg.ACMENames...), st.cfg.SelfSigned...)
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		var e *entry
		switch {
		case st.exact[n] != nil:
			e = st.exact[n]
		case st.acmeNames[n]:
			e = acmeEntries[n]
		default:
			if i := strings.IndexByte(n, '.'); i > 0 {
				e = st.wildcard["*"+n[i:]]
			}
		}
		fail := 0.0
		if st.acmeNames[n] && failing[n] {
			fail = 1
		}
		ch <- prometheus.MustNewConstMetric(mt.failingDesc, prometheus.GaugeValue, fail, n)
		if a := aris[n]; a != nil {
			ch <- prometheus.MustNewConstMetric(mt.ariStartDesc, prometheus.GaugeValue, float64(a.SuggestedWindow.Start.Unix()), n)
			ch <- prometheus.MustNewConstMetric(mt.ariEndDesc, prometheus.GaugeValue, float64(a.SuggestedWindow.End.Unix()), n)
			if !a.SelectedTime.IsZero() {
				ch <- prometheus.MustNewConstMetric(mt.ariChosenDesc, prometheus.GaugeValue, float64(a.SelectedTime.Unix()), n)
			}
		}
		if e == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(mt.notAfterDesc, prometheus.GaugeValue, float64(e.leaf.NotAfter.Unix()), n)
		ch <- prometheus.MustNewConstMetric(mt.notBeforeDesc, prometheus.GaugeValue, float64(e.leaf.NotBefore.Unix()), n)
		if s := e.ocsp.Staple(); s != nil && !st.cfg.DisableOCSP && now.Before(s.NextUpdate) {
			ch <- prometheus.MustNewConstMetric(mt.nextUpdateDesc, prometheus.GaugeValue, float64(s.NextUpdate.Unix()), n)
		}
	}
}

// ObserveHandshakeError counts a failed handshake reported by the server
// (for example from http.Server's ErrorLog). Failures produced by
// GetCertificate are already counted there and are ignored here.
func (m *Manager) ObserveHandshakeError(err error) {
	var he *handshakeError
	if err == nil || errors.As(err, &he) {
		return
	}
	m.met.fail(classify(err.Error()))
}

// classify maps a handshake error message to a reason.
func classify(msg string) string {
	for _, s := range []string{
		"unsupported versions", "no cipher suite supported", "no mutually supported",
		"unsupported application protocols", "does not look like a TLS handshake",
		"protocol version not supported", "handshake failure", "unexpected message",
		"oversized record", "bad record MAC", "no supported",
	} {
		if strings.Contains(msg, s) {
			return reasonProtocol
		}
	}
	return reasonOther
}

// HandshakeErrorLog returns a logger for http.Server.ErrorLog. Lines of the
// form "http: TLS handshake error from ADDR: ERR" are counted in
// gatehouse_tls_handshake_failures_total (protocol or other; failures from
// GetCertificate were counted when they happened) and logged at debug
// level; every other line is logged at warn level.
func (m *Manager) HandshakeErrorLog() *log.Logger {
	return log.New(errorLogWriter{m}, "", 0)
}

type errorLogWriter struct{ m *Manager }

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if _, rest, ok := strings.Cut(line, "TLS handshake error from "); ok {
		_, msg, _ := strings.Cut(rest, ": ")
		if !strings.Contains(msg, "tlsedge: ") {
			w.m.met.fail(classify(msg))
		}
		w.m.log.Debug("tls handshake failed", "detail", rest)
		return len(p), nil
	}
	w.m.log.Warn("http server", "msg", line)
	return len(p), nil
}
