package balancer

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want []string
	}{
		{"empty", Options{}, []string{"name: required", "servers: at least one"}},
		{"policy", Options{Name: "a", Policy: "wrr", Servers: servers(1)}, []string{`policy: unknown "wrr"`}},
		{"port", Options{Name: "a", Servers: []Server{{Host: "10.0.0.1"}}}, []string{"servers[0].port: must be 1..65535, got 0"}},
		{"host", Options{Name: "a", Servers: []Server{{Host: "a b", Port: 1}, {Port: 2}}}, []string{"servers[0].host:", "servers[1].host: required"}},
		{"weight", Options{Name: "a", Servers: []Server{{Host: "x", Port: 1, Weight: -1}}}, []string{"servers[0].weight: must be 0..10000, got -1"}},
		{"dup", Options{Name: "a", Servers: []Server{{Name: "x", Host: "h", Port: 1}, {Name: "x", Host: "g", Port: 1}}}, []string{`servers[1].name: "x" duplicates servers[0]`}},
		{"dup default name", Options{Name: "a", Servers: []Server{{Host: "h", Port: 1}, {Host: "h", Port: 1}}}, []string{`servers[1].name: "h:1" duplicates`}},
		{"fail_timeout", Options{Name: "a", MaxFails: 3, Servers: servers(1)}, []string{"fail_timeout: must be > 0 when max_fails > 0"}},
		{"negatives", Options{Name: "a", QueueSize: -1, QueueTimeout: -1, Rise: -1, Fall: -1, SlowStart: -1, ResolveInterval: -1, Servers: []Server{{Host: "h", Port: 1, MaxConns: -1}}},
			[]string{"queue_size", "queue_timeout", "rise", "fall", "slow_start", "resolve_interval", "servers[0].max_conns"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(NewRegistry(), c.o)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := New(nil, Options{Name: "a", Servers: servers(1)}); err == nil {
		t.Error("New(nil registry) succeeded")
	}
	p := mustNew(t, nil, Options{Servers: []Server{{Host: "::1", Port: 80}, {Host: "[::2]", Port: 80}}})
	if got := p.Backends()[0].Name(); got != "[::1]:80" {
		t.Errorf("default name = %q, want [::1]:80", got)
	}
	if got := p.Backends()[1].Addr(); got != "[::2]:80" {
		t.Errorf("Addr = %q, want [::2]:80", got)
	}
	if p.Policy() != PolicyRoundRobin {
		t.Errorf("Policy() = %q", p.Policy())
	}
}

// TestRoundRobinSmooth checks nginx's smooth sequence and exact shares.
func TestRoundRobinSmooth(t *testing.T) {
	p := mustNew(t, nil, Options{Servers: servers(5, 1, 1)})
	var seq []string
	for range 7 {
		b, _ := p.Pick(Key{})
		seq = append(seq, b.Name())
	}
	// nginx: weights {a=5,b=1,c=1} give a a b a c a a.
	want := []string{"s0", "s0", "s1", "s0", "s2", "s0", "s0"}
	if !slices.Equal(seq, want) {
		t.Errorf("sequence %v, want %v", seq, want)
	}
	got := pickCounts(t, p, 7000, Key{})
	if got["s0"] != 5000 || got["s1"] != 1000 || got["s2"] != 1000 {
		t.Errorf("counts %v, want exactly 5000/1000/1000", got)
	}
	if n := byName(t, p, "s0").Picks(); n != 5005 {
		t.Errorf("Picks() = %d, want 5005", n)
	}
}

func TestLeastConn(t *testing.T) {
	weights := []int{1, 2, 3}
	t.Run("held load follows weights exactly", func(t *testing.T) {
		p := mustNew(t, nil, Options{Policy: PolicyLeastConn, Servers: servers(weights...)})
		var rel []Slot
		for range 600 {
			b, _ := p.Pick(Key{})
			r, err := b.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			rel = append(rel, r)
		}
		for i, w := range weights {
			if got := byName(t, p, fmt.Sprintf("s%d", i)).InFlight(); got != int64(100*w) {
				t.Errorf("s%d in-flight %d, want %d", i, got, 100*w)
			}
		}
		for _, r := range rel {
			r.Release()
		}
		for _, b := range p.Backends() {
			if b.InFlight() != 0 {
				t.Errorf("%s in-flight %d after release", b.Name(), b.InFlight())
			}
		}
	})
	t.Run("ties split by weight", func(t *testing.T) {
		p := mustNew(t, nil, Options{Policy: PolicyLeastConn, Servers: servers(weights...)})
		const n = 60000
		// σ of a share is ≤ sqrt(.25/n) ≈ 0.002; 0.015 is > 7σ.
		checkShares(t, pickCounts(t, p, n, Key{}), n, weights, 0.015)
	})
	t.Run("prefers idle", func(t *testing.T) {
		p := mustNew(t, nil, Options{Policy: PolicyLeastConn, Servers: servers(1, 1)})
		r, _ := byName(t, p, "s0").Acquire(t.Context())
		defer r.Release()
		for range 20 {
			if b, _ := p.Pick(Key{}); b.Name() != "s1" {
				t.Fatalf("picked %s with s0 busy", b.Name())
			}
		}
	})
}

func TestRandomTwo(t *testing.T) {
	weights := []int{1, 2, 3}
	p := mustNew(t, nil, Options{Policy: PolicyRandomTwo, Servers: servers(weights...)})
	const n = 60000
	checkShares(t, pickCounts(t, p, n, Key{}), n, weights, 0.015)

	// Under held load, two choices keep load/weight close: after 600
	// held picks each backend is within 15% of its weighted share.
	p2 := mustNew(t, nil, Options{Policy: PolicyRandomTwo, Servers: servers(weights...)})
	for range 600 {
		b, _ := p2.Pick(Key{})
		if _, err := b.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range weights {
		got := byName(t, p2, fmt.Sprintf("s%d", i)).InFlight()
		if want := float64(100 * w); float64(got) < want*0.85 || float64(got) > want*1.15 {
			t.Errorf("s%d in-flight %d, want %v±15%%", i, got, want)
		}
	}
}

func TestFirst(t *testing.T) {
	o := Options{Policy: PolicyFirst, Servers: servers(1, 1, 1)}
	o.Servers[0].MaxConns = 1
	p := mustNew(t, nil, o)
	if b, _ := p.Pick(Key{}); b.Name() != "s0" {
		t.Fatalf("picked %s, want s0", b.Name())
	}
	r, _ := byName(t, p, "s0").Acquire(t.Context())
	if b, _ := p.Pick(Key{}); b.Name() != "s1" {
		t.Errorf("s0 full: picked %s, want s1", b.Name())
	}
	r.Release()
	byName(t, p, "s0").SetUp(false, "test")
	if b, _ := p.Pick(Key{}); b.Name() != "s1" {
		t.Errorf("s0 down: picked %s, want s1", b.Name())
	}
	var k Key
	k.Tried.Add(byName(t, p, "s1"))
	if b, _ := p.Pick(k); b.Name() != "s2" {
		t.Errorf("s1 tried: picked %s, want s2", b.Name())
	}
}

func TestFullServersSkipped(t *testing.T) {
	o := Options{Servers: servers(1, 1)}
	o.Servers[0].MaxConns = 1
	p := mustNew(t, nil, o)
	r, _ := byName(t, p, "s0").Acquire(t.Context())
	for range 10 {
		if b, _ := p.Pick(Key{}); b.Name() != "s1" {
			t.Fatalf("picked full %s", b.Name())
		}
	}
	byName(t, p, "s1").SetUp(false, "")
	if b, _ := p.Pick(Key{}); b == nil || b.Name() != "s0" {
		t.Errorf("only full s0 left: picked %v, want s0 (caller queues)", b)
	}
	r.Release()
}

func clientAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(100 + i>>16), byte(i >> 8), byte(i), 7})
}

