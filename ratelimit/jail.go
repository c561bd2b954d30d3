package ratelimit

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net/netip"
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
	// DefaultMaxBans bounds the bans a jail holds: about 16 MiB at most
	// (TestJailBytesPerBan: 158 bytes per ban), and far more than real
	// abuse fills in a ban time.
	DefaultMaxBans = 100_000
	// DefaultSweepInterval is how often Run drops expired bans and old
	// strikes.
	DefaultSweepInterval = 30 * time.Second
	// DefaultSaveInterval is the shortest time between two writes of the
	// bans file by Run: a burst of bans costs one write a second, not one
	// write (of every ban, with fsync) per ban.
	DefaultSaveInterval = time.Second
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
	// whose last strike is oldest is forgotten. 0 means 100,000.
	MaxTracked int
	// MaxBans bounds the bans held. A new ban that finds the jail full
	// drops the ban that ends soonest (an EventEvict, counted by
	// [Jail.Evictions]), so long operator bans outlast a flood of short
	// automatic ones; the new ban itself is always kept. 0 means
	// DefaultMaxBans (100,000).
	MaxBans int
	// Path is the JSON file bans are kept in (for example
	// /var/lib/gatehouse/bans.json); "" keeps bans in memory only.
	Path string
	// Now returns the current time for Ban, Unban, Load and Run; nil means
	// time.Now. RecordAt, BannedAt and List take the time as a parameter.
	Now func() time.Time
	// OnEvent, if set, is called for every ban, unban, expiry and eviction,
	// outside the jail's locks. It must not block for long.
	OnEvent func(Event)
	// Logger receives save errors from Run and one line per bad entry Load
	// skips; nil discards them.
	Logger *slog.Logger
	// SweepInterval is Run's period; 0 means DefaultSweepInterval.
	SweepInterval time.Duration
	// SaveInterval is the shortest time between two writes of Path by Run;
	// 0 means DefaultSaveInterval (1 s).
	SaveInterval time.Duration
	// Peers, when set, shares this jail's bans, unbans and strikes with
	// the other instances of a cluster (see [JailPeers]); nil: the jail
	// is on its own.
	Peers JailPeers
}

// Event kinds.
const (
	EventBan    = "ban"
	EventUnban  = "unban"
	EventExpire = "expire"
	// EventEvict is a ban dropped before its end to keep MaxBans.
	EventEvict = "evict"
)

