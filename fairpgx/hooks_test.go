package fairpgx_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// The hooks run at pgxpool's moments, with pgxpool's consequences.

func TestConnectHooks(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	var before, after atomic.Int32
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if before.Add(1) == 2 {
			return errors.New("no second connection")
		}
		cc.RuntimeParams["search_path"] = "from_before_connect"
		return nil
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		after.Add(1)
		_, err := conn.Exec(ctx, "SET application_name = application_name") // the connection works here
		return err
	}
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	var sp string
	if err := c.QueryRow(ctx, "SHOW search_path").Scan(&sp); err != nil || sp != "from_before_connect" {
		t.Errorf("search_path %q (%v): BeforeConnect's change to the ConnConfig copy not used", sp, err)
	}
	if cfg.ConnConfig.RuntimeParams["search_path"] != "" || p.Config().ConnConfig.RuntimeParams["search_path"] != "" {
		t.Error("BeforeConnect changed the pool's own ConnConfig, not a copy")
	}
	// The second connect fails in BeforeConnect: that acquire gets the error.
	if _, err := p.Acquire(ctx); err == nil || !contains(err, "no second connection") {
		t.Errorf("second Acquire: %v, want BeforeConnect's error", err)
	}
	if before.Load() != 2 || after.Load() != 1 {
		t.Errorf("BeforeConnect ran %d times, AfterConnect %d; want 2 and 1", before.Load(), after.Load())
	}
}

func TestAfterConnectErrorFailsAcquire(t *testing.T) {
	cfg, app := testConfig(t, 2)
	cfg.AfterConnect = func(context.Context, *pgx.Conn) error { return errors.New("types not registered") }
	p := newPool(t, cfg)
	if _, err := p.Acquire(context.Background()); err == nil || !contains(err, "types not registered") {
		t.Fatalf("Acquire: %v, want AfterConnect's error", err)
	}
	waitBackends(t, app, 0) // the connection AfterConnect refused was closed
}

func TestPrepareConnOutcomes(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	errHook := errors.New("hook says no")
	var answer atomic.Value // func(n int) (bool, error), n = calls so far
	var calls atomic.Int32
	cfg.PrepareConn = func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		return answer.Load().(func(int) (bool, error))(int(calls.Add(1)))
	}
	cfg.BeforeAcquire = func(context.Context, *pgx.Conn) bool {
		t.Error("BeforeAcquire ran although PrepareConn is set")
		return false
	}
	p := newPool(t, cfg)
	ctx := context.Background()

	step := func(name string, fn func(int) (bool, error), wantErr error, wantOpens, wantIdle int64) {
		t.Helper()
		calls.Store(0)
		answer.Store(fn)
		opens := p.Stat().NewConnsCount()
		c, err := p.Acquire(ctx)
		if !errors.Is(err, wantErr) {
			t.Errorf("%s: Acquire: %v, want %v", name, err, wantErr)
		}
		if c != nil {
			c.Release()
		}
		if got := p.Stat().NewConnsCount() - opens; got != wantOpens {
			t.Errorf("%s: %d connections opened, want %d", name, got, wantOpens)
		}
		waitFor(t, name+": idle connections", func() bool { return int64(p.Stat().IdleConns()) == wantIdle })
	}
	answer.Store(func(int) (bool, error) { return true, nil })
	warm, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	warm.Release()
	step("true, nil", func(int) (bool, error) { return true, nil }, nil, 0, 1)
	step("true, error: back to the pool", func(int) (bool, error) { return true, errHook }, errHook, 0, 1)
	step("false, error: closed", func(int) (bool, error) { return false, errHook }, errHook, 0, 0)
	step("false, nil: closed, another tried", func(n int) (bool, error) { return n > 1, nil }, nil, 2, 1)
	calls.Store(0)
	answer.Store(func(int) (bool, error) { return false, nil })
	if _, err := p.Acquire(ctx); err == nil || !contains(err, "too many failed attempts") {
		t.Errorf("always false: %v, want pgxpool's too many failed attempts", err)
	}
	if n := calls.Load(); n != 3 { // MaxConns + 1
		t.Errorf("always false: PrepareConn ran %d times, want MaxConns+1 = 3", n)
	}
}

func TestBeforeAcquireFalseReplacesConnection(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	var refuse sync.Map // *pgx.Conn -> true
	cfg.BeforeAcquire = func(ctx context.Context, conn *pgx.Conn) bool {
		_, bad := refuse.Load(conn)
		return !bad
	}
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Conn()
	refuse.Store(first, true)
	c.Release()
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if c.Conn() == first {
		t.Error("BeforeAcquire returned false, yet that connection was handed out")
	}
	if !first.IsClosed() {
		waitFor(t, "refused connection closed", first.IsClosed)
	}
}

func TestAfterReleaseAndBeforeClose(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	var keep atomic.Bool
	var released, closed atomic.Int32
	var closedConn atomic.Pointer[pgx.Conn]
	cfg.AfterRelease = func(conn *pgx.Conn) bool { released.Add(1); return keep.Load() }
	cfg.BeforeClose = func(conn *pgx.Conn) {
		if conn.IsClosed() {
			t.Error("BeforeClose got a connection already closed")
		}
		closed.Add(1)
		closedConn.Store(conn)
	}
	p := newPool(t, cfg)
	ctx := context.Background()
	keep.Store(true)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	if released.Load() != 1 || p.Stat().IdleConns() != 1 || closed.Load() != 0 {
		t.Fatalf("AfterRelease true: ran %d, idle %d, closed %d; want 1, 1, 0", released.Load(), p.Stat().IdleConns(), closed.Load())
	}
	keep.Store(false)
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Conn()
	c.Release()
	waitFor(t, "BeforeClose after AfterRelease false", func() bool { return closed.Load() == 1 })
	if closedConn.Load() != conn || p.Stat().IdleConns() != 0 {
		t.Errorf("BeforeClose got %p, want the released %p; idle %d", closedConn.Load(), conn, p.Stat().IdleConns())
	}
	// A connection left in a transaction is closed without AfterRelease.
	before := released.Load()
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	c.Release()
	waitFor(t, "BeforeClose of the connection left in a transaction", func() bool { return closed.Load() == 2 })
	if released.Load() != before {
		t.Error("AfterRelease ran on a connection left in a transaction")
	}
}

func TestShouldPingSeesIdleDuration(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	var last atomic.Pointer[fairpgx.ShouldPingParams]
	var pings atomic.Bool
	cfg.ShouldPing = func(ctx context.Context, sp fairpgx.ShouldPingParams) bool {
		last.Store(&sp)
		return pings.Load()
	}
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	const idle = 150 * time.Millisecond
	time.Sleep(idle)
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sp := last.Load()
	if sp == nil || sp.Conn != c.Conn() || sp.IdleDuration < idle {
		t.Errorf("ShouldPing got %+v; want this connection, idle >= %v", sp, idle)
	}
	// A ping that fails (the backend is gone) replaces the connection.
	pid := c.Conn().PgConn().PID()
	dead := c.Conn()
	c.Release()
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	pings.Store(true)
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after the idle connection died: %v", err)
	}
	defer c.Release()
	if c.Conn() == dead {
		t.Error("ShouldPing asked for a ping, yet the dead connection was handed out")
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }
