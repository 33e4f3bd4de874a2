// Package bench compares fairpool with its peers in the same run: the peers
// in one run share its load, so their ratios mean more than absolute times
// on a shared machine. README.md gives the bar and the recorded results.
package bench

import (
	"context"
	"testing"

	"github.com/fairpool/fairpool"
)

const (
	singleSize    = 8  // pool size for BenchmarkAcquireRelease
	contendedSize = 4  // pool size for BenchmarkContended
	parallelism   = 16 // goroutines per GOMAXPROCS for BenchmarkContended
)

// Each entry runs b.N acquire+release pairs on a warm pool of size
// connections, from one goroutine or, if parallel, from RunParallel's. The
// loops are written out per pool so that no indirect call sits in them.
var benchPools = []struct {
	name string
	run  func(b *testing.B, size int, parallel bool)
}{
	{"chan", benchChan},
	{"fairpool", benchFairpool},
	{"puddle", benchPuddle},
	{"sql", benchSQL},
}

func BenchmarkAcquireRelease(b *testing.B) {
	for _, bp := range benchPools {
		b.Run("pool="+bp.name, func(b *testing.B) {
			b.ReportAllocs()
			bp.run(b, singleSize, false)
		})
	}
}

func BenchmarkContended(b *testing.B) {
	for _, bp := range benchPools {
		b.Run("pool="+bp.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(parallelism)
			bp.run(b, contendedSize, true)
		})
	}
}

// BenchmarkWith is p.With around a no-op fn, to set beside
// BenchmarkAcquireRelease/pool=fairpool.
func BenchmarkWith(b *testing.B) {
	b.Run("pool=fairpool", func(b *testing.B) {
		b.ReportAllocs()
		p := newFairpool(b, singleSize, fairpool.Config[*conn]{})
		ctx := context.Background()
		fn := func(context.Context, *conn) error { return nil }
		for b.Loop() {
			if err := p.With(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchChan(b *testing.B, size int, parallel bool) {
	ch := newChan(size)
	if !parallel {
		for b.Loop() {
			c := <-ch
			ch <- c
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := <-ch
			ch <- c
		}
	})
}

func benchFairpool(b *testing.B, size int, parallel bool) {
	p := newFairpool(b, size, fairpool.Config[*conn]{})
	ctx := context.Background()
	if !parallel {
		for b.Loop() {
			l, err := p.Acquire(ctx)
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
			l, err := p.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
		}
	})
}

func benchPuddle(b *testing.B, size int, parallel bool) {
	p := newPuddle(b, size)
	ctx := context.Background()
	if !parallel {
		for b.Loop() {
			r, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			r.Release()
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := p.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			r.Release()
		}
	})
}

func benchSQL(b *testing.B, size int, parallel bool) {
	db := newSQL(b, size)
	ctx := context.Background()
	if !parallel {
		for b.Loop() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := db.Conn(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			c.Close()
		}
	})
}
