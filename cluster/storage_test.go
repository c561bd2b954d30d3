package cluster

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestStorageLikeFileStorage: the same operations on the Redis storage
// and on certmagic's FileStorage (the reference) give the same answers.
func TestStorageLikeFileStorage(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", nil)
	ctx := context.Background()
	rs := n.Storage(t.TempDir())
	fsr := &certmagic.FileStorage{Path: t.TempDir()}
	for _, st := range []certmagic.Storage{rs, fsr} {
		for k, v := range map[string]string{
			"acme/ca/users/me/me.json":                  "account",
			"acme/ca/users/me/me.key":                   "key",
			"certificates/ca/a.example/a.example.crt":   "chain a",
			"certificates/ca/a.example/a.example.key":   "key a",
			"certificates/ca/b.example/b.example.crt":   "chain b",
			"acme/ca/challenge_tokens/a.example.json":   "token",
			"certificates/ca/a.example/a.example.json":  "meta",
			"certificates/ca2/c.example/c.example.crt":  "chain c",
			"certificates/ca2/c.example/c.example.json": "meta c",
		} {
			if err := st.Store(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Delete(ctx, "acme/ca/challenge_tokens/a.example.json"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "certificates/ca2"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "never/was"); err != nil {
			t.Errorf("%T: Delete of a missing key: %v", st, err)
		}
	}
	// (FileStorage keeps the directory of a deleted file, Redis has no
	// empty directories: compare where nothing was deleted.)
	for _, dir := range []string{"certificates", "certificates/ca", "acme/ca/users"} {
		for _, rec := range []bool{false, true} {
			got, gerr := rs.List(ctx, dir, rec)
			want, werr := fsr.List(ctx, dir, rec)
			if gerr != nil || werr != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("List(%q, %v) = %q, %v; FileStorage: %q, %v", dir, rec, got, gerr, want, werr)
			}
		}
	}
	if _, err := rs.List(ctx, "certificates/ca2", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a deleted directory: %v, want fs.ErrNotExist", err)
	}
	for _, k := range []string{"certificates/ca/a.example/a.example.crt", "certificates/ca", "certificates/ca2/c.example/c.example.crt", "certificates/ca2", "acme/ca/challenge_tokens/a.example.json", "nope"} {
		if got, want := rs.Exists(ctx, k), fsr.Exists(ctx, k); got != want {
			t.Errorf("Exists(%q) = %v, FileStorage %v", k, got, want)
		}
		gi, gerr := rs.Stat(ctx, k)
		wi, werr := fsr.Stat(ctx, k)
		if errors.Is(gerr, fs.ErrNotExist) != errors.Is(werr, fs.ErrNotExist) || gi.IsTerminal != wi.IsTerminal || (wi.IsTerminal && gi.Size != wi.Size) {
			t.Errorf("Stat(%q) = %+v, %v; FileStorage %+v, %v", k, gi, gerr, wi, werr)
		}
		gv, gerr := rs.Load(ctx, k)
		wv, werr := fsr.Load(ctx, k)
		if string(gv) != string(wv) || (gerr == nil) != (werr == nil) {
			t.Errorf("Load(%q) = %q, %v; FileStorage %q, %v", k, gv, gerr, wv, werr)
		}
	}
}

// TestStorageLocalCopyWhileRedisDown: with Redis gone, what was stored or
// read is still read from the local copy, also by a new Storage (an
// instance restarting), but locks and writes fail at once.
func TestStorageLocalCopyWhileRedisDown(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", nil)
	ctx := context.Background()
	dir := t.TempDir()
	s := n.Storage(dir)
	const k = "certificates/ca/a.example/a.example.crt"
	if err := s.Store(ctx, k, []byte("chain")); err != nil {
		t.Fatal(err)
	}
	// Written by another instance, read once here.
	other, _ := newNode(t, r, "b", nil)
	if err := other.Storage(t.TempDir()).Store(ctx, "certificates/ca/b.example/b.example.crt", []byte("chain b")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "certificates/ca/b.example/b.example.crt"); err != nil {
		t.Fatal(err)
	}
	r.stop()
	restarted, _ := newNode(t, r, "a", nil)
	s2 := restarted.Storage(dir)
	for _, key := range []string{k, "certificates/ca/b.example/b.example.crt"} {
		v, err := s2.Load(ctx, key)
		if err != nil || len(v) == 0 {
			t.Errorf("Load(%q) with Redis down: %q, %v; want the local copy", key, v, err)
		}
		if !s2.Exists(ctx, key) {
			t.Errorf("Exists(%q) with Redis down is false", key)
		}
	}
	if keys, err := s2.List(ctx, "certificates/ca", false); err != nil || len(keys) != 2 {
		t.Errorf("List with Redis down = %v, %v", keys, err)
	}
	start := time.Now()
	if err := s2.Lock(ctx, "issue_cert_a.example"); err == nil {
		t.Error("Lock succeeded with Redis down")
	}
	if err := s2.Store(ctx, "x", []byte("y")); err == nil {
		t.Error("Store succeeded with Redis down")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Lock and Store took %v to fail", d)
	}
}

// TestStorageLockExclusiveAndExpires: one holder at a time across
// instances; a holder that keeps running keeps its lock past the TTL
// (refreshed), and the lock of a holder that died (stopped refreshing
// without releasing) is taken over after the TTL.
func TestStorageLockExclusiveAndExpires(t *testing.T) {
	r := startRedis(t)
	a, _ := newNode(t, r, "a", nil)
	b, _ := newNode(t, r, "b", nil)
	sa, sb := a.Storage(t.TempDir()), b.Storage(t.TempDir())
	for _, s := range []*Storage{sa, sb} {
		s.ttl, s.refresh = 600*time.Millisecond, 150*time.Millisecond
	}
	ctx := context.Background()
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Lock(ctx, "issue_cert_x"); err != nil {
				t.Error(err)
				return
			}
			now := inside.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			time.Sleep(20 * time.Millisecond) // the critical section
			inside.Add(-1)
			if err := s.Unlock(ctx, "issue_cert_x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders at once, want 1", most.Load())
	}

	// Held across several TTLs: refreshed, so b waits.
	if err := sa.Lock(ctx, "renew"); err != nil {
		t.Fatal(err)
	}
	owner, err := r.client().Get(ctx, a.key("cm", "lock", "renew")).Result()
	if err != nil || len(owner) < 3 || owner[len(owner)-2:] != ":a" {
		t.Errorf("lock value %q, %v; want the token and \":a\"", owner, err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if err := sb.Lock(short, "renew"); err == nil {
		t.Fatal("b took a lock a holds and refreshes")
	}
	cancel()
	// a dies: its refresher stops, nothing is released.
	sa.mu.Lock()
	h := sa.held["renew"]
	sa.mu.Unlock()
	close(h.stop)
	<-h.done
	start := time.Now()
	if err := sb.Lock(ctx, "renew"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v to take over a dead holder's lock, TTL 600ms", d)
	}
	if err := sb.Unlock(ctx, "renew"); err != nil {
		t.Error(err)
	}
}

// TestStorageSeed: the first instance of a new cluster copies its local
// storage into an empty Redis (no re-order); once Redis has data nothing
// is copied again.
func TestStorageSeed(t *testing.T) {
	r := startRedis(t)
	n, _ := newNode(t, r, "a", nil)
	ctx := context.Background()
	dir := t.TempDir()
	fsr := &certmagic.FileStorage{Path: dir}
	for _, k := range []string{"certificates/ca/a.example/a.example.crt", "acme/ca/users/me/me.key", "acme/ca/challenge_tokens/a.example.json"} {
		if err := fsr.Store(ctx, k, []byte("v of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	s := n.Storage(dir)
	got, err := s.Seed(ctx)
	if err != nil || got != 2 {
		t.Fatalf("Seed = %d, %v; want 2 keys (no challenge token)", got, err)
	}
	if v, err := s.Load(ctx, "acme/ca/users/me/me.key"); err != nil || string(v) != "v of acme/ca/users/me/me.key" {
		t.Errorf("seeded key: %q, %v", v, err)
	}
	if got, err := n.Storage(t.TempDir()).Seed(ctx); got != 0 || err != nil {
		t.Errorf("second Seed = %d, %v; want nothing", got, err)
	}
}
