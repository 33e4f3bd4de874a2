package fairpgx_test

import (
	"context"
	"testing"
	"time"
)

// The background health check closes idle connections past their
// lifetime or idle time, and tops the pool up to MinConns and
// MinIdleConns, every HealthCheckPeriod.

func TestHealthCheckRetiresExpiredIdleConnection(t *testing.T) {
	cfg, app := testConfig(t, 2)
	cfg.MaxConnLifetime = 100 * time.Millisecond
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	p := newPool(t, cfg)
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "expired idle connection closed", func() bool { return p.Stat().TotalConns() == 0 })
	s := p.Stat()
	if s.MaxLifetimeDestroyCount() != 1 || s.MaxIdleDestroyCount() != 0 || s.NewConnsCount() != 1 {
		t.Errorf("lifetime closes %d, idle closes %d, opens %d; want 1, 0, 1",
			s.MaxLifetimeDestroyCount(), s.MaxIdleDestroyCount(), s.NewConnsCount())
	}
	waitBackends(t, app, 0)
}

func TestHealthCheckRetiresIdleConnectionButKeepsMinConns(t *testing.T) {
	cfg, _ := testConfig(t, 3)
	cfg.MaxConnIdleTime = 100 * time.Millisecond
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.MinConns = 1
	p := newPool(t, cfg)
	ctx := context.Background()
	waitFor(t, "MinConns opened at start", func() bool { return p.Stat().IdleConns() == 1 })
	a, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	b.Release()
	waitFor(t, "idle connection over MinConns closed", func() bool { return p.Stat().MaxIdleDestroyCount() == 1 })
	time.Sleep(300 * time.Millisecond) // three more checks: MinConns keeps the last one
	if s := p.Stat(); s.TotalConns() != 1 || s.MaxIdleDestroyCount() != 1 || s.MaxLifetimeDestroyCount() != 0 {
		t.Errorf("total %d, idle closes %d, lifetime closes %d; want 1, 1, 0",
			s.TotalConns(), s.MaxIdleDestroyCount(), s.MaxLifetimeDestroyCount())
	}
}

// TestHealthCheckTopsUpMinConns follows pgxpool's own test: MinConns
// counts every connection, acquired or idle, and a closed one is replaced.
func TestHealthCheckTopsUpMinConns(t *testing.T) {
	cfg, _ := testConfig(t, 4)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.MinConns = 2
	p := newPool(t, cfg)
	ctx := context.Background()
	waitFor(t, "two idle at start", func() bool { s := p.Stat(); return s.IdleConns() == 2 && s.NewConnsCount() == 2 })
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several checks: two exist, none is opened
	if s := p.Stat(); s.IdleConns() != 1 || s.NewConnsCount() != 2 {
		t.Errorf("with one acquired: idle %d, opened %d; want 1, 2 (MinConns counts acquired ones)", s.IdleConns(), s.NewConnsCount())
	}
	if err := c.Conn().Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.Release()
	waitFor(t, "the closed connection replaced", func() bool {
		s := p.Stat()
		return s.IdleConns() == 2 && s.TotalConns() == 2 && s.NewConnsCount() == 3
	})
}

func TestHealthCheckTopsUpMinIdleConns(t *testing.T) {
	cfg, _ := testConfig(t, 4)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.MinIdleConns = 2
	p := newPool(t, cfg)
	ctx := context.Background()
	waitFor(t, "two idle at start", func() bool { return p.Stat().IdleConns() == 2 })
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	waitFor(t, "idle topped up while one is acquired", func() bool {
		s := p.Stat()
		return s.IdleConns() == 2 && s.TotalConns() == 3
	})
	if n := p.Stat().AcquireCount(); n != 1 {
		t.Errorf("AcquireCount %d, want 1: the health check's own takes do not count", n)
	}
}

func TestHealthCheckPeriodDefaultsToAMinute(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	cfg.HealthCheckPeriod = 0
	p := newPool(t, cfg)
	if got := p.Config().HealthCheckPeriod; got != time.Minute {
		t.Errorf("HealthCheckPeriod %v, want 1m", got)
	}
}
