package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

// Lock timing: a lock lives lockTTL unless its holder refreshes it, which
// it does every lockRefresh; a waiter tries again every lockPoll.
// (certmagic's FileStorage: refreshed every 5 s, stale after 10 s.)
const (
	lockTTL     = 10 * time.Second
	lockRefresh = 3 * time.Second
	lockPoll    = 250 * time.Millisecond
)

// Storage is a certmagic.Storage in Redis, for ACME accounts,
// certificates, ARI data, challenge tokens and locks shared by every
// instance, with a local copy: every value written or read is also kept
// in a certmagic.FileStorage on this instance's disk, and a read that
// cannot reach Redis is answered from that copy, so an instance restarts
// and serves its certificates while Redis is down. Redis is the
// authority: a key Redis does not have does not exist, whatever the copy
// holds. Get one from [Node.Storage].
//
// Keys: <prefix>cm:k:<key> is a hash (v: the value, t: the time written,
// unix ms); the sorted set <prefix>cm:index lists every key (for List);
// <prefix>cm:lock:<name> is a lock, held by github.com/bsm/redislock with
// the holder's instance name after its random token.
type Storage struct {
	n     *Node
	local *certmagic.FileStorage
	locks *redislock.Client
	// ttl and refresh are lockTTL and lockRefresh (shorter in tests).
	ttl, refresh time.Duration

	mu   sync.Mutex
	held map[string]*heldLock
}

type heldLock struct {
	l    *redislock.Lock
	stop chan struct{}
	done chan struct{}
}

// Storage returns a Storage whose local copy is in dir.
func (n *Node) Storage(dir string) *Storage {
	return &Storage{n: n, local: &certmagic.FileStorage{Path: dir}, locks: redislock.New(n.rdb), ttl: lockTTL, refresh: lockRefresh, held: map[string]*heldLock{}}
}

func (s *Storage) valueKey(key string) string { return s.n.key("cm", "k", key) }
func (s *Storage) indexKey() string           { return s.n.key("cm", "index") }
func (s *Storage) lockKey(name string) string { return s.n.key("cm", "lock", name) }

// op bounds a storage round trip and records it.
func (s *Storage) op(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	s.n.metrics.observe(opStorage, start, err)
	return err
}

// Store writes value to Redis, then to the local copy. It fails when
// Redis does: a certificate no other instance can see is not stored.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	err := s.op(ctx, func(ctx context.Context) error {
		pipe := s.n.rdb.TxPipeline()
		pipe.HSet(ctx, s.valueKey(key), "v", value, "t", strconv.FormatInt(s.n.now().UnixMilli(), 10))
		pipe.ZAdd(ctx, s.indexKey(), redis.Z{Member: key})
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: store %s: %w", key, err)
	}
	s.keepLocal(ctx, key, value)
	return nil
}

// keepLocal writes the local copy of key; a failure is logged, not
// returned (Redis has the value).
func (s *Storage) keepLocal(ctx context.Context, key string, value []byte) {
	if err := s.local.Store(ctx, key, value); err != nil {
		s.n.warn("cluster: the local copy of the ACME storage could not be written", "key", key, "err", err)
	}
}

// Load reads key from Redis and refreshes the local copy; when Redis
// cannot be reached it reads the local copy.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	var missing bool
	err := s.op(ctx, func(ctx context.Context) error {
		var err error
		v, err = s.n.rdb.HGet(ctx, s.valueKey(key), "v").Bytes()
		missing = errors.Is(err, redis.Nil)
		return err
	})
	switch {
	case missing:
		return nil, fmt.Errorf("cluster: load %s: %w", key, fs.ErrNotExist)
	case err != nil:
		lv, lerr := s.local.Load(ctx, key)
		if lerr != nil {
			return nil, fmt.Errorf("cluster: load %s: %w (and from the local copy: %w)", key, err, lerr)
		}
		s.n.warn("cluster: Redis unreachable; ACME storage read from the local copy", "err", err)
		return lv, nil
	}
	if lv, lerr := s.local.Load(ctx, key); lerr != nil || !bytes.Equal(lv, v) {
		s.keepLocal(ctx, key, v)
	}
	return v, nil
}

// children returns the keys under dir ("" for all), sorted.
func (s *Storage) children(ctx context.Context, dir string, limit int64) ([]string, error) {
	min, max := "-", "+"
	if dir != "" {
		min, max = "["+dir+"/", "("+dir+"/\xff"
	}
	return s.n.rdb.ZRangeByLex(ctx, s.indexKey(), &redis.ZRangeBy{Min: min, Max: max, Count: limit}).Result()
}

// Delete removes key, or every key under it when it is a directory, from
// Redis and from the local copy. A key that does not exist is no error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	err := s.op(ctx, func(ctx context.Context) error {
		keys, err := s.children(ctx, key, 0)
		if err != nil {
			return err
		}
		keys = append(keys, key)
		pipe := s.n.rdb.TxPipeline()
		for _, k := range keys {
			pipe.Del(ctx, s.valueKey(k))
		}
		members := make([]any, len(keys))
		for i, k := range keys {
			members[i] = k
		}
		pipe.ZRem(ctx, s.indexKey(), members...)
		_, err = pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: delete %s: %w", key, err)
	}
	if err := s.local.Delete(ctx, key); err != nil {
		s.n.warn("cluster: the local copy of the ACME storage could not be deleted", "key", key, "err", err)
	}
	return nil
}

// Exists reports whether key is a value or a directory; when Redis
// cannot be reached it asks the local copy.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	var found bool
	err := s.op(ctx, func(ctx context.Context) error {
		n, err := s.n.rdb.Exists(ctx, s.valueKey(key)).Result()
		if err != nil || n > 0 {
			found = n > 0
			return err
		}
		under, err := s.children(ctx, key, 1)
		found = len(under) > 0
		return err
	})
	if err != nil {
		return s.local.Exists(ctx, key)
	}
	return found
}

