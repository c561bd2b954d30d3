package statuspage

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"
)

// Source supplies what the page shows. Its methods are called on every
// page or JSON request, never in the background.
type Source interface {
	// Reload is the state of the configuration.
	Reload() Reload
	// Sites lists the sites of the serving configuration.
	Sites() []Site
	// Upstreams lists the upstreams with their servers' state at now and
	// their cumulative Counters (the page computes the rates).
	Upstreams(now time.Time) []Upstream
	// TokenRequired reports whether listeners.admin.token is set.
	TokenRequired() bool
}

// CertLister lists the served certificates.
type CertLister interface {
	Certificates() []Certificate
}

// BanLister reports the active bans at now: how many, and the latest max
// of them, newest first.
type BanLister interface {
	Bans(now time.Time, max int) (count int, latest []Ban)
}

// Defaults of [Options].
const (
	// DefaultSpan: "recent" is the last minute, long enough to smooth a
	// burst, short enough to show a server failing now.
	DefaultSpan = time.Minute
	// DefaultStep: twelve samples a minute bound the ring at 13.
	DefaultStep = 5 * time.Second
	// DefaultPollInterval: the page's refresh while visible; a health
	// check interval of a few seconds shows within one or two polls.
	DefaultPollInterval = 2 * time.Second
	// DefaultMaxBans is how many of the latest bans the page lists.
	DefaultMaxBans = 10
)

// Options configure [New].
type Options struct {
	// Version is shown in the header.
	Version string
	// Source is required.
	Source Source
	// Certs lists the certificates; nil: the page says there is no HTTPS.
	Certs CertLister
	// Bans lists the bans; nil: bans are off.
	Bans BanLister
	// CSRFToken is embedded in the page for its actions to send back in
	// X-CSRF-Token; the admin listener's request checks compare it.
	CSRFToken string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Span and Step shape the rate window (see the package doc); zero
	// means DefaultSpan and DefaultStep.
	Span, Step time.Duration
	// PollInterval is how often the visible page polls the JSON; zero
	// means DefaultPollInterval.
	PollInterval time.Duration
	// MaxBans is how many bans are listed; zero means DefaultMaxBans.
	MaxBans int
}

// Page serves the status page and its JSON. Create it with [New]; it is
// safe for concurrent use.
type Page struct {
	o   Options
	win window
}

// New returns a Page.
func New(o Options) *Page {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Span <= 0 {
		o.Span = DefaultSpan
	}
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxBans <= 0 {
		o.MaxBans = DefaultMaxBans
	}
	return &Page{o: o, win: window{span: o.Span, step: o.Step}}
}

// Snapshot collects the current state from the sources and computes the
// recent rates.
func (p *Page) Snapshot() *Snapshot {
	now := p.o.Now()
	s := &Snapshot{
		Version:       p.o.Version,
		Now:           now,
		TokenRequired: p.o.Source.TokenRequired(),
		Reload:        p.o.Source.Reload(),
		Upstreams:     p.o.Source.Upstreams(now),
		Sites:         p.o.Source.Sites(),
	}
	p.win.rates(now, s.Upstreams)
	if p.o.Certs != nil {
		s.Certificates = p.o.Certs.Certificates()
	}
	if p.o.Bans != nil {
		n, latest := p.o.Bans.Bans(now, p.o.MaxBans)
		s.Bans = &Bans{Count: n, Latest: latest}
	}
	// Empty lists are [] in the JSON, so the script needs no null checks.
	if s.Upstreams == nil {
		s.Upstreams = []Upstream{}
	}
	if s.Certificates == nil {
		s.Certificates = []Certificate{}
	}
	if s.Sites == nil {
		s.Sites = []Site{}
	}
	if s.Bans != nil && s.Bans.Latest == nil {
		s.Bans.Latest = []Ban{}
	}
	return s
}

//go:embed assets/page.html assets/page.css assets/page.js
var assets embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"utc":      utc,
	"rel":      rel,
	"short":    short,
	"rate":     func(s Server) string { return rate(s) },
	"pct":      func(s Server) string { return pct(s) },
	"latency":  func(s Server) string { return latency(s) },
	"stateCSS": stateCSS,
	"join":     strings.Join,
}).ParseFS(assets, "assets/page.html", "assets/page.css", "assets/page.js"))

// view is what the template renders: the snapshot plus the page's own
// parameters.
type view struct {
	*Snapshot
	CSRF   string
	Nonce  string
	PollMS int64
}

// securityHeaders are sent with the page and the JSON: no framing (the
// page has buttons: no clickjacking), no cross-origin embedding of its
// responses, no caching, no referrer, no content sniffing; the page's
// only script and style are its own inline ones (by nonce), and it may
// connect only to its own origin.
func securityHeaders(h http.Header, nonce string) {
	csp := "default-src 'none'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	if nonce != "" {
		csp += "; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// ServeHTML serves the page (GET /).
func (p *Page) ServeHTML(w http.ResponseWriter, r *http.Request) {
	var nb [16]byte
	rand.Read(nb[:])
	nonce := base64.RawStdEncoding.EncodeToString(nb[:])
	var buf bytes.Buffer
	if err := p.Render(&buf, p.Snapshot(), nonce); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), nonce)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// ServeJSON serves the snapshot the page polls (GET /status.json).
func (p *Page) ServeJSON(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(p.Snapshot())
	if err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), "")
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// Render writes the page for s, with nonce on its inline script and style.
func (p *Page) Render(w io.Writer, s *Snapshot, nonce string) error {
	return page.Execute(w, view{Snapshot: s, CSRF: p.o.CSRFToken, Nonce: nonce, PollMS: p.o.PollInterval.Milliseconds()})
}

// The formatting helpers below have twins in page.js, which renders the
// same cells from the JSON; keep them alike.

// utc formats t as "2006-01-02 15:04:05Z"; "—" for the zero time.
func utc(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// rel says how far t is from now: "5 s ago", "in 3 d".
func rel(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	past := d >= 0
	if !past {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
	if past {
		return s + " ago"
	}
	return "in " + s
}

// short is the first 12 hex digits of a hash.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func rate(s Server) string {
	if s.WindowSeconds == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", s.RequestsPerSecond)
}

func pct(s Server) string {
	if s.WindowSeconds == 0 || s.RequestsPerSecond == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f %%", s.ErrorRate*100)
}

func latency(s Server) string {
	if s.WindowSeconds == 0 || s.RequestsPerSecond == 0 {
		return "–"
	}
	if s.LatencyMS < 10 {
		return fmt.Sprintf("%.1f ms", s.LatencyMS)
	}
	return fmt.Sprintf("%.0f ms", s.LatencyMS)
}

// stateCSS is the class of a state: "st-slow-start".
func stateCSS(state string) string {
	return "st-" + strings.ReplaceAll(state, " ", "-")
}
