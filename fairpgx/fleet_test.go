package fairpgx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestIsRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "53300"}, true},
		{fmt.Errorf("connect: %w", &pgconn.PgError{Code: "53300"}), true},
		{fmt.Errorf("open: %w", fairpgx.ErrFleetFull), true},
		{&pgconn.PgError{Code: "53400"}, false},
		{&pgconn.PgError{Code: "28P01"}, false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := fairpgx.IsRefusal(tc.err); got != tc.want {
			t.Errorf("IsRefusal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestParseConfigFleet(t *testing.T) {
	cfg, err := fairpgx.ParseConfig("postgres://u@h/db?pool_fleet_name=orders&pool_fleet_size=12")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FleetName != "orders" || cfg.FleetSize != 12 {
		t.Errorf("FleetName %q, FleetSize %d", cfg.FleetName, cfg.FleetSize)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["pool_fleet_name"]; ok {
		t.Error("pool_fleet_name would reach the server")
	}
	if _, err := fairpgx.ParseConfig("postgres://u@h/db?pool_fleet_size=x"); err == nil {
		t.Error("pool_fleet_size=x parsed")
	}
	cfg.FleetSize = 0
	if _, err := fairpgx.NewWithConfig(context.Background(), cfg); err == nil {
		t.Error("FleetName without FleetSize accepted")
	}
}

// fleetName is unique per run, so that parallel runs do not share slots.
func fleetName(t *testing.T) string { return fmt.Sprintf("%s-%d", t.Name(), os.Getpid()) }

// TestFleetPoolsShareTheBudget runs two pools of one fleet of 3 under
// load: the server never holds more than 3 of their connections plus one
// candidate per pool, and no call fails.
func TestFleetPoolsShareTheBudget(t *testing.T) {
	name := fleetName(t)
	var apps []string
	var pools []*fairpgx.Pool
	for range 2 {
		cfg, app := testConfig(t, 4)
		cfg.FleetName, cfg.FleetSize = name, 3
		apps = append(apps, app)
		pools = append(pools, newPool(t, cfg))
	}
	admin := adminConn(t)
	ctx := context.Background()
	stop := make(chan struct{})
	var maxSeen, fails atomic.Int64
	served := make([]atomic.Int64, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var n int64
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY($1)", apps).Scan(&n); err == nil && n > maxSeen.Load() {
				maxSeen.Store(n)
			}
		}
	})
	for i, p := range pools {
		for range 6 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := p.Exec(ctx, "SELECT pg_sleep(0.002)"); err != nil {
						fails.Add(1)
						t.Errorf("pool %d: %v", i, err)
						return
					}
					served[i].Add(1)
				}
			})
		}
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if m := maxSeen.Load(); m > 3+2 {
		t.Errorf("server saw %d connections of the fleet, want at most 3 + 1 per pool", m)
	}
	a, b := served[0].Load(), served[1].Load()
	if a == 0 || b == 0 || min(a, b)*4 < max(a, b) {
		t.Errorf("served %d and %d: one pool starved", a, b)
	}
	if st := pools[0].Stats(); st.RefusedOpens+pools[1].Stats().RefusedOpens == 0 {
		t.Error("no connect found the budget full, so nothing was tested")
	}
	t.Logf("served %d and %d, max %d connections", a, b, maxSeen.Load())
}

// TestFleetSlotSurvivesDiscardAll: with ResetSession, DISCARD ALL drops
// every advisory lock; the connection takes its slot back, so a second
// pool of the budget of one still finds it full.
func TestFleetSlotSurvivesDiscardAll(t *testing.T) {
	name := fleetName(t)
	cfg, _ := testConfig(t, 1)
	cfg.FleetName, cfg.FleetSize, cfg.ResetSession = name, 1, true
	p := newPool(t, cfg)
	ctx := context.Background()
	for range 3 {
		if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	cfg2, _ := testConfig(t, 1)
	cfg2.FleetName, cfg2.FleetSize, cfg2.AcquireTimeout = name, 1, 300*time.Millisecond
	q := newPool(t, cfg2)
	_, err := q.Exec(ctx, "SELECT 1")
	var te *fairpool.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, fairpgx.ErrFleetFull) {
		t.Fatalf("second pool of a full budget: %v, want a timeout naming ErrFleetFull", err)
	}
	if st := p.Stats(); st.ClosedReset != 0 || st.Opens != 1 {
		t.Errorf("first pool: %d opens, %d reset failures; want its one connection kept", st.Opens, st.ClosedReset)
	}
}

// TestRoleConnectionLimitIsBackPressure: a role allowed 3 connections, a
// pool of 8 and 16 goroutines: no call fails, because refused connects
// wait for the connections the pool holds.
func TestRoleConnectionLimitIsBackPressure(t *testing.T) {
	requirePG(t)
	ctx := context.Background()
	admin := adminConn(t)
	role := fmt.Sprintf("fairpgx_limit_%d", os.Getpid())
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN CONNECTION LIMIT 3", role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		if _, err := admin.Exec(ctx, "DROP ROLE "+role); err != nil {
			t.Errorf("DROP ROLE: %v", err)
		}
	})
	cfg, _ := testConfig(t, 8)
	cfg.ConnConfig.User = role
	p := newPool(t, cfg)
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if _, err := p.Exec(ctx, "SELECT pg_sleep(0.002)"); err != nil {
					t.Errorf("call failed: %v", err)
					return
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	st := p.Stats()
	if st.RefusedOpens == 0 {
		t.Error("no connect was refused, so nothing was tested")
	}
	if served.Load() != 16*20 {
		t.Errorf("served %d of %d", served.Load(), 16*20)
	}
	t.Logf("refused %d, effective size %d", st.RefusedOpens, st.EffectiveSize)
}

// TestFleetIdleConnectionsAreGivenBack: a pool that took the whole budget
// and then went idle releases nothing, so only a look at its idle
// connections can give their slots to another pool that waits: the other
// pool's first call must not wait out its timeout.
func TestFleetIdleConnectionsAreGivenBack(t *testing.T) {
	name := fleetName(t)
	cfgA, _ := testConfig(t, 3)
	cfgA.FleetName, cfgA.FleetSize = name, 3
	a := newPool(t, cfgA)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 3 { // all three slots, then idle
		wg.Go(func() {
			if _, err := a.Exec(ctx, "SELECT pg_sleep(0.05)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := a.Stats(); st.Open != 3 {
		t.Fatalf("pool A holds %d connections, want the whole budget of 3", st.Open)
	}
	cfgB, _ := testConfig(t, 3)
	cfgB.FleetName, cfgB.FleetSize = name, 3
	b := newPool(t, cfgB)
	callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := b.Exec(callCtx, "SELECT 1"); err != nil {
		t.Fatalf("pool B's first call, with A idle on the whole budget: %v after %v", err, time.Since(start))
	}
	t.Logf("pool B served after %v; A holds %d", time.Since(start).Round(time.Millisecond), a.Stats().Open)
}
