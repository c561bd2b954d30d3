package ratelimit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Jail defaults: the reference fail2ban jail (maxretry 10, findtime 600,
// bantime 7200).
const (
	DefaultMaxRetry   = 10
	DefaultFindTime   = 600 * time.Second
	DefaultBanTime    = 7200 * time.Second
	DefaultMaxTracked = 100_000
	// DefaultSweepInterval is how often Run drops expired bans and old
	// strikes.
	DefaultSweepInterval = 30 * time.Second
)

// JailOptions configures a [Jail]. Zero values mean the defaults.
type JailOptions struct {
	// MaxRetry strikes within FindTime ban a key for BanTime.
	// 0 means DefaultMaxRetry (10).
	MaxRetry int
	// FindTime is the window strikes are counted in; 0 means 600 s.
	FindTime time.Duration
	// BanTime is how long a ban lasts; 0 means 7200 s.
	BanTime time.Duration
	// MaxTracked bounds the keys with strikes but no ban; when full the key
	// whose last strike is oldest is forgotten. 0 means 100,000. Bans are not
	// bounded by it (each one took MaxRetry strikes to earn).
	MaxTracked int
	// Path is the JSON file bans are kept in (for example
	// /var/lib/gatehouse/bans.json); "" keeps bans in memory only.
	Path string
	// Now returns the current time for Ban, Unban, Load and Run; nil means
	// time.Now. RecordAt, BannedAt and List take the time as a parameter.
	Now func() time.Time
	// OnEvent, if set, is called for every ban, unban and expiry, outside
	// the jail's locks. It must not block for long.
	OnEvent func(Event)
	// Logger receives save errors from Run; nil discards them.
	Logger *slog.Logger
	// SweepInterval is Run's period; 0 means DefaultSweepInterval.
	SweepInterval time.Duration
}

// Event kinds.
const (
	EventBan    = "ban"
	EventUnban  = "unban"
	EventExpire = "expire"
)

// Event reports a change to the jail, for logging.
type Event struct {
	Kind    string    // EventBan, EventUnban or EventExpire
	Key     Key       // the client
	Reason  string    // why the ban was set (for all kinds)
	At      time.Time // when it happened
	Until   time.Time // end of the ban
	Strikes int       // strikes that caused an automatic ban (0 for Ban)
}

// Ban is one banned key: an address or a prefix of any length.
type Ban struct {
	Key    Key       `json:"key"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// Jail counts strikes against keys and bans keys that collect too many (a
// fail2ban jail). It is safe for concurrent use.
//
// A ban's key is a prefix (an IPv4 /32 or /24, an IPv6 /64, /48 or /128,
// any length but 0) and refuses every address inside it. Lookups try one
// hash per prefix length in use by some ban (there are few), without
// allocating.
//
// Persistence: with Path set, [Jail.Ban] and [Jail.Unban] write the file
// before they return. Bans caused by [Jail.RecordAt] and expiries found by
// [Jail.SweepAt] only mark the jail dirty: [Jail.Run] writes them (coalesced:
// one write however many bans happened while the previous write ran), and
// [Jail.Save] writes them on demand, e.g. at shutdown. This keeps disk I/O
// off the request path.
type Jail struct {
	maxRetry   int
	findTime   time.Duration
	banTime    time.Duration
	maxTracked int
	path       string
	now        func() time.Time
	onEvent    func(Event)
	log        *slog.Logger
	sweepEvery time.Duration

	seed  uint64
	nbans atomic.Int64 // bans held (including expired ones not yet swept)
	bans  [16]banShard
	lens  [2]banLengths // [0] IPv4, [1] IPv6
	banMu sync.Mutex    // serialises changes to bans and lens

	strikeMu  sync.Mutex
	strikes   map[Key]*strikeEntry
	strikeLRU lruList[strikeEntry, *strikeEntry] // by last strike: front is the newest

	saveMu sync.Mutex // serialises file writes
	dirty  atomic.Bool
	kick   chan struct{} // wakes Run to save; buffered 1
}

type banShard struct {
	mu sync.RWMutex
	m  map[Key]Ban
	_  [32]byte
}

// banLengths says which prefix lengths of one family have bans, so that a
// lookup tries those lengths only.
type banLengths struct {
	n    [129]int32       // bans per prefix length; guarded by banMu
	mask [3]atomic.Uint64 // bit l is set while n[l] > 0; read without a lock
}

type strikeEntry struct {
	key     Key
	times   []int64 // ring of the last MaxRetry strike times (unix ns)
	next, n int
	lruLinks[strikeEntry]
}

// NewJail returns an empty jail; call Load to restore saved bans.
func NewJail(o JailOptions) *Jail {
	j := &Jail{
		maxRetry:   cmp.Or(max(o.MaxRetry, 0), DefaultMaxRetry),
		findTime:   cmp.Or(max(o.FindTime, 0), DefaultFindTime),
		banTime:    cmp.Or(max(o.BanTime, 0), DefaultBanTime),
		maxTracked: cmp.Or(max(o.MaxTracked, 0), DefaultMaxTracked),
		path:       o.Path,
		now:        o.Now,
		onEvent:    o.OnEvent,
		log:        o.Logger,
		sweepEvery: cmp.Or(max(o.SweepInterval, 0), DefaultSweepInterval),
		seed:       rand.Uint64(),
		strikes:    make(map[Key]*strikeEntry),
		kick:       make(chan struct{}, 1),
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	for i := range j.bans {
		j.bans[i].m = make(map[Key]Ban)
	}
	return j
}

func (j *Jail) shard(k Key) *banShard {
	return &j.bans[k.hash(j.seed)%uint64(len(j.bans))]
}

// BannedAt reports whether key k lies inside a ban in force at now (a ban
// on k itself or on a shorter prefix around it), and until when (the
// latest end among such bans). With the key of a whole address,
// [AddrKey], that decides bans of every length; with a client key of a
// shorter prefix (the /64 of [KeyOf]) a ban on a longer prefix inside it (a
// /96, a /128) is not seen, as k does not say which address it is.
//
// It does not allocate and takes only read locks (none at all while no key
// is banned), so it can run on every accepted connection and request.
func (j *Jail) BannedAt(k Key, now time.Time) (banned bool, until time.Time) {
	if j.nbans.Load() == 0 || !k.IsValid() {
		return false, time.Time{}
	}
	b, ok := j.lookup(k, now)
	return ok, b.Until
}

// BanOf returns the ban in force at now that covers client address a (the
// one that ends last, if several do).
func (j *Jail) BanOf(a netip.Addr, now time.Time) (Ban, bool) {
	k := AddrKey(a)
	if !k.IsValid() || j.nbans.Load() == 0 {
		return Ban{}, false
	}
	return j.lookup(k, now)
}

// lookup returns the ban in force at now, ending last, on a prefix of k no
// longer than k.
func (j *Jail) lookup(k Key, now time.Time) (best Ban, found bool) {
	ls := &j.lens[1]
	if k.v4 {
		ls = &j.lens[0]
	}
	for w := range ls.mask {
		for m := ls.mask[w].Load(); m != 0; m &= m - 1 {
			l := w*64 + bits.TrailingZeros64(m)
			if l > int(k.bits) {
				return best, found
			}
			c := Key{a: k.a, bits: uint8(l), v4: k.v4}
			maskBits(&c.a, l)
			s := j.shard(c)
			s.mu.RLock()
			if b, ok := s.m[c]; ok && now.Before(b.Until) && (!found || b.Until.After(best.Until)) {
				best, found = b, true
			}
			s.mu.RUnlock()
		}
	}
	return best, found
}

// RecordAt counts one strike against k at now (a refused or failed request,
// say). When k has collected MaxRetry strikes within FindTime it is banned
// for BanTime from now, and RecordAt returns true. A key already banned
// (by a ban on it or on a prefix around it) gets no more strikes and
// RecordAt returns true.
func (j *Jail) RecordAt(k Key, reason string, now time.Time) (banned bool) {
	if !k.IsValid() {
		return false
	}
	if b, _ := j.BannedAt(k, now); b {
		return true
	}
	ns := now.UnixNano()
	j.strikeMu.Lock()
	e := j.strikes[k]
	if e == nil {
		if len(j.strikes) >= j.maxTracked {
			j.dropStrikes(j.strikeLRU.back)
		}
		e = &strikeEntry{key: k, times: make([]int64, j.maxRetry)}
		j.strikes[k] = e
	} else {
		j.strikeLRU.remove(e)
	}
	j.strikeLRU.pushFront(e)
	e.times[e.next] = ns
	e.next = (e.next + 1) % len(e.times)
	e.n = min(e.n+1, len(e.times))
	// With the ring full, e.times[e.next] is the oldest of the last MaxRetry.
	hit := e.n == len(e.times) && e.times[e.next%len(e.times)] > ns-int64(j.findTime)
	strikes := e.n
	if hit {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	if !hit {
		return false
	}
	b := Ban{Key: k, Since: now, Until: now.Add(j.banTime), Reason: reason}
	j.put(b)
	j.markDirty()
	j.emit(Event{Kind: EventBan, Key: k, Reason: reason, At: now, Until: b.Until, Strikes: strikes})
	return true
}

func (j *Jail) put(b Ban) {
	s := j.shard(b.Key)
	j.banMu.Lock()
	defer j.banMu.Unlock()
	s.mu.Lock()
	_, had := s.m[b.Key]
	s.m[b.Key] = b
	s.mu.Unlock()
	if !had {
		j.lengthsOf(b.Key).add(b.Key.Bits())
		j.nbans.Add(1)
	}
}

// del takes the ban on exactly k out of the jail, if there is one.
func (j *Jail) del(k Key) (Ban, bool) {
	s := j.shard(k)
	j.banMu.Lock()
	defer j.banMu.Unlock()
	s.mu.Lock()
	b, ok := s.m[k]
	delete(s.m, k)
	s.mu.Unlock()
	if ok {
		j.nbans.Add(-1)
		j.lengthsOf(k).remove(k.Bits())
	}
	return b, ok
}

func (j *Jail) lengthsOf(k Key) *banLengths {
	if k.v4 {
		return &j.lens[0]
	}
	return &j.lens[1]
}

// add and remove count one ban of prefix length l; banMu must be held.
func (ls *banLengths) add(l int) {
	if ls.n[l]++; ls.n[l] == 1 {
		ls.mask[l/64].Or(1 << (l % 64))
	}
}

func (ls *banLengths) remove(l int) {
	if ls.n[l]--; ls.n[l] == 0 {
		ls.mask[l/64].And(^uint64(1 << (l % 64)))
	}
}

func (j *Jail) emit(e Event) {
	if j.onEvent != nil {
		j.onEvent(e)
	}
}

func (j *Jail) markDirty() {
	if j.path == "" {
		return
	}
	j.dirty.Store(true)
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// dropStrikes forgets e; strikeMu must be held.
func (j *Jail) dropStrikes(e *strikeEntry) {
	j.strikeLRU.remove(e)
	delete(j.strikes, e.key)
}

// Tracked returns the number of keys with strikes and no ban.
func (j *Jail) Tracked() int {
	j.strikeMu.Lock()
	defer j.strikeMu.Unlock()
	return len(j.strikes)
}

// Ban bans k (an address key or any prefix) for d from now (an operator's
// ban; d ≤ 0 means BanTime), replacing any ban on k, and saves the file.
func (j *Jail) Ban(k Key, d time.Duration, reason string) error {
	if !k.IsValid() {
		return errors.New("ratelimit: ban of the zero Key")
	}
	if d <= 0 {
		d = j.banTime
	}
	now := j.now()
	b := Ban{Key: k, Since: now, Until: now.Add(d), Reason: reason}
	j.put(b)
	j.strikeMu.Lock()
	if e := j.strikes[k]; e != nil {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	j.emit(Event{Kind: EventBan, Key: k, Reason: reason, At: now, Until: b.Until})
	return j.saveIfPersistent()
}

// Unban lifts the ban on exactly k (not on prefixes inside or around it),
// forgets k's strikes and saves the file. It reports whether k was banned.
func (j *Jail) Unban(k Key) (found bool, err error) {
	b, ok := j.del(k)
	j.strikeMu.Lock()
	if e := j.strikes[k]; e != nil {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	if !ok {
		return false, nil
	}
	j.emit(Event{Kind: EventUnban, Key: k, Reason: b.Reason, At: j.now(), Until: b.Until})
	return true, j.saveIfPersistent()
}

func (j *Jail) saveIfPersistent() error {
	if j.path == "" {
		return nil
	}
	j.dirty.Store(true)
	return j.Save()
}

// List returns the bans in force at now, soonest to end first.
func (j *Jail) List(now time.Time) []Ban {
	var out []Ban
	for i := range j.bans {
		s := &j.bans[i]
		s.mu.RLock()
		for _, b := range s.m {
			if now.Before(b.Until) {
				out = append(out, b)
			}
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Ban) int {
		return cmp.Or(a.Until.Compare(b.Until), cmp.Compare(a.Key.String(), b.Key.String()))
	})
	return out
}

// SweepAt drops bans that have ended at now (emitting EventExpire and
// marking the file dirty) and strike records with no strike inside FindTime.
// It returns the number of bans dropped.
func (j *Jail) SweepAt(now time.Time) int {
	var expired []Ban
	j.banMu.Lock()
	for i := range j.bans {
		s := &j.bans[i]
		s.mu.Lock()
		for k, b := range s.m {
			if !now.Before(b.Until) {
				delete(s.m, k)
				j.nbans.Add(-1)
				j.lengthsOf(k).remove(k.Bits())
				expired = append(expired, b)
			}
		}
		s.mu.Unlock()
	}
	j.banMu.Unlock()
	cutoff := now.Add(-j.findTime).UnixNano()
	j.strikeMu.Lock()
	for e := j.strikeLRU.back; e != nil; e = j.strikeLRU.back {
		last := e.times[(e.next+len(e.times)-1)%len(e.times)]
		if last > cutoff {
			break
		}
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	for _, b := range expired {
		j.emit(Event{Kind: EventExpire, Key: b.Key, Reason: b.Reason, At: now, Until: b.Until})
	}
	if len(expired) > 0 {
		j.markDirty()
	}
	return len(expired)
}

// Run sweeps every SweepInterval and writes the file when bans changed,
// until ctx is done; then it saves one last time and returns that error.
// The caller owns the goroutine running it.
func (j *Jail) Run(ctx context.Context) error {
	t := time.NewTicker(j.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if j.path == "" || !j.dirty.Load() {
				return nil
			}
			return j.Save()
		case <-t.C:
			j.SweepAt(j.now())
		case <-j.kick:
		}
		if j.path != "" && j.dirty.Load() {
			if err := j.Save(); err != nil {
				j.log.Error("saving bans", "err", err)
			}
		}
	}
}

// banFile is the JSON layout of JailOptions.Path.
type banFile struct {
	Version int   `json:"version"`
	Bans    []Ban `json:"bans"`
}

// Save writes the bans in force to Path atomically (a temporary file in the
// same directory, fsynced, then renamed over Path), with mode 0600. With no
// Path it does nothing.
func (j *Jail) Save() error {
	if j.path == "" {
		return nil
	}
	j.saveMu.Lock()
	defer j.saveMu.Unlock()
	j.dirty.Store(false) // changes after this point make it dirty again
	f := banFile{Version: 1, Bans: j.List(j.now())}
	if f.Bans == nil {
		f.Bans = []Ban{}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		j.dirty.Store(true)
		return fmt.Errorf("ratelimit: save bans to %s: %w", j.path, err)
	}
	if err := writeFileAtomic(j.path, append(b, '\n')); err != nil {
		j.dirty.Store(true)
		return fmt.Errorf("ratelimit: save bans to %s: %w", j.path, err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}

// Load replaces nothing and adds the bans saved in Path that are still in
// force (bans that ended while the process was down are dropped). A missing
// file is not an error. A file that cannot be parsed gives an error naming
// the path, and no ban from it is loaded.
func (j *Jail) Load() error {
	if j.path == "" {
		return nil
	}
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ratelimit: load bans: %w", err)
	}
	var f banFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("ratelimit: load bans from %s: %w", j.path, err)
	}
	if f.Version != 1 {
		return fmt.Errorf("ratelimit: load bans from %s: unknown version %d", j.path, f.Version)
	}
	for i, ban := range f.Bans {
		if !ban.Key.IsValid() {
			return fmt.Errorf("ratelimit: load bans from %s: ban %d has no key", j.path, i)
		}
	}
	now := j.now()
	dropped := 0
	for _, ban := range f.Bans {
		if now.Before(ban.Until) {
			j.put(ban)
		} else {
			dropped++
		}
	}
	if dropped > 0 {
		j.dirty.Store(true) // rewrite without them at the next save
	}
	return nil
}

func (e *strikeEntry) links() *lruLinks[strikeEntry] { return &e.lruLinks }
