package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults of [Options]; config/defaults.go gives the reasons for the
// values an operator sees.
const (
	DefaultKeyPrefix = "gatehouse:"
	DefaultTimeout   = 10 * time.Millisecond
	DefaultHeartbeat = time.Second
	DefaultBanSync   = time.Second
)

// liveHeartbeats is how many heartbeat periods an instance stays live
// after its last heartbeat.
const liveHeartbeats = 3

// forgetInstances is how long an instance that stopped sending heartbeats
// is still listed (so that an operator sees it went away).
const forgetInstances = 24 * time.Hour

// Circuit breaker: after breakerFailures failed round trips in a row,
// requests skip Redis for breakerOpen, then one is let through to try.
const (
	breakerFailures = 3
	breakerOpen     = 250 * time.Millisecond
)

// opTimeout bounds a background round trip (heartbeats, ban sync,
// storage): they are off the request path, so they may wait longer than
// a rate-limit decision, but never forever.
const opTimeout = 2 * time.Second

// Options configures a [Node].
type Options struct {
	// URL is the server: redis://[user@]host:port/db, rediss://… (TLS),
	// or unix:///path (see redis.ParseURL). A password in it is refused:
	// pass Password.
	URL string
	// Username and Password authenticate (ACL user, or the default user
	// with requirepass); "" sends no AUTH (Username "" with a Password
	// authenticates the default user).
	Username string
	Password string
	// RootCAs are the roots trusted for rediss://; nil means the system's.
	RootCAs *x509.CertPool
	// KeyPrefix starts every key; "" means DefaultKeyPrefix.
	KeyPrefix string
	// Instance is this instance's name, unique in the cluster; required.
	Instance string
	// Version is announced in heartbeats.
	Version string
	// Listeners, announced in heartbeats, say where this instance serves
	// (name → address), for an operator reading /cluster.
	Listeners map[string]string
	// Timeout is the latency budget of a rate-limit decision; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Heartbeat is the period of heartbeats; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// BanSync is the period of the ban version check; 0 means
	// DefaultBanSync.
	BanSync time.Duration
	// Logger receives background errors (rate-limited); nil discards.
	Logger *slog.Logger
	// Registerer receives the gatehouse_cluster_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Now is the clock for heartbeats and bans; nil means time.Now. (Rate
	// limits use Redis's clock, the same for every instance.)
	Now func() time.Time
}

// Node is this instance's membership of a cluster: the Redis client,
// heartbeats, the count of live instances and a circuit breaker. Create
// one per process with [New], run [Node.Run], and [Node.Close] it last.
type Node struct {
	rdb       *redis.Client
	prefix    string
	instance  string
	runID     string
	version   string
	listeners atomic.Pointer[map[string]string]
	timeout   time.Duration
	heartbeat time.Duration
	banSync   time.Duration
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
	started   time.Time

	configHash atomic.Pointer[string]
	localAddr  atomic.Pointer[string] // this end of the last connection to Redis
	live       atomic.Int64           // live instances at the last heartbeat (≥ 1)

	// Breaker state (request path).
	failures  atomic.Int64 // failed round trips in a row
	openUntil atomic.Int64 // unix ns until which requests skip Redis

	warnMu   sync.Mutex
	warnedAt map[string]time.Time // rate limit of repeated warnings
}

