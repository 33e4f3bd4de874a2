package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/fairpool/fairpool"
)

// groupKeys is how many keys the Group of the acquire benchmarks has, all
// warm; the benchmark uses one of them.
const groupKeys = 8

// BenchmarkGroupAcquireRelease sets a Group's acquire + release on an
// existing key beside a single Pool's, in the same run: pool=fairpool is a
// Pool of singleSize; pool=mapped the same Pool found by its key in a
// read-only map[string]*Pool first, the least any pool per key pays; and
// pool=group a Group whose key has PerKeyMax singleSize, among groupKeys
// warm keys, under a GlobalMax that does not bind. The bar Group is held to is
// 1.3x of pool=fairpool.
//
//	go test -run '^$' -bench 'Group(AcquireRelease|Contended)' -count 6 | tee group.txt && benchstat -col /pool group.txt
func BenchmarkGroupAcquireRelease(b *testing.B) {
	b.Run("pool=fairpool", func(b *testing.B) {
		b.ReportAllocs()
		benchFairpool(b, singleSize, false)
	})
	b.Run("pool=mapped", func(b *testing.B) {
		b.ReportAllocs()
		benchMapped(b, singleSize, false)
	})
	b.Run("pool=group", func(b *testing.B) {
		b.ReportAllocs()
		benchGroup(b, singleSize, false)
	})
}

func benchMapped(b *testing.B, size int, parallel bool) {
	pools := map[string]*fairpool.Pool[*conn]{}
	for k := range groupKeys {
		pools[fmt.Sprint("shard_", k)] = newFairpool(b, size, fairpool.Config[*conn]{})
	}
	ctx := context.Background()
	key := "shard_3"
	if !parallel {
		for b.Loop() {
			l, err := pools[key].Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := pools[key].Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
		}
	})
}

// BenchmarkGroupContended is the same with BenchmarkContended's load: a
// pool (a key) of contendedSize, 16 goroutines per GOMAXPROCS.
func BenchmarkGroupContended(b *testing.B) {
	b.Run("pool=fairpool", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		benchFairpool(b, contendedSize, true)
	})
	b.Run("pool=mapped", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		benchMapped(b, contendedSize, true)
	})
	b.Run("pool=group", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		benchGroup(b, contendedSize, true)
	})
}

func benchGroup(b *testing.B, size int, parallel bool) {
	g := newGroup(b, size, groupKeys*size)
	ctx := context.Background()
	key := "shard_3"
	if !parallel {
		for b.Loop() {
			l, err := g.Acquire(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := g.Acquire(ctx, key)
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
		}
	})
}

// newGroup returns a Group of groupKeys keys named shard_0..., each with
// perKey connections, all opened.
func newGroup(tb testing.TB, perKey, global int) *fairpool.Group[string, *conn] {
	tb.Helper()
	var n atomic.Int64
	g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
		Open:      func(context.Context, string) (*conn, error) { return &conn{id: int(n.Add(1))}, nil },
		PerKeyMax: perKey,
		GlobalMax: global,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for k := range groupKeys {
		key := fmt.Sprint("shard_", k)
		leases := make([]*fairpool.GroupLease[string, *conn], perKey)
		for i := range leases {
			if leases[i], err = g.Acquire(ctx, key); err != nil {
				tb.Fatal(err)
			}
		}
		for _, l := range leases {
			l.Release()
		}
	}
	tb.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return g
}

// BenchmarkGroupIdleKeys measures what a key costs while unused: the heap
// taken by 10,000 keys, divided by 10,000, reported as B/key. mode=conn
// keeps one idle connection per key (the Group's bookkeeping for it, and
// the 8-byte conn it holds); mode=empty has discarded it, leaving the key's
// pool alone, as it is until KeyIdleTime drops it. Each key waited once,
// for its first open, so each has its wait histogram.
func BenchmarkGroupIdleKeys(b *testing.B) {
	const keys = 10_000
	for _, mode := range []string{"conn", "empty"} {
		b.Run("mode="+mode, func(b *testing.B) {
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprint("tenant_", i)
			}
			ctx := context.Background()
			var perKey float64
			goroutines := runtime.NumGoroutine()
			for b.Loop() {
				// The last group's goroutines may still be on their way out
				// after Close, keeping it reachable.
				for runtime.NumGoroutine() > goroutines {
					runtime.Gosched()
				}
				before := heapInUse()
				g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
					Open:      func(context.Context, string) (*conn, error) { return &conn{}, nil },
					PerKeyMax: 1,
					// No timeout, so no timer: a stopped timer can stay in
					// the runtime's heap a while and keep the last group
					// reachable, which would blur the measure.
					AcquireTimeout: -1,
				})
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range names {
					l, err := g.Acquire(ctx, k)
					if err != nil {
						b.Fatal(err)
					}
					if mode == "conn" {
						l.Release()
					} else {
						l.Discard()
					}
				}
				if s := g.Stats(); s.KeyPools != keys {
					b.Fatalf("%d key pools", s.KeyPools)
				}
				perKey = float64(heapInUse()-before) / keys
				runtime.KeepAlive(g)
				if err := g.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(perKey, "B/key")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
