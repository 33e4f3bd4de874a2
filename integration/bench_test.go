package integration

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool/sqlpool"
)

// sqlpool against database/sql, both over pgx's stdlib driver on the real
// PostgreSQL: benchClients goroutines share benchConns connections; an op
// takes a connection, runs one statement and gives it back. Besides ns/op
// it reports throughput and the latency of an op (wait plus statement) at
// p50, p99 and the max. Run with
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench SQL -benchtime 2s; done | tee sql.txt
//	benchstat -col /pool sql.txt
//
// Six rounds rather than -count 6, so that the pools take turns and a
// burst of load on a shared machine hits them alike.
const (
	benchClients = 64
	benchConns   = 8
)

func BenchmarkSQL(b *testing.B) {
	s := postgres(b)
	ctx := context.Background()
	withConn := func(p *sqlpool.Pool) func(string) error {
		return func(q string) error {
			return p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				_, err := c.ExecContext(ctx, q)
				return err
			})
		}
	}
	pools := []struct {
		name string
		open func(b *testing.B) func(string) error
	}{
		{"database-sql", func(b *testing.B) func(string) error {
			db := s.open(b)
			db.SetMaxOpenConns(benchConns)
			db.SetMaxIdleConns(benchConns) // the default of 2 would reconnect all the time
			return func(q string) error { _, err := db.ExecContext(ctx, q); return err }
		}},
		{"sqlpool", func(b *testing.B) func(string) error {
			return withConn(s.newPool(b, sqlpool.Config{MaxSize: benchConns, AcquireTimeout: time.Minute}))
		}},
		{"sqlpool-skipreset", func(b *testing.B) func(string) error {
			return withConn(s.newPool(b, sqlpool.Config{MaxSize: benchConns, AcquireTimeout: time.Minute, SkipSessionReset: true}))
		}},
	}
	for _, q := range []struct{ name, sql string }{{"select1", "SELECT 1"}, {"sleep1ms", "SELECT pg_sleep(0.001)"}} {
		for _, pool := range pools {
			b.Run(fmt.Sprintf("query=%s/pool=%s", q.name, pool.name), func(b *testing.B) {
				runClients(b, pool.open(b), q.sql)
			})
		}
	}
}

// runClients runs b.N ops from benchClients goroutines after opening every
// connection, and reports q/s and latency percentiles.
func runClients(b *testing.B, op func(string) error, q string) {
	var warm sync.WaitGroup
	for range benchConns * 2 {
		warm.Go(func() {
			if err := op("SELECT pg_sleep(0.01)"); err != nil {
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
			if err := op(q); err != nil {
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
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "q/s")
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[min(len(all)-1, len(all)*99/100)]), "p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "max-ms")
}
