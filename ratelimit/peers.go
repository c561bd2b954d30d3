package ratelimit

import "time"

// JailPeers is how a [Jail] shares its decisions with the other instances
// of a cluster (package cluster implements it over Redis). The jail calls
// it outside its locks, on the request path: the methods must not block
// (they queue the work) and must keep what they cannot send yet, so that
// a change made while the shared store is unreachable reaches the others
// once it is back.
type JailPeers interface {
	// Banned shares a ban this jail set: automatic (strikes) or
	// [Jail.Ban].
	Banned(b Ban)
	// Unbanned shares that b, the ban on exactly b.Key, was lifted here
	// at at.
	Unbanned(b Ban, at time.Time)
	// Struck shares one strike against k at at. The peers count the
	// strikes of every instance and report the total back through
	// [Jail.SharedStrikes].
	Struck(k Key, reason string, at time.Time)
}

// ApplyBan puts b, a ban another instance (origin) set, in the jail,
// unless the jail holds a newer ban on the same key (later Since: the
// last change wins) or b has ended at now. It emits an [EventBan] with
// Origin set, has the bans file saved, and does not call Peers back. It
// reports whether the jail changed.
func (j *Jail) ApplyBan(b Ban, origin string, now time.Time) bool {
	if !b.Key.IsValid() || !now.Before(b.Until) {
		return false
	}
	s := j.shard(b.Key)
	j.banMu.Lock()
	if e := s.m[b.Key]; e != nil && (e.Since.After(b.Since) || e.Ban == b) {
		j.banMu.Unlock()
		return false
	}
	dropped := j.addLocked(b, now, nil)
	j.banMu.Unlock()
	for _, e := range dropped {
		j.emit(e)
	}
	j.forgetStrikes(b.Key)
	j.markDirty()
	j.emit(Event{Kind: EventBan, Key: b.Key, Reason: b.Reason, At: now, Until: b.Until, Origin: origin})
	return true
}

// ApplyUnban lifts the ban on exactly k because another instance
// (origin) lifted it at at, unless the jail's ban on k is newer (set
// after at). It emits an [EventUnban] with Origin set, has the file
// saved, and does not call Peers back. It reports whether a ban was
// lifted.
func (j *Jail) ApplyUnban(k Key, at time.Time, origin string) bool {
	s := j.shard(k)
	j.banMu.Lock()
	e := s.m[k]
	if e == nil || e.Since.After(at) {
		j.banMu.Unlock()
		return false
	}
	b := e.Ban
	j.removeLocked(e)
	j.banMu.Unlock()
	j.forgetStrikes(k)
	j.markDirty()
	j.emit(Event{Kind: EventUnban, Key: k, Reason: b.Reason, At: at, Until: b.Until, Origin: origin})
	return true
}

// SharedStrikes tells the jail that the instances of the cluster together
// counted n strikes against k within FindTime (this jail's own among
// them). When n reaches MaxRetry and k is not banned yet, k is banned for
// BanTime from now as [Jail.RecordAt] would, and the ban is shared. It
// reports whether k is banned.
func (j *Jail) SharedStrikes(k Key, reason string, n int, now time.Time) bool {
	if !k.IsValid() {
		return false
	}
	if b, _ := j.BannedAt(k, now); b {
		return true
	}
	if n < j.maxRetry {
		return false
	}
	j.forgetStrikes(k)
	j.banFor(k, reason, n, now)
	return true
}

// MaxRetry returns the number of strikes within FindTime that ban a key.
func (j *Jail) MaxRetry() int { return j.maxRetry }

// FindTime returns the window strikes are counted in.
func (j *Jail) FindTime() time.Duration { return j.findTime }

func (j *Jail) forgetStrikes(k Key) {
	j.strikeMu.Lock()
	if e := j.strikes[k]; e != nil {
		j.dropStrikes(e)
	}
	j.strikeMu.Unlock()
}
