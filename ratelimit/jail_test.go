package ratelimit

import (
	"context"
	"net/netip"
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

// TestJailCorruptFile: files with nothing usable load no ban, give an
// error naming the file, and are copied aside.
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
		// The file as read is kept before any save can overwrite it.
		if b, err := os.ReadFile(path + ".bad-20260102T030405Z"); err != nil || string(b) != body {
			t.Errorf("%s: copy of the damaged file: %q, %v; want the file as read", name, b, err)
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
	for _, p := range []string{"192.0.2.1/32", "198.51.100.0/24", "2001:db8:aa::/48", "2001:db8:bb::/64", "2001:db8::5/128"} {
		if err := j.Ban(mustKey(t, p), time.Hour, "x"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, k := range []Key{key4(1), key4(2)} {
		if n := testing.AllocsPerRun(1000, func() { j.BannedAt(k, now) }); n != 0 {
			t.Errorf("BannedAt(%v) allocates %v times, want 0", k, n)
		}
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "198.51.100.9", "2001:db8:aa::1", "2001:db8::5", "2001:db8::6"} {
		addr := mustAddr(a)
		if n := testing.AllocsPerRun(1000, func() { j.BannedAt(AddrKey(addr), now) }); n != 0 {
			t.Errorf("BannedAt(AddrKey(%v)) allocates %v times, want 0", a, n)
		}
	}
}

func mustKey(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseKey(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJailPrefixBans: a ban on a prefix of any length refuses every
// address inside it and none outside, asked as both the accept and the
// request path ask (BannedAt with AddrKey of the client's address) and,
// for bans no longer than the key, with a client's /64 key (KeyOf).
func TestJailPrefixBans(t *testing.T) {
	tests := []struct {
		ban     string
		in, out []string
	}{
		{"2001:db8:aa::/48",
			[]string{"2001:db8:aa::", "2001:db8:aa:7:1::5", "2001:db8:aa:ffff:ffff:ffff:ffff:ffff"},
			[]string{"2001:db8:a9:ffff:ffff:ffff:ffff:ffff", "2001:db8:ab::", "32.1.13.184"}},
		{"2001:db8:aa:bb::/64",
			[]string{"2001:db8:aa:bb::", "2001:db8:aa:bb:ffff:ffff:ffff:ffff"},
			[]string{"2001:db8:aa:ba:ffff:ffff:ffff:ffff", "2001:db8:aa:bc::"}},
		{"2001:db8:aa:bb:cc:dd::/96",
			[]string{"2001:db8:aa:bb:cc:dd::", "2001:db8:aa:bb:cc:dd:ffff:ffff"},
			[]string{"2001:db8:aa:bb:cc:dc:ffff:ffff", "2001:db8:aa:bb:cc:de::"}},
		{"2001:db8:aa:bb::5/128",
			[]string{"2001:db8:aa:bb::5"},
			[]string{"2001:db8:aa:bb::4", "2001:db8:aa:bb::6"}},
		{"198.51.100.0/24",
			[]string{"198.51.100.0", "198.51.100.255", "::ffff:198.51.100.9"},
			[]string{"198.51.99.255", "198.51.101.0", "::c633:6409"}},
		{"198.51.100.7/32",
			[]string{"198.51.100.7"},
			[]string{"198.51.100.6", "198.51.100.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.ban, func(t *testing.T) {
			j := NewJail(JailOptions{Now: func() time.Time { return t0 }})
			k := mustKey(t, tt.ban)
			// Another ban of another length in the same family must not
			// hide or widen this one.
			other := "203.0.113.0/28"
			if !k.Is4() {
				other = "2001:db8:ff::/56"
			}
			for _, b := range []Key{k, mustKey(t, other)} {
				if err := j.Ban(b, time.Hour, "x"); err != nil {
					t.Fatal(err)
				}
			}
			end := t0.Add(time.Hour)
			for _, s := range tt.in {
				a := mustAddr(s)
				if b, until := j.BannedAt(AddrKey(a), t0); !b || !until.Equal(end) {
					t.Errorf("BannedAt(AddrKey(%s)) = %v, %v; want banned until %v", s, b, until, end)
				}
				if b, _ := j.BannedAt(AddrKey(a), end); b {
					t.Errorf("BannedAt(AddrKey(%s)) at the end of the ban = true", s)
				}
				if got, ok := j.BanOf(a, t0); !ok || got.Key != k {
					t.Errorf("BanOf(%s) = %v, %v; want the ban of %v", s, got.Key, ok, k)
				}
				if key := KeyOf(a, 64); key.Bits() >= k.Bits() {
					if b, _ := j.BannedAt(key, t0); !b {
						t.Errorf("BannedAt(%v) = false, want true (inside %v)", key, k)
					}
				}
			}
			for _, s := range tt.out {
				a := mustAddr(s)
				if b, _ := j.BannedAt(AddrKey(a), t0); b {
					t.Errorf("BannedAt(AddrKey(%s)) = true, want false (outside %v)", s, k)
				}
				if b, _ := j.BannedAt(KeyOf(a, 64), t0); b {
					t.Errorf("BannedAt(%v) = true, want false (outside %v)", KeyOf(a, 64), k)
				}
			}
			// Lifting the ban frees them all.
			if found, err := j.Unban(k); !found || err != nil {
				t.Fatalf("Unban = %v, %v", found, err)
			}
			for _, s := range tt.in {
				if b, _ := j.BannedAt(AddrKey(mustAddr(s)), t0); b {
					t.Errorf("BannedAt(AddrKey(%s)) after Unban = true", s)
				}
			}
		})
	}
}

// TestJailNestedBans: an address inside two bans is banned until the later
// end; lifting the inner one leaves the outer one in force.
func TestJailNestedBans(t *testing.T) {
	j := NewJail(JailOptions{Now: func() time.Time { return t0 }})
	outer, inner := mustKey(t, "2001:db8::/32"), mustKey(t, "2001:db8::5/128")
	j.Ban(outer, time.Hour, "outer")
	j.Ban(inner, 2*time.Hour, "inner")
	a := mustAddr("2001:db8::5")
	if b, until := j.BannedAt(AddrKey(a), t0); !b || !until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("BannedAt = %v, %v; want until the inner ban's end", b, until)
	}
	if b, _ := j.BannedAt(AddrKey(a), t0.Add(90*time.Minute)); !b {
		t.Error("not banned after the outer ban ended while the inner one holds")
	}
	j.Unban(inner)
	if got, ok := j.BanOf(a, t0); !ok || got.Key != outer {
		t.Errorf("BanOf after lifting the inner ban = %v, %v; want the outer ban", got.Key, ok)
	}
	// A key inside a banned prefix collects no strikes: it is banned.
	if !j.RecordAt(KeyOf(a, 64), "x", t0) {
		t.Error("RecordAt of a key inside a banned /32 = false, want true (already banned)")
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

// BenchmarkBannedAtAddrKey is the request path's check with bans of five
// prefix lengths in the client's family (IPv6 /48, /56, /64, /96, /128),
// for addresses half of which are banned.
func BenchmarkBannedAtAddrKey(b *testing.B) {
	j := NewJail(JailOptions{})
	for i := range 1000 {
		bits := []int{48, 56, 64, 96, 128}[i%5]
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 1})
		if err := j.Ban(KeyOf(a, bits), time.Hour, "x"); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 1})
			j.BannedAt(AddrKey(a), now)
			i = (i + 1) % 2000
		}
	})
}

// TestJailConcurrentChurn: while other goroutines add and lift bans of
// many prefix lengths, a ban that stays in force is seen by every lookup
// (run with -race for the locking).
func TestJailConcurrentChurn(t *testing.T) {
	j := NewJail(JailOptions{MaxBans: 50, Now: func() time.Time { return t0 }})
	fixed := mustKey(t, "2001:db8:77::/48")
	if err := j.Ban(fixed, 100*time.Hour, "fixed"); err != nil {
		t.Fatal(err)
	}
	a := mustAddr("2001:db8:77::1")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				bits := 40 + (i+g)%89 // /40 … /128, never /48
				if bits == 48 {
					bits = 49
				}
				k := KeyOf(mustAddr("2001:db8:1::1"), bits)
				j.Ban(k, time.Hour, "churn") // an hour: evicted before the fixed ban
				j.Unban(k)
			}
		}()
	}
	for range 20000 {
		if b, _ := j.BannedAt(AddrKey(a), t0); !b {
			t.Error("the fixed ban was not seen during churn")
			break
		}
	}
	close(stop)
	wg.Wait()
}