func TestIPHash(t *testing.T) {
	const clients = 20000
	assign := func(p *Pool) []string {
		out := make([]string, clients)
		for i := range clients {
			b, _ := p.Pick(Key{Client: clientAddr(i)})
			out[i] = b.Name()
		}
		return out
	}
	ten := servers(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	p := mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: ten})
	base := assign(p)
	if again := assign(p); !slices.Equal(base, again) {
		t.Fatal("ip_hash is not stable between calls")
	}
	// Same config in another pool (another process) maps identically.
	if other := assign(mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: ten})); !slices.Equal(base, other) {
		t.Fatal("ip_hash differs between pools with the same config")
	}
	counts := map[string]int{}
	for _, s := range base {
		counts[s]++
	}
	for name, c := range counts {
		if f := float64(c) / clients; f < 0.08 || f > 0.12 {
			t.Errorf("%s share %.3f, want 0.10±0.02", name, f)
		}
	}

	moved := func(a, b []string) (n int, to map[string]int, from map[string]int) {
		to, from = map[string]int{}, map[string]int{}
		for i := range a {
			if a[i] != b[i] {
				n++
				to[b[i]]++
				from[a[i]]++
			}
		}
		return n, to, from
	}

	t.Run("remove", func(t *testing.T) {
		nine := slices.Delete(slices.Clone(ten), 3, 4) // drop s3
		after := assign(mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: nine}))
		n, _, from := moved(base, after)
		frac := float64(n) / clients
		t.Logf("removing 1 of 10 moved %.4f of clients", frac)
		if len(from) != 1 || from["s3"] != counts["s3"] {
			t.Errorf("moved from %v, want only all %d of s3", from, counts["s3"])
		}
		if frac < 0.08 || frac > 0.12 {
			t.Errorf("moved fraction %.4f, want ≈0.10", frac)
		}
	})
	t.Run("down", func(t *testing.T) {
		q := mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: ten})
		byName(t, q, "s3").SetUp(false, "")
		after := assign(q)
		if _, _, from := moved(base, after); len(from) != 1 || from["s3"] != counts["s3"] {
			t.Errorf("s3 down: moved from %v, want only s3", from)
		}
		byName(t, q, "s3").SetUp(true, "")
		if back := assign(q); !slices.Equal(base, back) {
			t.Error("s3 back up: mapping not restored")
		}
	})
	t.Run("add", func(t *testing.T) {
		eleven := append(slices.Clone(ten), Server{Name: "s10", Host: "10.0.0.11", Port: 8000})
		after := assign(mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: eleven}))
		n, to, _ := moved(base, after)
		frac := float64(n) / clients
		t.Logf("adding an 11th server moved %.4f of clients", frac)
		if len(to) != 1 || to["s10"] != n {
			t.Errorf("moved to %v, want only s10", to)
		}
		if frac < 0.07 || frac > 0.11 {
			t.Errorf("moved fraction %.4f, want ≈1/11", frac)
		}
	})
	t.Run("weighted", func(t *testing.T) {
		q := mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: servers(1, 3)})
		got := map[string]int{}
		for i := range clients {
			b, _ := q.Pick(Key{Client: clientAddr(i)})
			got[b.Name()]++
		}
		checkShares(t, got, clients, []int{1, 3}, 0.02)
	})
	t.Run("no client falls back to round robin", func(t *testing.T) {
		q := mustNew(t, nil, Options{Policy: PolicyIPHash, Servers: servers(1, 1)})
		checkShares(t, pickCounts(t, q, 100, Key{}), 100, []int{1, 1}, 0)
	})
}

