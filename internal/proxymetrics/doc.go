// Package proxymetrics defines the proxy's Prometheus metrics: every
// family's name, help, labels and buckets, the folding of label values
// (methods into a fixed set, statuses into classes), the per-route
// children the request path counts into without label lookups, and the
// build information gauge.
//
// The families are created once per process ([New]) on a Registerer the
// caller passes in (no default registry), and live across configuration
// reloads. State that belongs to one Runtime generation (servers up,
// queues, tunnels) is not here: the proxy reports it through a collector
// read at scrape time, which New registers alongside.
package proxymetrics
