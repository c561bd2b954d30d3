// Package statuspage renders the admin listener's status page: an HTML
// page (html/template, with its CSS and a small script embedded and
// inlined, no external asset) and the JSON document the page polls to
// update itself.
//
// The page shows what an operator looks at first: the sites and their
// routes; every upstream server with its state (up, down, draining, slow
// start, backup), in-flight and queued requests, open WebSockets, recent
// request rate, 5xx share and mean latency, and its last health check; the
// certificates with issuer, expiry and next renewal; the bans; and the
// state of the configuration (when it was loaded, its hash, how the last
// reload went) and the version.
//
// Everything is computed when a page or the JSON is requested, never in
// the background: with nobody watching, the page costs nothing. The
// recent rates come from cumulative counters (see [Counters]) sampled at
// each request into a small ring (one sample per [Options.Step], kept for
// [Options.Span]); the rate is the difference between now and the oldest
// kept sample.
//
// The package knows nothing of the daemon: a [Source], a [CertLister] and
// a [BanLister] supply the data, so the page can be rendered and tested on
// its own. It checks no request: the admin listener's request checks
// (Host, origin, the CSRF token this page embeds) apply before it.
package statuspage
