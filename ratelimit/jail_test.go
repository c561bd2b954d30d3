package ratelimit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestJailBansAfterMaxRetryInFindTime(t *testing.T) {
	var events []Event
	j := NewJail(JailOptions{OnEvent: func(e Event) { events = append(events, e) }})
	k := key4(9)
	// The reference jail: 10 strikes within 600 s ban for 7200 s.
	for i := range 9 {
		if j.RecordAt(k, "429 login", t0.Add(time.Duration(i)*60*time.Second)) {
			t.Fatalf("banned after %d strikes, want 10", i+1)
		}
	}
	last := t0.Add(599 * time.Second)
	if !j.RecordAt(k, "429 login", last) {
		t.Fatal("10 strikes within 599 s did not ban")
	}
	banned, until := j.BannedAt(k, last)
	if !banned || !until.Equal(last.Add(7200*time.Second)) {
		t.Fatalf("BannedAt = %v, %v; want true until +7200s", banned, until)
	}
	if b, _ := j.BannedAt(k, until.Add(-time.Nanosecond)); !b {
		t.Error("not banned just before the ban ends")
	}
	if b, _ := j.BannedAt(k, until); b {
		t.Error("still banned when the ban ends")
	}
	if b, _ := j.BannedAt(key4(10), last); b {
		t.Error("another key is banned")
	}
	if len(events) != 1 || events[0].Kind != EventBan || events[0].Strikes != 10 || events[0].Reason != "429 login" {
		t.Errorf("events = %+v, want one ban with 10 strikes", events)
	}
	if j.Tracked() != 0 {
		t.Errorf("Tracked = %d after the ban, want 0", j.Tracked())
	}
	if got := j.List(last); len(got) != 1 || got[0].Key != k {
		t.Errorf("List = %+v, want the one ban", got)
	}
	// Sweeping after the end drops it with an expire event.
	if n := j.SweepAt(until); n != 1 || events[len(events)-1].Kind != EventExpire {
		t.Errorf("SweepAt = %d, last event %+v; want 1 and an expiry", n, events[len(events)-1])
	}
}

func TestJailStrikesOutsideWindowDoNotBan(t *testing.T) {
	j := NewJail(JailOptions{})
	k := key4(1)
	// One strike every 67 s: any 10 consecutive ones span 603 s > 600 s.
	for i := range 50 {
		if j.RecordAt(k, "x", t0.Add(time.Duration(i)*67*time.Second)) {
			t.Fatalf("banned at strike %d though no 10 fall within 600 s", i+1)
		}
	}
	// Old strikes are swept once FindTime has passed since the last.
	j.SweepAt(t0.Add(49*67*time.Second + 599*time.Second))
	if j.Tracked() != 1 {
		t.Errorf("Tracked = %d before FindTime passed, want 1", j.Tracked())
	}
	j.SweepAt(t0.Add(49*67*time.Second + 600*time.Second))
	if j.Tracked() != 0 {
		t.Errorf("Tracked = %d after FindTime, want 0", j.Tracked())
	}
}

func TestJailMaxTrackedBound(t *testing.T) {
	j := NewJail(JailOptions{MaxTracked: 100, MaxRetry: 3})
	for i := range 1000 {
		j.RecordAt(key4(i), "x", t0)
	}
	if j.Tracked() != 100 {
		t.Fatalf("Tracked = %d, want 100", j.Tracked())
	}
	// The newest keys are the ones kept.
	j.RecordAt(key4(999), "x", t0)
	if !j.RecordAt(key4(999), "x", t0) {
		t.Error("key 999 lost its strikes, want the newest keys kept")
	}
	if j.RecordAt(key4(0), "x", t0) {
		t.Error("key 0 kept its strikes, want it evicted")
	}
}

func TestJailPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bans.json")
	now := t0
	clock := func() time.Time { return now }
	j := NewJail(JailOptions{Path: path, Now: clock})
	long, short := key4(1), KeyOf(mustAddr("2001:db8:1:2::3"), 64)
	if err := j.Ban(long, 2*time.Hour, "manual"); err != nil {
		t.Fatal(err)
	}
	if err := j.Ban(short, time.Minute, "manual"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".bans.json.tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	// Restart one hour later: the one-minute ban is gone, the other kept.
	now = t0.Add(time.Hour)
	j2 := NewJail(JailOptions{Path: path, Now: clock})
	if err := j2.Load(); err != nil {
		t.Fatal(err)
	}
	if b, until := j2.BannedAt(long, now); !b || !until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("long ban after load: %v until %v, want banned until t0+2h", b, until)
	}
	if b, _ := j2.BannedAt(short, t0); b {
		t.Error("expired ban was loaded")
	}
	if got := j2.List(now); len(got) != 1 || got[0].Reason != "manual" {
		t.Errorf("List = %+v, want one manual ban", got)
	}

	// Unban persists too.
	if found, err := j2.Unban(long); !found || err != nil {
		t.Fatalf("Unban = %v, %v", found, err)
	}
	j3 := NewJail(JailOptions{Path: path, Now: clock})
	if err := j3.Load(); err != nil {
		t.Fatal(err)
	}
	if got := j3.List(now); len(got) != 0 {
		t.Errorf("after unban and reload: %+v, want none", got)
	}

	// A missing file is an empty jail.
	j4 := NewJail(JailOptions{Path: filepath.Join(dir, "none.json")})
	if err := j4.Load(); err != nil {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestJailCorruptFile(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"garbage":  "{not json",
		"version":  `{"version": 9, "bans": []}`,
		"badkey":   `{"version": 1, "bans": [{"key": "300.1.1.1/32", "until": "2030-01-01T00:00:00Z"}]}`,
		"nokey":    `{"version": 1, "bans": [{"until": "2030-01-01T00:00:00Z"}]}`,
		"truncate": `{"version": 1, "bans": [{"key": "192.0.2.1/32", "until": "20`,
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		j := NewJail(JailOptions{Path: path, Now: func() time.Time { return t0 }})
		err := j.Load()
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Load error = %v, want one naming %s", name, err, path)
		}
		if len(j.List(t0)) != 0 {
			t.Errorf("%s: bans loaded from a corrupt file", name)
		}
	}
}

// TestJailRunSavesCoalesced: Run saves a burst of new bans to the file in
// the background. It runs on synctest's fake clock: Run's wake-ups (a
// kick, or a timer should saves be batched) happen as soon as every
// goroutine waits, so no real time is spent or guessed.
func TestJailRunSavesCoalesced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.json")
	synctest.Test(t, func(t *testing.T) {
		j := NewJail(JailOptions{Path: path, MaxRetry: 1, SweepInterval: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var runErr error
		wg.Add(1)
		go func() { defer wg.Done(); runErr = j.Run(ctx) }()
		now := time.Now()
		for i := range 50 {
			j.RecordAt(key4(i), "x", now)
		}
		saved := func() bool {
			j2 := NewJail(JailOptions{Path: path})
			return j2.Load() == nil && len(j2.List(now)) == 50
		}
		// Let Run do what it does when everything else waits; step the fake
		// clock a minute at a time should it wait for a timer first.
		for waited := time.Duration(0); ; waited += time.Minute {
			synctest.Wait()
			if saved() {
				break
			}
			if waited >= time.Hour {
				t.Fatal("Run did not save 50 bans within an hour of fake time")
			}
			time.Sleep(time.Minute)
		}
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Run = %v", runErr)
		}
	})
}

func TestBannedAtAllocs(t *testing.T) {
	j := NewJail(JailOptions{})
	if err := j.Ban(key4(1), time.Hour, "x"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, k := range []Key{key4(1), key4(2)} {
		if n := testing.AllocsPerRun(1000, func() { j.BannedAt(k, now) }); n != 0 {
			t.Errorf("BannedAt(%v) allocates %v times, want 0", k, n)
		}
	}
}

func BenchmarkBannedAt(b *testing.B) {
	j := NewJail(JailOptions{})
	for i := range 1000 {
		if err := j.Ban(key4(i), time.Hour, "x"); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			j.BannedAt(key4(i%2000), now) // half banned, half not
			i++
		}
	})
}
