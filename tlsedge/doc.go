// Package tlsedge is Gatehouse's certificate manager: it chooses the
// certificate for each TLS handshake, obtains and renews ACME certificates
// (through github.com/caddyserver/certmagic: ARI, profiles, dns-01,
// storage shared between instances), reloads certificate files from
// disk, staples OCSP responses and sets the TLS protocol policy. Parts
// with one job of their own are internal packages: ocspstaple (asking
// responders, verifying answers, when to refresh), autocertimport (the
// autocert cache of earlier versions), devcert (the self-signed
// certificate) and slogzap (certmagic's logging into slog).
//
// # Lifecycle
//
// One [Manager] lives as long as the process. cmd creates it with [New],
// then for every configuration generation (start-up and each reload):
//
//  1. the lead converts the site configuration into a [Config] and calls
//     [Check] (`gatehouse check`) or [Manager.Update]. Update validates
//     everything first — files readable, key matching certificate,
//     certificate currently valid, every claimed name covered — and returns
//     all problems at once; on error nothing changes and the previous
//     certificates keep serving;
//  2. on success the new generation is published with one atomic pointer
//     store. Staples of unchanged certificates carry over; the certmagic
//     configurations are kept unless the ACME section (or the set of
//     profile and challenge pairs) changed.
//
// Listeners use [Manager.TLSConfig] (one per listener [Policy]) and the
// port-80 server wraps its handler in [Manager.HTTPHandler] for http-01.
// [Manager.Run], started once with the process context, does the
// background work every Options.PollInterval: it reloads certificate files
// whose size, mtime or content changed, starts one goroutine per ACME name
// (load from storage, or order; names removed from the configuration
// leave certmagic's maintenance), refreshes OCSP staples and rotates
// session ticket keys. It owns the certmagic cache, whose maintenance
// renews certificates following ARI. When its context ends it stops the
// cache, waits for its goroutines and returns.
//
// # Handshakes
//
// [Manager.GetCertificate] looks the SNI up in the current generation:
// exact names from certificate files and the self-signed certificate,
// then ACME names, then wildcard file certificates. An unknown name fails
// the handshake and never reaches the ACME CA; a name in Config.ACMENames
// must also pass Options.HostPolicy. Served *tls.Certificate values are
// never modified: a new staple is a new tls.Certificate swapped in.
//
// # OCSP
//
// Stapling is opportunistic and Config.DisableOCSP turns it off (no
// request, no staple served). Certificates without an OCSP responder URL
// (every Let's Encrypt certificate since 2025) are served unstapled with no
// warning. Otherwise the response is fetched, verified against the issuer
// and stapled only when Good, current and not outliving the certificate;
// it is refreshed at half its validity window, persisted in StateDir/ocsp,
// kept while the responder is down and dropped when it expires. Run's
// first pass refreshes a saved staple past half its window (ACME
// certificates: as soon as the monitor loads them) while handshakes keep
// getting the saved one. A verified Revoked answer drops the staple at
// once and replaces the saved one; it is never stapled itself, and it is
// logged at error level and counted. A Must-Staple certificate is refused
// without a valid staple.
//
// # ACME storage
//
// certmagic's storage (StateDir/certmagic, Options.StorageDir or
// Options.Storage) holds accounts, certificates, ARI data, challenges and
// locks. On the first ACME configuration the autocert cache of earlier
// versions (StateDir/acme) is imported so nothing is ordered again; a file
// there that does not parse is renamed to <name>.bad-<timestamp>, logged
// and counted, and so is a stored certificate that does not load.
//
// # Metrics
//
// With Options.Registerer set: gatehouse_tls_certificate_not_after_seconds
// {name}, gatehouse_tls_certificate_not_before_seconds{name},
// gatehouse_tls_certificate_renewal_failing{name},
// gatehouse_tls_acme_ari_window_start_seconds{name}, ..._end_seconds,
// gatehouse_tls_acme_ari_renewal_time_seconds{name} and
// gatehouse_tls_ocsp_next_update_seconds{name} (computed at scrape time
// from the current generation, so removed names disappear),
// gatehouse_tls_renewals_total{result=success|failure|overdue},
// gatehouse_tls_ocsp_fetch_failures_total,
// gatehouse_tls_ocsp_revoked_total,
// gatehouse_tls_acme_cache_corrupt_total{kind=account_key|certificate},
// gatehouse_tls_handshakes_total{version=1.2|1.3|other} (counted in
// VerifyConnection of configs from TLSConfig) and
// gatehouse_tls_handshake_failures_total{reason}: unknown_sni,
// no_certificate and must_staple are counted in GetCertificate; protocol
// and other only when the server's error log is [Manager.HandshakeErrorLog]
// (or errors are passed to [Manager.ObserveHandshakeError]), because Go
// rejects version and cipher mismatches before any callback runs.
package tlsedge
