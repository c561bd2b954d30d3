package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestJailLoadKeepsGoodEntries: a bans file with bad entries among good
// ones loads every good one, logs each bad one with its line and what was
// wrong, returns an error naming the file, and keeps a byte-for-byte copy
// of the file as read before anything overwrites it.
func TestJailLoadKeepsGoodEntries(t *testing.T) {
	files := map[string]struct {
		body     string
		good     []string // keys loaded
		badLines []int    // lines logged as bad, one per bad entry
	}{
		// The layout Save writes: one ban per line.
		"one per line": {
			body: `{"version":1,"bans":[
{"key":"192.0.2.1/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z","reason":"a"},
{"key":"300.1.1.1/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z","reason":"bad key"},
{"key":"192.0.2.3/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z","reason":"c"},
{"key":"192.0.2.4/32","since":"2026-01-01T00:00:00Z","reason":"no until"},
{"key":"192.0.2.5/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z,"reason":"broken quote"},
{"key":"2001:db8:1::/48","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z","reason":"f"},
{"key":"192.0.2.7/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z","reason":"g"}
]}
`,
			good:     []string{"192.0.2.1/32", "192.0.2.3/32", "2001:db8:1::/48", "192.0.2.7/32"},
			badLines: []int{3, 5, 6},
		},
		// The indented layout of earlier versions, with one bad key.
		"indented": {
			body: `{
  "version": 1,
  "bans": [
    {
      "key": "192.0.2.1/32",
      "since": "2026-01-01T00:00:00Z",
      "until": "2030-01-01T00:00:00Z"
    },
    {
      "key": "192.0.2.999/32",
      "since": "2026-01-01T00:00:00Z",
      "until": "2030-01-01T00:00:00Z"
    },
    {
      "key": "192.0.2.3/32",
      "since": "2026-01-01T00:00:00Z",
      "until": "2030-01-01T00:00:00Z"
    }
  ]
}
`,
			good:     []string{"192.0.2.1/32", "192.0.2.3/32"},
			badLines: []int{9},
		},
		// Cut short mid-entry (a full disk, a bad copy): what came before
		// the cut is loaded.
		"truncated": {
			body: `{"version":1,"bans":[
{"key":"192.0.2.1/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z"},
{"key":"192.0.2.2/32","since":"2026-01-01T00:00:00Z","until":"2030-01-01T00:00:00Z"},
{"key":"192.0.2.3/32","since":"2026-01-01T00:00:00Z","unt`,
			good:     []string{"192.0.2.1/32", "192.0.2.2/32"},
			badLines: []int{4},
		},
	}
	for name, tt := range files {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bans.json")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			j := NewJail(JailOptions{Path: path, Now: func() time.Time { return t0 }, Logger: log})
			err := j.Load()
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Load error = %v, want one naming %s", err, path)
			}
			var got []string
			for _, b := range j.List(t0) {
				got = append(got, b.Key.String())
			}
			if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values(tt.good))) {
				t.Errorf("loaded %q, want %q", got, tt.good)
			}
			for _, l := range tt.badLines {
				if at := fmt.Sprintf("at=%s:%d ", path, l); !strings.Contains(logs.String(), at) {
					t.Errorf("log does not name %s:%d:\n%s", path, l, logs.String())
				}
			}
			if n := strings.Count(logs.String(), "bad entry skipped"); n != len(tt.badLines) {
				t.Errorf("%d bad entries logged, want %d:\n%s", n, len(tt.badLines), logs.String())
			}
			copies, _ := filepath.Glob(path + ".bad-*")
			if len(copies) != 1 {
				t.Fatalf("copies of the damaged file: %q, want one %s.bad-<time>", copies, path)
			}
			if err == nil || !strings.Contains(err.Error(), copies[0]) {
				t.Errorf("Load error = %v, want it to name the copy %s", err, copies[0])
			}
			// The next save rewrites the file with the good bans; the copy
			// stays as it was read.
			if err := j.Save(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(copies[0]); string(b) != tt.body {
				t.Errorf("copy holds %q, want the file as read", b)
			}
			j2 := NewJail(JailOptions{Path: path, Now: func() time.Time { return t0 }})
			if err := j2.Load(); err != nil {
				t.Errorf("Load of the rewritten file: %v", err)
			}
			if n := len(j2.List(t0)); n != len(tt.good) {
				t.Errorf("rewritten file holds %d bans, want %d", n, len(tt.good))
			}
		})
	}
}

