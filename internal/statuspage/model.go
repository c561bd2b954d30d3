package statuspage

import "time"

// Snapshot is everything the page shows at one moment; it is also the
// JSON document the page polls.
type Snapshot struct {
	Version string    `json:"version"`
	Now     time.Time `json:"now"`
	// TokenRequired is set when listeners.admin.token is: the page's
	// actions then need the token, typed into the page.
	TokenRequired bool          `json:"token_required"`
	Reload        Reload        `json:"reload"`
	Upstreams     []Upstream    `json:"upstreams"`
	Certificates  []Certificate `json:"certificates"`
	// Bans is nil when bans are off.
	Bans  *Bans  `json:"bans"`
	Sites []Site `json:"sites"`
}

// Reload is the state of the configuration.
type Reload struct {
	// Path is the configuration file; empty for the embedded one.
	Path string `json:"path"`
	// Hash is the SHA-256 of the serving configuration's bytes, in hex
	// (what sha256sum prints for the file as it was loaded).
	Hash string `json:"hash"`
	// LoadedAt is when the serving configuration was loaded.
	LoadedAt time.Time `json:"loaded_at"`
	// LastAttempt is the last load or reload, successful or not.
	LastAttempt time.Time `json:"last_attempt"`
	// LastOK reports whether it succeeded; when it did not, LastError says
	// why and the configuration loaded at LoadedAt is still serving.
	LastOK    bool   `json:"last_ok"`
	LastError string `json:"last_error,omitempty"`
}

// Upstream is one upstream and its servers.
type Upstream struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	// Health describes the active check; nil: passive health only.
	Health  *Health  `json:"health"`
	Servers []Server `json:"servers"`
}

// Health is an upstream's active health check.
type Health struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Interval is the check interval as a Go duration ("2s").
	Interval string `json:"interval"`
}

// Server states, in the order they take precedence.
const (
	StateDown      = "down"       // failing its health check, or out after max_fails (passive)
	StateDraining  = "draining"   // no new clients (runtime or configured drain)
	StateSlowStart = "slow start" // up again, its share still ramping up
	StateBackup    = "backup"     // a backup server, up, serving only when the primaries cannot
	StateUp        = "up"
)

// Server is one upstream server (one address of it, when its name
// resolves to several).
type Server struct {
	// Name is the configured server name, the one the drain action takes;
	// Label is Name, or name@address when the name has several addresses.
	Name  string `json:"name"`
	Label string `json:"label"`
	Addr  string `json:"addr"`
	// State is one of the State constants; Detail says why or until when
	// ("status 500 from /health/", "until undrained").
	State    string `json:"state"`
	Detail   string `json:"detail,omitempty"`
	Backup   bool   `json:"backup"`
	Draining bool   `json:"draining"`
	// DrainedByConfig is set for a server with drain = true in the
	// configuration, which only a reload undoes.
	DrainedByConfig bool `json:"drained_by_config"`
	Weight          int  `json:"weight"`
	// InFlight counts requests and WebSocket streams holding a slot; Queue
	// the requests waiting for one (max_conns).
	InFlight   int64 `json:"in_flight"`
	Queue      int64 `json:"queue"`
	WebSockets int   `json:"websockets"`
	// The recent rates, over WindowSeconds (0: no earlier sample yet, the
	// rates are unknown).
	WindowSeconds     float64 `json:"window_seconds"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	// ErrorRate is the share of the server's responses that had a 5xx
	// status, 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// Failures counts failures held against the server (connection
	// errors, timeouts, fail_statuses) in the window.
	Failures uint64 `json:"failures"`
	// LatencyMS is the mean response time in milliseconds; 0 without
	// responses.
	LatencyMS float64 `json:"latency_ms"`
	// LastCheck is the latest active health check; nil: none yet.
	LastCheck *Check `json:"last_check"`

	// Counters are the cumulative sums the rates are computed from; the
	// Source fills them, the page computes the rates.
	Counters Counters `json:"-"`
}

// Counters are a server's cumulative counts since its state was created.
type Counters struct {
	Responses uint64        // responses the server answered
	Errors    uint64        // of which 5xx
	Latency   time.Duration // sum of their durations
	Failures  uint64        // failures held against the server
}

// Check is one active health-check result.
type Check struct {
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	Reason string    `json:"reason"`
}

// Certificate is one served certificate.
type Certificate struct {
	Names []string `json:"names"`
	// Source is "acme", "file" or "self-signed"; File is the certificate
	// file of a "file" one.
	Source string `json:"source"`
	File   string `json:"file,omitempty"`
	// Issuer is empty, and NotAfter zero, while an ACME certificate is
	// still being obtained.
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	// RenewAt is when Gatehouse renews it; zero when it does not (files).
	RenewAt time.Time `json:"renew_at"`
}

// Bans are the active bans.
type Bans struct {
	Count int `json:"count"`
	// Latest are the most recent bans, newest first.
	Latest []Ban `json:"latest"`
}

// Ban is one banned address or prefix.
type Ban struct {
	Addr   string    `json:"addr"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

// Site is one site and its routes.
type Site struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	TLS    string   `json:"tls"`
	Routes []Route  `json:"routes"`
}

// Route is one route of a site.
type Route struct {
	Path      string `json:"path"`
	Upstream  string `json:"upstream"`
	WebSocket bool   `json:"websocket"`
}