func TestSticky(t *testing.T) {
	clk := newClock()
	for _, pol := range Policies() {
		t.Run(pol, func(t *testing.T) {
			p := mustNew(t, nil, Options{Policy: pol, Servers: servers(1, 1, 1), Now: clk.Now, MaxFails: 1, FailTimeout: time.Minute})
			s1 := byName(t, p, "s1")
			if p.Lookup(s1.ID()) != s1 {
				t.Fatal("Lookup(ID) did not return the backend")
			}
			k := Key{Cookie: s1.ID(), Client: netip.MustParseAddr("192.0.2.1")}
			for range 5 {
				if b, sticky := p.Pick(k); b != s1 || !sticky {
					t.Fatalf("hit: got %v sticky=%v, want s1 sticky", b.Name(), sticky)
				}
			}
			if b, sticky := p.Pick(Key{Cookie: "nonexistent"}); b == nil || sticky {
				t.Errorf("unknown cookie: got %v sticky=%v, want a backend, not sticky", b, sticky)
			}
			// Already tried (retry): re-dispatched elsewhere.
			kt := k
			kt.Tried.Add(s1)
			if b, sticky := p.Pick(kt); b == s1 || sticky {
				t.Errorf("tried: got %s sticky=%v", b.Name(), sticky)
			}
			// Down.
			s1.SetUp(false, "test")
			if b, sticky := p.Pick(k); b == s1 || b == nil || sticky {
				t.Errorf("down: got %v sticky=%v", b, sticky)
			}
			s1.SetUp(true, "test")
			// Passive exclusion.
			s1.ReportFailure(clk.Now())
			if b, sticky := p.Pick(k); b == s1 || sticky {
				t.Errorf("passively down: got %s sticky=%v", b.Name(), sticky)
			}
			clk.Add(time.Minute)
			if b, sticky := p.Pick(k); b != s1 || !sticky {
				t.Errorf("passive window over: got %s sticky=%v", b.Name(), sticky)
			}
			// Draining: sticky kept until the deadline, no new picks.
			if err := p.Drain("s1", clk.Now().Add(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if !s1.Draining() || s1.Available(clk.Now()) {
				t.Error("Draining/Available wrong while drained")
			}
			for range 50 {
				if b, _ := p.Pick(Key{Client: netip.MustParseAddr("192.0.2.1")}); b == s1 {
					t.Fatal("drained server got a new pick")
				}
			}
			if b, sticky := p.Pick(k); b != s1 || !sticky {
				t.Errorf("draining before deadline: got %s sticky=%v, want s1 sticky", b.Name(), sticky)
			}
			clk.Add(10 * time.Second)
			if b, sticky := p.Pick(k); b == s1 || sticky {
				t.Errorf("draining past deadline: got %s sticky=%v", b.Name(), sticky)
			}
			if err := p.Undrain("s1"); err != nil {
				t.Fatal(err)
			}
			if b, sticky := p.Pick(k); b != s1 || !sticky {
				t.Errorf("undrained: got %s sticky=%v", b.Name(), sticky)
			}
			// Drain without deadline keeps sticky clients indefinitely.
			_ = p.Drain("s1", time.Time{})
			clk.Add(24 * time.Hour)
			if b, sticky := p.Pick(k); b != s1 || !sticky {
				t.Errorf("drained forever: got %s sticky=%v", b.Name(), sticky)
			}
			_ = p.Undrain("s1")
			if err := p.Drain("nope", time.Time{}); err == nil || !strings.Contains(err.Error(), "unknown server") {
				t.Errorf("Drain(unknown) = %v", err)
			}
		})
	}
}

func TestConfigDrain(t *testing.T) {
	o := Options{Servers: servers(1, 1)}
	o.Servers[0].Drain = true
	p := mustNew(t, nil, o)
	s0 := byName(t, p, "s0")
	got := pickCounts(t, p, 10, Key{})
	if got["s0"] != 0 {
		t.Errorf("config-drained s0 got %d picks", got["s0"])
	}
	if b, sticky := p.Pick(Key{Cookie: s0.ID()}); b != s0 || !sticky {
		t.Errorf("config-drained s0 lost its sticky client")
	}
	_ = p.Undrain("s0")
	if !s0.Draining() {
		t.Error("Undrain cleared a configured drain")
	}
}

func TestBackup(t *testing.T) {
	o := Options{Servers: servers(1, 1, 1)}
	o.Servers[2].Backup = true
	for _, pol := range Policies() {
		o.Policy = pol
		t.Run(pol, func(t *testing.T) {
			p := mustNew(t, nil, o)
			s0, s1, bk := byName(t, p, "s0"), byName(t, p, "s1"), byName(t, p, "s2")
			ck := Key{Client: netip.MustParseAddr("198.51.100.9")}
			if got := pickCounts(t, p, 20, ck); got["s2"] != 0 {
				t.Fatalf("backup picked while primaries up: %v", got)
			}
			s0.SetUp(false, "")
			if got := pickCounts(t, p, 20, ck); got["s2"] != 0 || got["s1"] != 20 {
				t.Fatalf("one primary down: %v, want all on s1", got)
			}
			s1.SetUp(false, "")
			if got := pickCounts(t, p, 20, ck); got["s2"] != 20 {
				t.Fatalf("all primaries down: %v, want all on backup", got)
			}
			// Sticky to the backup while it is the only choice.
			if b, sticky := p.Pick(Key{Cookie: bk.ID()}); b != bk || !sticky {
				t.Fatalf("sticky backup: %v %v", b.Name(), sticky)
			}
			s1.SetUp(true, "")
			if got := pickCounts(t, p, 20, ck); got["s1"] != 20 {
				t.Fatalf("primary back: %v, want all on s1", got)
			}
			if b, sticky := p.Pick(Key{Cookie: bk.ID()}); b != s1 || sticky {
				t.Errorf("sticky backup after primary returned: got %s sticky=%v, want s1 re-dispatched", b.Name(), sticky)
			}
			// Retry after the only primary was tried goes to the backup.
			var k Key
			k.Tried.Add(s1)
			if b, _ := p.Pick(k); b != bk {
				t.Errorf("retry with primaries exhausted: got %v, want backup", b)
			}
			bk.SetUp(false, "")
			k.Tried.Add(s1)
			if b, _ := p.Pick(k); b != nil {
				t.Errorf("everything down or tried: got %s, want nil", b.Name())
			}
		})
	}
}

func TestTried(t *testing.T) {
	var tr Tried
	bs := make([]*Backend, MaxTried+2)
	for i := range bs {
		bs[i] = &Backend{}
		tr.Add(bs[i])
		tr.Add(bs[i])
	}
	if tr.Len() != MaxTried {
		t.Errorf("Len = %d, want %d", tr.Len(), MaxTried)
	}
	if !tr.Has(bs[0]) || tr.Has(bs[MaxTried]) {
		t.Error("Has wrong")
	}
	p := mustNew(t, nil, Options{Servers: servers(1, 1, 1)})
	var k Key
	seen := map[string]bool{}
	for range 3 {
		b, _ := p.Pick(k)
		if b == nil || seen[b.Name()] {
			t.Fatalf("retry picked %v again (seen %v)", b, seen)
		}
		seen[b.Name()] = true
		k.Tried.Add(b)
	}
	if b, _ := p.Pick(k); b != nil {
		t.Errorf("all tried: got %s, want nil", b.Name())
	}
}

func TestPickAllocs(t *testing.T) {
	for _, pol := range Policies() {
		t.Run(pol, func(t *testing.T) {
			o := Options{Policy: pol, Servers: servers(1, 2, 3, 1), SlowStart: time.Minute}
			o.Servers[3].Backup = true
			o.Servers[0].MaxConns = 1
			p := mustNew(t, nil, o)
			byName(t, p, "s1").SetUp(false, "")
			byName(t, p, "s1").SetUp(true, "") // in slow start
			s2 := byName(t, p, "s2")
			k := Key{Cookie: s2.ID(), Client: netip.MustParseAddr("2001:db8::1")}
			miss := Key{Cookie: "unknown-cookie-x", Client: netip.MustParseAddr("192.0.2.4")}
			miss.Tried.Add(s2)
			if a := testing.AllocsPerRun(200, func() {
				p.Pick(k)
				p.Pick(miss)
				p.Pick(Key{})
			}); a != 0 {
				t.Errorf("Pick allocates %.1f times per run", a)
			}
		})
	}
}