// List returns the keys under dir: the direct children (values and
// directories) or, when recursive, every value and directory below. A
// directory without keys is fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	var keys []string
	err := s.op(ctx, func(ctx context.Context) error {
		var err error
		keys, err = s.children(ctx, strings.TrimSuffix(dir, "/"), 0)
		return err
	})
	if err != nil {
		return s.local.List(ctx, dir, recursive)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("cluster: list %s: %w", dir, fs.ErrNotExist)
	}
	dir = strings.TrimSuffix(dir, "/")
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, dir+"/")
		if dir == "" {
			rest = k
		}
		parts := strings.Split(rest, "/")
		if !recursive {
			add(path.Join(dir, parts[0]))
			continue
		}
		for i := range parts {
			add(path.Join(dir, strings.Join(parts[:i+1], "/")))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a value (its size and time written) or a
// directory.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var vals []any
	var under []string
	err := s.op(ctx, func(ctx context.Context) error {
		var err error
		vals, err = s.n.rdb.HMGet(ctx, s.valueKey(key), "t").Result()
		if err != nil {
			return err
		}
		if vals[0] == nil {
			under, err = s.children(ctx, key, 1)
		}
		return err
	})
	if err != nil {
		return s.local.Stat(ctx, key)
	}
	if t, ok := vals[0].(string); ok {
		ms, _ := strconv.ParseInt(t, 10, 64)
		size, err := s.n.rdb.HStrLen(ctx, s.valueKey(key), "v").Result()
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("cluster: stat %s: %w", key, err)
		}
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(ms), Size: size, IsTerminal: true}, nil
	}
	if len(under) > 0 {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("cluster: stat %s: %w", key, fs.ErrNotExist)
}

// Lock takes the lock name, waiting while another instance (or another
// goroutine here) holds it, until ctx ends. The lock expires lockTTL
// after its holder stops refreshing it (a holder that died does not
// block the others); while held, a goroutine of the Storage refreshes it
// until Unlock. It fails at once when Redis cannot be reached: nothing
// that needs the lock (an order) should go on then.
func (s *Storage) Lock(ctx context.Context, name string) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		var l *redislock.Lock
		start := time.Now()
		err := func() error {
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			var err error
			l, err = s.locks.Obtain(octx, s.lockKey(name), s.ttl, &redislock.Options{Metadata: ":" + s.n.instance})
			return err
		}()
		if !errors.Is(err, redislock.ErrNotObtained) {
			s.n.metrics.observe(opLock, start, err)
		}
		switch {
		case err == nil:
			s.hold(name, l)
			return nil
		case !errors.Is(err, redislock.ErrNotObtained):
			return fmt.Errorf("cluster: lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// hold keeps l refreshed until Unlock.
func (s *Storage) hold(name string, l *redislock.Lock) {
	h := &heldLock{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go func() {
		defer close(h.done)
		t := time.NewTicker(s.refresh)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err := l.Refresh(ctx, s.ttl, nil)
			cancel()
			if err != nil {
				s.n.warn("cluster: a held ACME lock could not be refreshed; another instance may take it when it expires", "lock", name, "err", err)
			}
		}
	}()
}

// Unlock releases the lock name taken by Lock. A lock that expired
// meanwhile (and may be another's now) is left alone.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("cluster: unlock %s: not held here", name)
	}
	close(h.stop)
	<-h.done
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := h.l.Release(ctx)
	if errors.Is(err, redislock.ErrLockNotHeld) {
		s.n.warn("cluster: an ACME lock had expired before it was released", "lock", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: unlock %s: %w", name, err)
	}
	return nil
}

// Seed copies the local copy into Redis when Redis holds no ACME data at
// all: the first instance of a new cluster brings its certificates and
// account (no order is needed for names it already has), and a Redis that
// lost its data gets them back. Keys Redis has are never overwritten. It
// returns the number of keys copied.
func (s *Storage) Seed(ctx context.Context) (int, error) {
	var n int64
	if err := s.op(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.n.rdb.ZCard(ctx, s.indexKey()).Result()
		return err
	}); err != nil {
		return 0, fmt.Errorf("cluster: seed: %w", err)
	}
	if n > 0 {
		return 0, nil
	}
	keys, err := s.local.List(ctx, "", true)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: seed: %w", err)
	}
	copied := 0
	for _, k := range keys {
		if strings.HasPrefix(k, "locks/") || strings.Contains(k, "/challenge_tokens/") {
			continue
		}
		if info, err := s.local.Stat(ctx, k); err != nil || !info.IsTerminal {
			continue
		}
		v, err := s.local.Load(ctx, k)
		if err != nil {
			continue
		}
		var set bool
		if err := s.op(ctx, func(ctx context.Context) error {
			var err error
			set, err = s.n.rdb.HSetNX(ctx, s.valueKey(k), "v", v).Result()
			if err == nil && set {
				pipe := s.n.rdb.TxPipeline()
				pipe.HSet(ctx, s.valueKey(k), "t", strconv.FormatInt(s.n.now().UnixMilli(), 10))
				pipe.ZAdd(ctx, s.indexKey(), redis.Z{Member: k})
				_, err = pipe.Exec(ctx)
			}
			return err
		}); err != nil {
			return copied, fmt.Errorf("cluster: seed %s: %w", k, err)
		}
		if set {
			copied++
		}
	}
	return copied, nil
}

var (
	_ certmagic.Storage = (*Storage)(nil)
)
