package fairpgx_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The real-server comparison with pgxpool: benchClients goroutines
// share benchConns connections, each op is one pool.Exec (acquire, query,
// release). Besides ns/op it reports throughput and the latency of an op
// (wait plus query) at p50, p99 and the max. Run with
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench PG -benchtime 2s; done | tee pg.txt
//	benchstat -col /pool pg.txt
//
// Six rounds rather than -count 6, so that the pools take turns and a
// burst of load on a shared machine hits them alike.
const (
	benchClients = 64
	benchConns   = 8
)

var benchQueries = []struct{ name, sql string }{
	{"select1", "SELECT 1"},
	{"sleep1ms", "SELECT pg_sleep(0.001)"},
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func BenchmarkPG(b *testing.B) {
	requirePG(b)
	pools := []struct {
		name string
		open func(b *testing.B) execer
	}{
		{"fairpgx", func(b *testing.B) execer {
			cfg, err := fairpgx.ParseConfig(dsn())
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = benchConns
			cfg.AcquireTimeout = time.Minute // measure waits, do not cut them
			p, err := fairpgx.NewWithConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			return p
		}},
		{"pgxpool", func(b *testing.B) execer {
			cfg, err := pgxpool.ParseConfig(dsn())
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = benchConns
			p, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			return p
		}},
	}
	for _, q := range benchQueries {
		for _, pool := range pools {
			b.Run(fmt.Sprintf("query=%s/pool=%s", q.name, pool.name), func(b *testing.B) {
				runClients(b, pool.open(b), q.sql)
			})
		}
	}
}

// runClients runs b.N ops from benchClients goroutines, after opening
// every connection, and reports q/s and latency percentiles.
func runClients(b *testing.B, p execer, sql string) {
	ctx := context.Background()
	var warm sync.WaitGroup
	for range benchConns * 2 {
		warm.Go(func() {
			if _, err := p.Exec(ctx, "SELECT pg_sleep(0.01)"); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()

	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			if _, err := p.Exec(ctx, sql); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, all, elapsed)
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "q/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}
