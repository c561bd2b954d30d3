package balancer

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
)

// BenchmarkPick measures Pick per policy for 3 and 100 backends, run in
// parallel (GOMAXPROCS goroutines), with a distinct client address per
// iteration and no sticky cookie.
func BenchmarkPick(b *testing.B) {
	for _, pol := range Policies() {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", pol, n), func(b *testing.B) {
				ws := make([]int, n)
				for i := range ws {
					ws[i] = 1 + i%3
				}
				p := mustNew(b, nil, Options{Policy: pol, Servers: servers(ws...)})
				var ctr atomic.Uint32
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					base := ctr.Add(1) << 24
					i := uint32(0)
					for pb.Next() {
						i++
						v := base | i&0xffffff
						k := Key{Client: netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})}
						if bk, _ := p.Pick(k); bk == nil {
							b.Fatal("nil pick")
						}
					}
				})
			})
		}
	}
}

// BenchmarkPickSticky measures a sticky hit (one map lookup).
func BenchmarkPickSticky(b *testing.B) {
	p := mustNew(b, nil, Options{Servers: servers(1, 1, 1)})
	k := Key{Cookie: p.Backends()[1].ID()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick(k)
		}
	})
}

// BenchmarkAcquire measures Acquire+release without a limit and with a
// limit that is never reached.
func BenchmarkAcquire(b *testing.B) {
	for _, mc := range []int{0, 1 << 20} {
		b.Run(fmt.Sprintf("max_conns=%d", mc), func(b *testing.B) {
			o := Options{Servers: servers(1)}
			o.Servers[0].MaxConns = mc
			be := mustNew(b, nil, o).Backends()[0]
			ctx := b.Context()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rel, err := be.Acquire(ctx)
					if err != nil {
						b.Fatal(err)
					}
					rel.Release()
				}
			})
		})
	}
}
