package fairprom_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairprom"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkAcquireReleaseWhileScraping measures acquire + release on one of
// 100 pools with and without a registry gathering all 100 every 100 ms
// (150 times Prometheus's default rate). Compare with benchstat -col
// /scrape. Gathering every millisecond costs about a quarter more per
// acquire on two cores, through CPU and garbage collection, not the pool's
// lock.
func BenchmarkAcquireReleaseWhileScraping(b *testing.B) {
	for _, scraping := range []bool{false, true} {
		b.Run(fmt.Sprintf("scrape=%v", scraping), func(b *testing.B) {
			c := fairprom.NewCollector()
			var pools []*fairpool.Pool[*conn]
			for i := range 100 {
				p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 8, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
				if err != nil {
					b.Fatal(err)
				}
				pools = append(pools, p)
				c.Add(fmt.Sprint("pool", i), p)
			}
			defer func() {
				for _, p := range pools {
					p.Close(context.Background())
				}
			}()
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if scraping {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
							if _, err := reg.Gather(); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			p := pools[0]
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				l, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				l.Release()
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
		})
	}
}