// TestJailBansBoundedByDefault: bans cannot grow without bound: the
// default cap holds.
func TestJailBansBoundedByDefault(t *testing.T) {
	j := NewJail(JailOptions{Now: func() time.Time { return t0 }})
	const cap = 100_000
	for i := range cap + 10 {
		if err := j.Ban(key4(i), time.Hour, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(j.List(t0)); n != cap {
		t.Errorf("jail holds %d bans after %d, want the default cap %d", n, cap+10, cap)
	}
}

// TestJailMaxBansEvictsSoonestToEnd: a full jail makes room for a new ban
// by dropping the ban that ends soonest (an eviction, counted and
// reported), keeps the new ban whatever its length, and drops an ended ban
// as an expiry rather than an eviction.
func TestJailMaxBansEvictsSoonestToEnd(t *testing.T) {
	now := t0
	var events []Event
	j := NewJail(JailOptions{MaxBans: 3, MaxRetry: 1, BanTime: 2 * time.Hour,
		Now: func() time.Time { return now }, OnEvent: func(e Event) { events = append(events, e) }})
	a, b, c, d, e, f := key4(1), key4(2), key4(3), key4(4), key4(5), key4(6)
	j.Ban(a, 3*time.Hour, "a")
	j.Ban(b, 1*time.Hour, "b")
	j.Ban(c, 2*time.Hour+time.Minute, "c")
	kinds := func() (out []string) {
		for _, e := range events {
			if e.Kind != EventBan {
				out = append(out, e.Kind+" "+e.Key.String())
			}
		}
		events = nil
		return out
	}
	held := func() (out []string) {
		for _, b := range j.List(now) {
			out = append(out, b.Key.String())
		}
		return out
	}
	if got := kinds(); len(got) != 0 {
		t.Fatalf("events below the cap: %q", got)
	}
	// A short operator ban still goes in; b (ending soonest) goes out.
	j.Ban(d, 30*time.Minute, "d")
	if got := kinds(); !slices.Equal(got, []string{"evict " + b.String()}) {
		t.Errorf("events = %q, want b evicted", got)
	}
	if got := held(); !slices.Equal(got, []string{d.String(), c.String(), a.String()}) {
		t.Errorf("held %q, want d, c, a", got)
	}
	// An automatic ban (2 h) evicts d (30 min).
	if !j.RecordAt(e, "strike", now) {
		t.Fatal("RecordAt did not ban with MaxRetry 1")
	}
	if got := kinds(); !slices.Equal(got, []string{"evict " + d.String()}) {
		t.Errorf("events = %q, want d evicted", got)
	}
	// Replacing a ban takes no room.
	j.Ban(a, 5*time.Hour, "a again")
	if got := kinds(); len(got) != 0 {
		t.Errorf("replacing a ban: events %q, want none", got)
	}
	if j.Evictions() != 2 || j.Len() != 3 {
		t.Errorf("Evictions = %d, Len = %d; want 2 and 3", j.Evictions(), j.Len())
	}
	// Once e has ended (2 h), making room drops it as an expiry.
	now = t0.Add(2 * time.Hour)
	j.Ban(f, time.Hour, "f")
	if got := kinds(); !slices.Equal(got, []string{"expire " + e.String()}) {
		t.Errorf("events = %q, want e expired", got)
	}
	if j.Evictions() != 2 {
		t.Errorf("Evictions = %d after an expiry, want still 2", j.Evictions())
	}
}

// TestJailLoadOverCap: a file with more bans than MaxBans keeps the ones
// that end last and counts the others as evictions.
func TestJailLoadOverCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.json")
	src := NewJail(JailOptions{Path: path, Now: func() time.Time { return t0 }})
	for i := 1; i <= 5; i++ {
		if err := src.Ban(key4(i), time.Duration(i)*time.Hour, "x"); err != nil {
			t.Fatal(err)
		}
	}
	j := NewJail(JailOptions{Path: path, MaxBans: 3, Now: func() time.Time { return t0 }})
	if err := j.Load(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range j.List(t0) {
		got = append(got, b.Key.String())
	}
	want := []string{key4(3).String(), key4(4).String(), key4(5).String()}
	if !slices.Equal(got, want) || j.Evictions() != 2 {
		t.Errorf("loaded %q with %d evictions, want %q and 2", got, j.Evictions(), want)
	}
}

// TestJailBurstBoundedWrites: thousands of bans in a burst, operator's and
// automatic, cost at most two writes of the file (the first change at once,
// the rest SaveInterval later), and the file then holds them all.
func TestJailBurstBoundedWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bans.json")
		j := NewJail(JailOptions{Path: path, MaxRetry: 1, SweepInterval: time.Hour})
		var writes atomic.Int64
		j.writeFile = func(p string, b []byte) error {
			writes.Add(1)
			return writeFileAtomic(p, b)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- j.Run(ctx) }()
		synctest.Wait()
		for i := range 1000 {
			if err := j.Ban(key4(i), time.Hour, "burst"); err != nil {
				t.Fatal(err)
			}
			j.RecordAt(key4(1000+i), "strike", time.Now())
		}
		synctest.Wait() // Run has written once and waits out SaveInterval
		if n := writes.Load(); n != 1 {
			t.Errorf("%d writes during a burst of 2000 bans, want 1", n)
		}
		time.Sleep(DefaultSaveInterval)
		synctest.Wait()
		if n := writes.Load(); n < 1 || n > 2 {
			t.Errorf("%d writes for a burst of 2000 bans, want at most 2", n)
		}
		j2 := NewJail(JailOptions{Path: path})
		if err := j2.Load(); err != nil {
			t.Fatal(err)
		}
		if n := len(j2.List(time.Now())); n != 2000 {
			t.Errorf("file holds %d bans one SaveInterval after the burst, want 2000", n)
		}
		before := writes.Load()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if n := writes.Load(); n != before {
			t.Errorf("Run wrote %d more times at the end with nothing new, want 0", n-before)
		}
	})
}

