package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/clientshare"
	"github.com/gatehouse-proxy/gatehouse/internal/wsproxy"
	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

// Edge is the request handler of every public listener. It serves each
// request with the Runtime current when the request arrived; Swap replaces
// the Runtime atomically, and requests already running finish on the one
// they started with.
type Edge struct {
	rt      atomic.Pointer[Runtime]
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	since   func(time.Time) time.Duration // now().Sub(t)

	// Tunnels owns live WebSocket streams; they outlive Runtime
	// generations (a reload does not close them).
	Tunnels *wsproxy.Tunnels

	// httpsPort is the bound HTTPS port when the server knows it (a
	// configured ":0" binds a random one); redirects use it.
	httpsPort atomic.Pointer[string]

	// shares counts each client's requests per upstream
	// (upstreams.X.client_share). It lives on the Edge, outliving Runtime
	// generations, so a reload does not hand a client a fresh share
	// while its requests still run.
	shares clientshare.Shares[shareKey]
}

// EdgeOptions configure NewEdge.
type EdgeOptions struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TunnelSweep is how often WebSocket idle and ping timeouts are
	// checked; zero means wstunnel's default.
	TunnelSweep time.Duration
}

// NewEdge returns an Edge with no Runtime: until the first Swap it answers
// 503. Close it to stop its WebSocket registry.
func NewEdge(o EdgeOptions) *Edge {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, "")
	}
	since := time.Since // the monotonic clock alone: one clock read, not two
	if o.Now == nil {
		o.Now = time.Now
	} else {
		now := o.Now
		since = func(t time.Time) time.Duration { return now().Sub(t) }
	}
	e := &Edge{
		metrics: o.Metrics,
		log:     o.Logger,
		now:     o.Now,
		since:   since,
		Tunnels: wsproxy.NewTunnels(wstunnel.RegistryOptions{SweepInterval: o.TunnelSweep}),
	}
	o.Metrics.edge.Store(e)
	return e
}

// Runtime returns the current generation (nil before the first Swap).
func (e *Edge) Runtime() *Runtime { return e.rt.Load() }

// Swap makes rt current and returns the previous generation, which the
// caller closes (Runtime.Close) once it no longer needs it. WebSocket
// tunnels whose route or backend server is gone in rt are closed with
// 1012 after the route's close delay, spread over its close spread.
func (e *Edge) Swap(rt *Runtime) (old *Runtime) {
	old = e.rt.Swap(rt)
	if old != nil && rt != nil { // nil: shutting down, Close ends the tunnels
		e.closeOrphanTunnels(rt)
	}
	return old
}

// SetHTTPSPort tells redirects which port HTTPS really listens on.
func (e *Edge) SetHTTPSPort(port string) { e.httpsPort.Store(&port) }

// Close stops the WebSocket registry (and the pending delayed closes of
// its tunnels), closing any remaining tunnel.
func (e *Edge) Close() { e.Tunnels.Close() }

func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

var _ http.Handler = (*Edge)(nil)