// Event reports a change to the jail, for logging and metrics.
type Event struct {
	Kind    string    // EventBan, EventUnban, EventExpire or EventEvict
	Key     Key       // the client
	Reason  string    // why the ban was set (for all kinds)
	At      time.Time // when it happened
	Until   time.Time // end of the ban
	Strikes int       // strikes that caused an automatic ban (0 for Ban)
	// Origin is the instance that made the change when it came from a
	// peer ([Jail.ApplyBan], [Jail.ApplyUnban]); "" for this jail's own.
	Origin string
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
// Persistence: with Path set, changes are written by [Jail.Run], at most
// once per SaveInterval however many bans arrive, and once more when Run
// ends; while no Run is active [Jail.Ban] and [Jail.Unban] write the file
// themselves before they return. See jailfile.go for the file and
// [Jail.Load] for how a damaged file is read.
type Jail struct {
	maxRetry   int
	findTime   time.Duration
	banTime    time.Duration
	maxTracked int
	maxBans    int
	path       string
	now        func() time.Time
	onEvent    func(Event)
	peers      JailPeers
	log        *slog.Logger
	sweepEvery time.Duration
	saveEvery  time.Duration

	seed      uint64
	nbans     atomic.Int64 // entries in bans (including ended ones not yet swept)
	bans      [16]banShard
	lens      [2]banLengths // [0] IPv4, [1] IPv6
	evictions atomic.Uint64

	banMu sync.Mutex // serialises changes to bans, lens and byEnd
	byEnd banHeap    // every entry of bans, the soonest to end first

	strikeMu  sync.Mutex
	strikes   map[Key]*strikeEntry
	strikeLRU lruList[strikeEntry, *strikeEntry] // by last strike: front is the newest

	saveMu    sync.Mutex // serialises file writes; guards keep and blocked
	keep      []byte     // a damaged file as Load read it, still to be copied aside
	blocked   error      // the file could be neither read nor moved aside: do not overwrite it
	dirty     atomic.Bool
	running   atomic.Bool   // Run is active and will write changes
	kick      chan struct{} // wakes Run to save; buffered 1
	writeFile func(path string, b []byte) error
}

// banEntry is one ban in a shard's map and in byEnd. Ban is written under
// banMu and the shard's lock, and read under either; pos under banMu.
type banEntry struct {
	Ban
	pos int
}

type banShard struct {
	mu sync.RWMutex
	m  map[Key]*banEntry
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
		maxBans:    cmp.Or(max(o.MaxBans, 0), DefaultMaxBans),
		path:       o.Path,
		now:        o.Now,
		onEvent:    o.OnEvent,
		peers:      o.Peers,
		log:        o.Logger,
		sweepEvery: cmp.Or(max(o.SweepInterval, 0), DefaultSweepInterval),
		saveEvery:  cmp.Or(max(o.SaveInterval, 0), DefaultSaveInterval),
		seed:       rand.Uint64(),
		strikes:    make(map[Key]*strikeEntry),
		kick:       make(chan struct{}, 1),
		writeFile:  writeFileAtomic,
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	for i := range j.bans {
		j.bans[i].m = make(map[Key]*banEntry)
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
			if e := s.m[c]; e != nil && now.Before(e.Until) && (!found || e.Until.After(best.Until)) {
				best, found = e.Ban, true
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
		if j.peers != nil {
			j.peers.Struck(k, reason, now)
		}
		return false
	}
	j.banFor(k, reason, strikes, now)
	return true
}

// banFor bans k for BanTime from now for collecting strikes, and shares
// the ban.
func (j *Jail) banFor(k Key, reason string, strikes int, now time.Time) {
	b := Ban{Key: k, Since: now, Until: now.Add(j.banTime), Reason: reason}
	j.add(b, now)
	j.markDirty()
	j.emit(Event{Kind: EventBan, Key: k, Reason: reason, At: now, Until: b.Until, Strikes: strikes})
	if j.peers != nil {
		j.peers.Banned(b)
	}
}

// add puts b in the jail, replacing a ban on the same key, and emits the
// evictions (and expiries found on the way) that made room for it.
func (j *Jail) add(b Ban, now time.Time) {
	j.banMu.Lock()
	dropped := j.addLocked(b, now, nil)
	j.banMu.Unlock()
	for _, e := range dropped {
		j.emit(e)
	}
}

// addLocked is add with banMu held; it appends the events to emit to
// dropped.
func (j *Jail) addLocked(b Ban, now time.Time, dropped []Event) []Event {
	s := j.shard(b.Key)
	if e := s.m[b.Key]; e != nil { // writers hold banMu: no lock needed to read
		s.mu.Lock()
		e.Ban = b
		s.mu.Unlock()
		heap.Fix(&j.byEnd, e.pos)
		return dropped
	}
	for len(j.byEnd) >= j.maxBans {
		e := j.byEnd[0]
		j.removeLocked(e)
		ev := Event{Kind: EventEvict, Key: e.Key, Reason: e.Reason, At: now, Until: e.Until}
		if !now.Before(e.Until) {
			ev.Kind = EventExpire
		} else {
			j.evictions.Add(1)
		}
		dropped = append(dropped, ev)
	}
	e := &banEntry{Ban: b}
	j.lengthsOf(b.Key).add(b.Key.Bits())
	s.mu.Lock()
	s.m[b.Key] = e
	s.mu.Unlock()
	j.nbans.Add(1)
	heap.Push(&j.byEnd, e)
	return dropped
}

// removeLocked takes e out of the jail; banMu must be held.
func (j *Jail) removeLocked(e *banEntry) {
	heap.Remove(&j.byEnd, e.pos)
	s := j.shard(e.Key)
	s.mu.Lock()
	delete(s.m, e.Key)
	s.mu.Unlock()
	j.nbans.Add(-1)
	j.lengthsOf(e.Key).remove(e.Key.Bits())
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

// Len returns the number of bans held, including ended ones that the next
// sweep drops.
func (j *Jail) Len() int { return int(j.nbans.Load()) }

// Evictions returns the number of bans dropped before their end because
// the jail held MaxBans.
func (j *Jail) Evictions() uint64 { return j.evictions.Load() }

// Ban bans k (an address key or any prefix) for d from now (an operator's
// ban; d ≤ 0 means BanTime), replacing any ban on k, and has it saved:
// by Run within SaveInterval while Run is active, before returning
// otherwise.
func (j *Jail) Ban(k Key, d time.Duration, reason string) error {
	if !k.IsValid() {
		return errors.New("ratelimit: ban of the zero Key")
	}
	if d <= 0 {
		d = j.banTime
	}
	now := j.now()
	b := Ban{Key: k, Since: now, Until: now.Add(d), Reason: reason}
	j.add(b, now)
	j.strikeMu.Lock()
	if e := j.strikes[k]; e != nil {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	j.emit(Event{Kind: EventBan, Key: k, Reason: reason, At: now, Until: b.Until})
	if j.peers != nil {
		j.peers.Banned(b)
	}
	return j.persist()
}

// Unban lifts the ban on exactly k (not on prefixes inside or around it),
// forgets k's strikes and has the change saved as Ban does. It reports
// whether k was banned.
func (j *Jail) Unban(k Key) (found bool, err error) {
	s := j.shard(k)
	var b Ban
	j.banMu.Lock()
	e := s.m[k]
	if e != nil {
		b = e.Ban
		j.removeLocked(e)
	}
	j.banMu.Unlock()
	j.strikeMu.Lock()
	if e := j.strikes[k]; e != nil {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
	if e == nil {
		return false, nil
	}
	now := j.now()
	j.emit(Event{Kind: EventUnban, Key: k, Reason: b.Reason, At: now, Until: b.Until})
	if j.peers != nil {
		j.peers.Unbanned(b, now)
	}
	return true, j.persist()
}

// List returns the bans in force at now, soonest to end first (IPv4
// before IPv6, then by address, among bans that end together).
func (j *Jail) List(now time.Time) []Ban {
	out := make([]Ban, 0, j.Len())
	for i := range j.bans {
		s := &j.bans[i]
		s.mu.RLock()
		for _, e := range s.m {
			if now.Before(e.Until) {
				out = append(out, e.Ban)
			}
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Ban) int {
		return cmp.Or(a.Until.Compare(b.Until), compareKeys(a.Key, b.Key))
	})
	return out
}

// compareKeys orders IPv4 keys before IPv6 ones, then by address, then
// shorter prefixes first. It does not allocate.
func compareKeys(a, b Key) int {
	if a.v4 != b.v4 {
		if a.v4 {
			return -1
		}
		return 1
	}
	return cmp.Or(bytes.Compare(a.a[:], b.a[:]), cmp.Compare(a.bits, b.bits))
}

// SweepAt drops bans that have ended at now (emitting EventExpire and
// marking the file dirty) and strike records with no strike inside FindTime.
// It returns the number of bans dropped.
func (j *Jail) SweepAt(now time.Time) int {
	var expired []Ban
	j.banMu.Lock()
	for len(j.byEnd) > 0 && !now.Before(j.byEnd[0].Until) {
		e := j.byEnd[0]
		j.removeLocked(e)
		expired = append(expired, e.Ban)
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

// banHeap orders bans by end, soonest first (container/heap).
type banHeap []*banEntry

func (h banHeap) Len() int           { return len(h) }
func (h banHeap) Less(a, b int) bool { return h[a].Until.Before(h[b].Until) }
func (h banHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].pos, h[b].pos = a, b
}
func (h *banHeap) Push(x any) {
	e := x.(*banEntry)
	e.pos = len(*h)
	*h = append(*h, e)
}
func (h *banHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

func (e *strikeEntry) links() *lruLinks[strikeEntry] { return &e.lruLinks }

var _ heap.Interface = (*banHeap)(nil)