// TestJailRunWritesEverythingAtEnd: what changed since Run's last write
// is written when Run ends (clean shutdown), and a ban made after Run has
// ended is written before Ban returns.
func TestJailRunWritesEverythingAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bans.json")
		// SaveInterval of a day: only the first change and the end write.
		j := NewJail(JailOptions{Path: path, MaxRetry: 1, SaveInterval: 24 * time.Hour})
		load := func() []string {
			t.Helper()
			j2 := NewJail(JailOptions{Path: path})
			if err := j2.Load(); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, b := range j2.List(time.Now()) {
				out = append(out, b.Key.String()+" "+b.Reason)
			}
			slices.Sort(out)
			return out
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- j.Run(ctx) }()
		synctest.Wait() // Run is waiting for changes
		j.Ban(key4(1), time.Hour, "first")
		synctest.Wait() // Run wrote it at once: no write before it
		first := []string{key4(1).String() + " first"}
		if got := load(); !slices.Equal(got, first) {
			t.Fatalf("after the first ban the file holds %q, want %q", got, first)
		}
		j.Ban(mustKey(t, "2001:db8::/48"), time.Hour, "prefix")
		j.RecordAt(key4(2), "strike", time.Now())
		j.Unban(key4(1))
		synctest.Wait() // the next write waits a day
		if got := load(); !slices.Equal(got, first) {
			t.Fatalf("within SaveInterval the file holds %q, want still %q", got, first)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		want := []string{"2001:db8::/48 prefix", key4(2).String() + " strike"}
		slices.Sort(want)
		if got := load(); !slices.Equal(got, want) {
			t.Errorf("after Run ended the file holds %q, want %q", got, want)
		}
		// Run is over: Ban writes the file itself.
		if err := j.Ban(key4(3), time.Hour, "late"); err != nil {
			t.Fatal(err)
		}
		want = append(want, key4(3).String()+" late")
		slices.Sort(want)
		if got := load(); !slices.Equal(got, want) {
			t.Errorf("after a ban once Run ended the file holds %q, want %q", got, want)
		}
	})
}

// TestJailUnreadableFileMovedAside: a bans file that cannot be read at
// all is renamed out of the way, not overwritten.
func TestJailUnreadableFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bans.json")
	if err := os.Mkdir(path, 0o700); err != nil { // read fails: is a directory
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inside"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := NewJail(JailOptions{Path: path, Now: func() time.Time { return t0 }})
	err := j.Load()
	aside := path + ".bad-20260102T030405Z"
	if err == nil || !strings.Contains(err.Error(), aside) {
		t.Errorf("Load = %v, want an error naming %s", err, aside)
	}
	if b, err := os.ReadFile(filepath.Join(aside, "inside")); err != nil || string(b) != "x" {
		t.Errorf("moved file: %q, %v", b, err)
	}
	if err := j.Ban(key4(1), time.Hour, "x"); err != nil {
		t.Errorf("Ban after the move: %v", err)
	}
}

// TestJailBytesPerBan measures what a full jail costs (the reason given
// for DefaultMaxBans): bans with a short reason, as RecordAt and the admin
// API set them.
func TestJailBytesPerBan(t *testing.T) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	j := NewJail(JailOptions{Now: func() time.Time { return t0 }})
	for i := range n {
		j.Ban(key4(i), time.Hour, "conn_limit")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(j.Len())
	t.Logf("jail: %.0f bytes per ban (%d bans)", per, j.Len())
	if per > 220 {
		t.Errorf("%.0f bytes per ban, want < 220 (DefaultMaxBans promises about 16 MiB)", per)
	}
	runtime.KeepAlive(j)
}
