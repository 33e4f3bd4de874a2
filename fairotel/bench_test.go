package fairotel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// BenchmarkCollect100Pools measures one collection of 100 pools: what an
// exporter's interval costs, all of it off the pools' hot path but the
// brief hold of each pool's lock in Stats. On two cores it measured about
// 1.4 ms and 10k allocations, most of them the SDK's own.
func BenchmarkCollect100Pools(b *testing.B) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)
	m, err := fairotel.New(provider)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := range 100 {
		p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 8, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		m.Add(fmt.Sprint("pool", i), p)
	}
	var rm metricdata.ResourceMetrics
	b.ReportAllocs()
	for b.Loop() {
		if err := reader.Collect(ctx, &rm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireRelease measures what the histograms add to an acquire
// and release of an idle connection: without is the pool alone, with is
// the pool added to Metrics, so that each lease records a wait and a use.
// On two cores it measured about 66 ns without and 345 ns with, one
// allocation each (the lease): the two Records are the SDK's cost.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := "without"
		if observed {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			reader := sdkmetric.NewManualReader()
			provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			defer provider.Shutdown(ctx)
			m, err := fairotel.New(provider)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 1, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			if observed {
				m.Add("orders", p)
			}
			b.ReportAllocs()
			for b.Loop() {
				l, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				l.Release()
			}
			b.StopTimer()
			// A benchmark that recorded nothing would measure nothing.
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(ctx, &rm); err != nil {
				b.Fatal(err)
			}
			recorded := 0
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					if h, ok := mt.Data.(metricdata.Histogram[float64]); ok && mt.Name == "db.client.connection.use_time" {
						for _, dp := range h.DataPoints {
							recorded += int(dp.Count)
						}
					}
				}
			}
			if observed != (recorded > 0) {
				b.Fatalf("observed %v, but use_time holds %d", observed, recorded)
			}
		})
	}
}
