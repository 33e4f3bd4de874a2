package bench

import (
	"context"
	"testing"

	"github.com/fairpool/fairpool"
)

// BenchmarkTracking is acquire + release with Config.TrackLeases off and
// on: what holder tracking, leak and deadlock detection cost per lease.
// Compare with benchstat -col /track.
func BenchmarkTracking(b *testing.B) {
	for _, track := range []bool{false, true} {
		name := "track=off"
		if track {
			name = "track=on"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			p := newFairpool(b, singleSize, fairpool.Config[*conn]{TrackLeases: track})
			ctx := context.Background()
			for b.Loop() {
				l, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				l.Release()
			}
		})
	}
}
