// Package dropin_test is code written for pgxpool, run unchanged against
// fairpgx (go test) and against pgxpool (go test -tags pgxpool): the two
// runs must pass alike. Only the alias files differ.
package dropin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func dsn(t *testing.T) string {
	t.Helper()
	s := os.Getenv("FAIRPOOL_PG_DSN")
	if s == "" {
		s = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	cc, err := pgx.ParseConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)), 2*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL does not answer (CI=true, so this fails): %v", err)
		}
		t.Skipf("PostgreSQL does not answer: %v", err)
	}
	c.Close()
	return s
}

func withParams(s, params string) string {
	if strings.Contains(s, "?") {
		return s + "&" + params
	}
	return s + "?" + params
}

func newPool(t *testing.T, cfg *Config) *Pool {
	t.Helper()
	p, err := NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not within 5 s", impl, what)
		}
	}
}

func TestDropInQueries(t *testing.T) {
	ctx := context.Background()
	p, err := New(ctx, withParams(dsn(t), "pool_max_conns=3&pool_ping_timeout=1s&pool_health_check_period=1m"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("QueryRow: %d, %v", n, err)
	}
	rows, err := p.Query(ctx, "SELECT generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("Query: %v, %v", got, err)
	}
	if err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TEMP TABLE t (x int)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT 2")
	if err := p.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	s := p.Stat()
	if s.AcquiredConns() != 0 || s.MaxConns() != 3 || s.AcquireCount() != 6 || s.TotalConns() < 1 || s.TotalConns() > 3 {
		t.Errorf("%s: Stat acquired %d, max %d, acquires %d, total %d", impl, s.AcquiredConns(), s.MaxConns(), s.AcquireCount(), s.TotalConns())
	}
	if cfg := p.Config(); cfg.MaxConns != 3 || cfg.PingTimeout != time.Second || cfg.MaxConnLifetime != time.Hour {
		t.Errorf("%s: Config %+v", impl, cfg)
	}
}

func TestDropInParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("postgres://u@h/db")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != int32(max(4, runtime.NumCPU())) || cfg.HealthCheckPeriod != time.Minute ||
		cfg.MaxConnIdleTime != 30*time.Minute || cfg.MaxConnLifetime != time.Hour || cfg.PingTimeout != 0 {
		t.Errorf("%s: defaults %+v", impl, cfg)
	}
	if _, err := ParseConfig("postgres://u@h/db?pool_max_conns=0"); err == nil || !strings.Contains(err.Error(), "pool_max_conns too small") {
		t.Errorf("%s: pool_max_conns=0: %v", impl, err)
	}
}

func TestDropInAcquireReleaseHijackReset(t *testing.T) {
	ctx := context.Background()
	cfg, err := ParseConfig(dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	p := newPool(t, cfg)
	var cs []*Conn
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	h := cs[0].Hijack()
	defer h.Close(ctx)
	cs[1].Release()
	cs[2].Release()
	eventually(t, "hijacked slot freed", func() bool { return p.Stat().TotalConns() == 2 })
	idle := p.AcquireAllIdle(ctx)
	if len(idle) != 2 {
		t.Errorf("%s: AcquireAllIdle %d, want 2", impl, len(idle))
	}
	for _, c := range idle {
		c.Release()
	}
	if err := p.AcquireFunc(ctx, func(c *Conn) error { return c.Ping(ctx) }); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	eventually(t, "Reset closes idle connections", func() bool { return p.Stat().TotalConns() == 0 })
	if err := h.Ping(ctx); err != nil {
		t.Errorf("%s: hijacked connection closed by the pool: %v", impl, err)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(ctx, "SELECT generate_series(1, 10)"); err != nil {
		t.Fatal(err)
	}
	c.Release() // rows open: closed, not reused
	eventually(t, "busy connection closed", func() bool { return p.Stat().TotalConns() == 0 })
}

func TestDropInHooks(t *testing.T) {
	ctx := context.Background()
	cfg, err := ParseConfig(dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	var prepares, releases, pings atomic.Int32
	errNo := errors.New("no")
	cfg.PrepareConn = func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if prepares.Add(1) == 2 {
			return true, errNo
		}
		return true, nil
	}
	cfg.AfterRelease = func(*pgx.Conn) bool { return releases.Add(1) != 2 }
	cfg.ShouldPing = func(context.Context, ShouldPingParams) bool { pings.Add(1); return true }
	p := newPool(t, cfg)
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); !errors.Is(err, errNo) {
		t.Errorf("%s: PrepareConn true, error: %v", impl, err)
	}
	if err := p.Ping(ctx); err != nil { // AfterRelease false on this one's release
		t.Fatal(err)
	}
	eventually(t, "AfterRelease asked twice", func() bool { return releases.Load() == 2 })
	// ShouldPing is asked on every acquire; AfterRelease is not asked when
	// PrepareConn's error sent the connection back.
	if pings.Load() != 3 || releases.Load() != 2 || prepares.Load() != 3 {
		t.Errorf("%s: ShouldPing %d, AfterRelease %d, PrepareConn %d; want 3, 2, 3", impl, pings.Load(), releases.Load(), prepares.Load())
	}
}

func TestDropInHealthCheck(t *testing.T) {
	cfg, err := ParseConfig(dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConnLifetime = 100 * time.Millisecond
	cfg.HealthCheckPeriod = 100 * time.Millisecond
	p := newPool(t, cfg)
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "expired idle connection closed", func() bool { return p.Stat().TotalConns() == 0 })
	if s := p.Stat(); s.MaxLifetimeDestroyCount() != 1 || s.NewConnsCount() != 1 || s.MaxIdleDestroyCount() != 0 {
		t.Errorf("%s: lifetime %d, opens %d, idle %d", impl, s.MaxLifetimeDestroyCount(), s.NewConnsCount(), s.MaxIdleDestroyCount())
	}
}