// New returns a Node. It does not contact Redis: an instance starts (and
// serves, from its local copies) while Redis is down.
func New(o Options) (*Node, error) {
	if o.Instance == "" {
		return nil, errors.New("cluster: no instance name")
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: url: %w", err)
	}
	if ro.Password != "" {
		return nil, errors.New("cluster: url: holds a password; pass it separately")
	}
	if o.Username != "" {
		ro.Username = o.Username
	}
	ro.Password = o.Password
	if ro.TLSConfig != nil {
		ro.TLSConfig.RootCAs = o.RootCAs
		ro.TLSConfig.MinVersion = tls.VersionTLS12
	}
	n := &Node{
		prefix:    cmp.Or(o.KeyPrefix, DefaultKeyPrefix),
		instance:  o.Instance,
		runID:     randomID(),
		version:   o.Version,
		timeout:   cmp.Or(o.Timeout, DefaultTimeout),
		heartbeat: cmp.Or(o.Heartbeat, DefaultHeartbeat),
		banSync:   cmp.Or(o.BanSync, DefaultBanSync),
		log:       o.Logger,
		now:       o.Now,
		warnedAt:  map[string]time.Time{},
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.started = n.now()
	n.live.Store(1)
	n.SetListeners(o.Listeners)
	empty := ""
	n.configHash.Store(&empty)
	// Deadlines of the caller's context bound every command (the latency
	// budget of a decision is one); the client's own timeouts only bound
	// what has no deadline.
	ro.ContextTimeoutEnabled = true
	// A Redis that refuses connections is down: say so at once rather
	// than after the client's default 5 dial attempts and 3 retries,
	// so that reads fall back to the local copies quickly.
	ro.DialerRetries = 1
	ro.DialerRetryTimeout = 10 * time.Millisecond
	ro.MaxRetries = 1
	ro.DialTimeout = opTimeout
	ro.ReadTimeout = opTimeout
	ro.WriteTimeout = opTimeout
	ro.DisableIdentity = true
	ro.ClientName = "gatehouse:" + o.Instance
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	ro.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if ro.TLSConfig != nil {
			td := &tls.Dialer{NetDialer: dialer, Config: ro.TLSConfig}
			c, err = td.DialContext(ctx, network, addr)
		} else {
			c, err = dialer.DialContext(ctx, network, addr)
		}
		if err == nil {
			if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
				s := a.IP.String()
				n.localAddr.Store(&s)
			}
		}
		return c, err
	}
	n.rdb = redis.NewClient(ro)
	n.metrics = newMetrics(o.Registerer, n)
	return n, nil
}

// LogClientTo sends the Redis client library's own messages (failed
// dials, pool trouble) to l at debug level; the gatehouse_cluster_*
// metrics and this package's warnings say the same for operators. The
// library keeps one logger per process, so this is for cmd, once.
func LogClientTo(l *slog.Logger) { redis.SetLogger(clientLog{l}) }

type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	c.l.Debug("redis client: " + fmt.Sprintf(format, v...))
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close closes the client. Call it after every Run has returned.
func (n *Node) Close() error { return n.rdb.Close() }

// Instance returns this instance's name.
func (n *Node) Instance() string { return n.instance }

// Live returns the number of live instances (this one included) seen at
// the last successful heartbeat; 1 before the first.
func (n *Node) Live() int { return int(max(n.live.Load(), 1)) }

// SetListeners sets the listener addresses announced from the next
// heartbeat on (once they are bound).
func (n *Node) SetListeners(l map[string]string) { n.listeners.Store(&l) }

// SetConfigHash sets the configuration hash announced from the next
// heartbeat on (after a reload).
func (n *Node) SetConfigHash(h string) { n.configHash.Store(&h) }

// Ping checks that Redis answers within ctx.
func (n *Node) Ping(ctx context.Context) error { return n.rdb.Ping(ctx).Err() }

