package ratelimit

import (
	"sync"
	"testing"
	"time"
)

// peerLog records what a jail shares.
type peerLog struct {
	mu       sync.Mutex
	bans     []Ban
	unbans   []Key
	strikes  []Key
	unbanned []time.Time
}

func (p *peerLog) Banned(b Ban) { p.mu.Lock(); p.bans = append(p.bans, b); p.mu.Unlock() }
func (p *peerLog) Unbanned(b Ban, at time.Time) {
	p.mu.Lock()
	p.unbans, p.unbanned = append(p.unbans, b.Key), append(p.unbanned, at)
	p.mu.Unlock()
}
func (p *peerLog) Struck(k Key, reason string, at time.Time) {
	p.mu.Lock()
	p.strikes = append(p.strikes, k)
	p.mu.Unlock()
}

// TestJailSharesItsDecisions: strikes, automatic bans, operator bans and
// unbans all reach the peers; changes applied from peers do not go back.
func TestJailSharesItsDecisions(t *testing.T) {
	p := &peerLog{}
	now := t0
	j := NewJail(JailOptions{MaxRetry: 3, Peers: p, Now: func() time.Time { return now }})
	k := key4(1)
	j.RecordAt(k, "429", t0)
	j.RecordAt(k, "429", t0)
	if !j.RecordAt(k, "429", t0) {
		t.Fatal("3 strikes did not ban")
	}
	if len(p.strikes) != 2 || len(p.bans) != 1 || p.bans[0].Key != k || p.bans[0].Reason != "429" {
		t.Fatalf("shared strikes %v, bans %+v; want the 2 strikes before the ban, then the ban", p.strikes, p.bans)
	}
	if err := j.Ban(key4(2), time.Hour, "admin"); err != nil {
		t.Fatal(err)
	}
	if found, _ := j.Unban(k); !found {
		t.Fatal("Unban did not find the ban")
	}
	if len(p.bans) != 2 || p.bans[1].Key != key4(2) || len(p.unbans) != 1 || p.unbans[0] != k {
		t.Fatalf("bans %+v, unbans %v; want the admin ban and the unban shared", p.bans, p.unbans)
	}
	// From peers: applied, not shared again.
	if !j.ApplyBan(Ban{Key: key4(3), Since: t0, Until: t0.Add(time.Hour), Reason: "429"}, "edge-2", t0) {
		t.Fatal("ApplyBan of a new ban changed nothing")
	}
	if !j.ApplyUnban(key4(2), t0.Add(time.Second), "edge-3") {
		t.Fatal("ApplyUnban did not lift the ban")
	}
	if len(p.bans) != 2 || len(p.unbans) != 1 {
		t.Errorf("changes from peers were shared back: bans %+v, unbans %v", p.bans, p.unbans)
	}
	if b, _ := j.BannedAt(key4(3), t0); !b {
		t.Error("the ban from a peer is not enforced")
	}
}

// TestJailApplyLastChangeWins: a ban or unban from a peer that is older
// than the jail's own ban on the key does not replace it (the change made
// last wins, whatever order the messages arrive in), an ended ban is not
// applied, and repeating a ban changes nothing.
func TestJailApplyLastChangeWins(t *testing.T) {
	var events []Event
	j := NewJail(JailOptions{OnEvent: func(e Event) { events = append(events, e) }})
	k := key4(7)
	newer := Ban{Key: k, Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Hour), Reason: "admin"}
	older := Ban{Key: k, Since: t0, Until: t0.Add(time.Hour), Reason: "429"}
	if !j.ApplyBan(newer, "a", t0.Add(time.Minute)) {
		t.Fatal("first ban not applied")
	}
	if j.ApplyBan(newer, "a", t0.Add(time.Minute)) {
		t.Error("the same ban again counted as a change")
	}
	if j.ApplyBan(older, "b", t0.Add(time.Minute)) {
		t.Error("an older ban replaced a newer one")
	}
	if j.ApplyUnban(k, t0.Add(30*time.Second), "b") {
		t.Error("an unban made before the ban lifted it")
	}
	if got := j.List(t0.Add(time.Minute)); len(got) != 1 || got[0] != newer {
		t.Fatalf("List = %+v, want only the newer ban", got)
	}
	if j.ApplyBan(Ban{Key: key4(8), Since: t0, Until: t0.Add(time.Second)}, "a", t0.Add(time.Second)) {
		t.Error("a ban that has ended was applied")
	}
	if !j.ApplyUnban(k, t0.Add(2*time.Minute), "c") {
		t.Error("a later unban did not lift the ban")
	}
	if len(events) != 2 || events[0].Origin != "a" || events[1].Kind != EventUnban || events[1].Origin != "c" {
		t.Errorf("events = %+v; want a ban from a and an unban from c", events)
	}
}

// TestJailSharedStrikes: strikes counted by the whole cluster ban a key
// that has fewer than MaxRetry strikes here.
func TestJailSharedStrikes(t *testing.T) {
	p := &peerLog{}
	j := NewJail(JailOptions{MaxRetry: 5, Peers: p})
	k := key4(4)
	j.RecordAt(k, "429", t0)
	if j.SharedStrikes(k, "429", 4, t0) {
		t.Fatal("4 strikes of 5 banned")
	}
	if !j.SharedStrikes(k, "429", 5, t0) {
		t.Fatal("5 strikes in the cluster did not ban")
	}
	if b, until := j.BannedAt(k, t0); !b || !until.Equal(t0.Add(DefaultBanTime)) {
		t.Errorf("BannedAt = %v %v, want banned for BanTime", b, until)
	}
	if len(p.bans) != 1 {
		t.Errorf("the ban was shared %d times, want once", len(p.bans))
	}
	if j.Tracked() != 0 {
		t.Errorf("Tracked = %d, want the banned key's strikes forgotten", j.Tracked())
	}
	if !j.SharedStrikes(k, "429", 9, t0) || len(p.bans) != 1 {
		t.Error("a banned key was banned again")
	}
}
