// Package proxymetrics defines the proxy's Prometheus metrics: every
// family's name, help, labels and buckets, the folding of label values
// (methods into a fixed set, statuses into classes), the per-route
// children the request path counts into without label lookups, and the
// build information gauge.
//
// The families are created once per process ([New]) on a Registerer the
// caller passes in (no default registry), and live across configuration
// reloads. State that belongs to one configuration generation (servers
// up, queues, rate-limit zones, bans, tunnels) is not kept here: at each
// scrape the caller's read function reports it into a [State], so a
// reload leaves no stale series. Every metric name Gatehouse's proxy
// exports is defined in this package.
package proxymetrics