func (n *Node) key(parts ...string) string {
	k := n.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// available reports whether a request may try Redis now (the breaker is
// closed, or open long enough to let one try).
func (n *Node) available(now time.Time) bool {
	return now.UnixNano() >= n.openUntil.Load()
}

// result feeds the breaker with the outcome of a round trip on the
// request path.
func (n *Node) result(err error, now time.Time) {
	if err == nil {
		n.failures.Store(0)
		n.openUntil.Store(0)
		return
	}
	if n.failures.Add(1) >= breakerFailures {
		n.openUntil.Store(now.Add(breakerOpen).UnixNano())
	}
}

// Up reports whether the breaker is closed (the last round trips
// succeeded).
func (n *Node) Up() bool { return n.failures.Load() < breakerFailures }

// warn logs msg at most once a minute per msg.
func (n *Node) warn(msg string, args ...any) {
	now := time.Now()
	n.warnMu.Lock()
	last, ok := n.warnedAt[msg]
	if ok && now.Sub(last) < time.Minute {
		n.warnMu.Unlock()
		return
	}
	n.warnedAt[msg] = now
	n.warnMu.Unlock()
	n.log.Warn(msg, args...)
}

// Instance is one instance as its heartbeats describe it.
type Instance struct {
	Name       string            `json:"name"`
	Addr       string            `json:"addr"`
	Listeners  map[string]string `json:"listeners,omitempty"`
	Version    string            `json:"version"`
	ConfigHash string            `json:"config_hash"`
	Started    time.Time         `json:"started"`
	Heartbeat  time.Time         `json:"last_heartbeat"`
	RunID      string            `json:"run_id"`
	// Live is true while the last heartbeat is recent (3 periods).
	Live bool `json:"live"`
	// Self marks the instance that answered.
	Self bool `json:"self"`
}

// Run sends a heartbeat every Heartbeat period and counts the live
// instances until ctx ends. The caller owns the goroutine.
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(n.heartbeat)
	defer t.Stop()
	for {
		n.beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// beat sends one heartbeat: the instance record (reading the one it
// replaces, to spot a second instance of the same name), its place in the
// instance index, the index trimmed, and the live ones counted, in one
// round trip.
func (n *Node) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	now := n.now()
	rec := n.record(now)
	b, _ := json.Marshal(rec)
	idx, k := n.key("instances"), n.key("instance", n.instance)
	start := time.Now()
	pipe := n.rdb.Pipeline()
	prev := pipe.Get(ctx, k)
	pipe.Set(ctx, k, b, forgetInstances)
	pipe.ZAdd(ctx, idx, redis.Z{Score: float64(now.UnixMilli()), Member: n.instance})
	pipe.ZRemRangeByScore(ctx, idx, "-inf", "("+strconv.FormatInt(now.Add(-forgetInstances).UnixMilli(), 10))
	live := pipe.ZCount(ctx, idx, strconv.FormatInt(now.Add(-liveHeartbeats*n.heartbeat).UnixMilli(), 10), "+inf")
	cmds, _ := pipe.Exec(ctx)
	var err error
	for _, c := range cmds {
		// The first heartbeat of a name finds no record to replace.
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			err = e
			break
		}
	}
	// Heartbeats feed the breaker too, so that it closes when Redis is
	// back even while no request asks for a cluster zone.
	n.result(err, time.Now())
	if err != nil {
		n.metrics.observe(opHeartbeat, start, err)
		n.warn("cluster: heartbeat failed; Redis unreachable", "err", err)
		return
	}
	n.metrics.observe(opHeartbeat, start, nil)
	n.live.Store(max(live.Val(), 1))
	if p, err := prev.Bytes(); err == nil {
		var old Instance
		if json.Unmarshal(p, &old) == nil && old.RunID != "" && old.RunID != n.runID && now.Sub(old.Heartbeat) < liveHeartbeats*n.heartbeat {
			n.warn("cluster: another running instance uses this instance name; give every instance its own [cluster] instance", "instance", n.instance, "other_addr", old.Addr)
		}
	}
}

func (n *Node) record(now time.Time) Instance {
	addr := ""
	if a := n.localAddr.Load(); a != nil {
		addr = *a
	}
	return Instance{
		Name: n.instance, Addr: addr, Listeners: *n.listeners.Load(), Version: n.version,
		ConfigHash: *n.configHash.Load(), Started: n.started, Heartbeat: now, RunID: n.runID,
	}
}

// Instances lists the instances seen in the last day, live ones first,
// by name. While Redis is unreachable it returns this instance alone and
// the error.
func (n *Node) Instances(ctx context.Context) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	now := n.now()
	self := n.record(now)
	self.Live, self.Self = true, true
	names, err := n.rdb.ZRange(ctx, n.key("instances"), 0, -1).Result()
	if err != nil {
		return []Instance{self}, fmt.Errorf("cluster: list instances: %w", err)
	}
	out := []Instance{}
	if len(names) > 0 {
		keys := make([]string, len(names))
		for i, name := range names {
			keys[i] = n.key("instance", name)
		}
		vals, err := n.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return []Instance{self}, fmt.Errorf("cluster: list instances: %w", err)
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			var in Instance
			if json.Unmarshal([]byte(s), &in) != nil {
				continue
			}
			if in.Name == n.instance && in.RunID == n.runID {
				// This instance as it is now, not as its last heartbeat
				// wrote it (the first one is written before any
				// connection to Redis gives it an address).
				in = self
			} else {
				in.Live = now.Sub(in.Heartbeat) < liveHeartbeats*n.heartbeat
			}
			out = append(out, in)
		}
	}
	if !slices.ContainsFunc(out, func(in Instance) bool { return in.Self }) {
		out = append(out, self) // before the first heartbeat
	}
	slices.SortFunc(out, func(a, b Instance) int {
		if a.Live != b.Live {
			if a.Live {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}
