package fairpgx_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// TestWithContextSharedByErrgroup fans 80 Exec calls out over an errgroup
// on a With's context, inside its transaction. None may run outside the
// transaction, and none may fail with pgx's bare "conn busy": each either
// runs inside the transaction or fails at once with ErrConnInUse, naming
// the pool, the cause and the fix. Detach then runs them in parallel.
func TestWithContextSharedByErrgroup(t *testing.T) {
	cfg, app := testConfig(t, 4)
	p := newPool(t, cfg)
	admin := adminConn(t)
	table := tempTable(t, admin, app)
	ctx := context.Background()
	var ok, inUse int
	err := p.With(ctx, func(ctx context.Context, _ *pgx.Conn) error {
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			g, gctx := errgroup.WithContext(ctx)
			errs := make([]error, 80)
			for i := range errs {
				g.Go(func() error {
					_, errs[i] = p.Exec(gctx, "INSERT INTO "+table+" VALUES ($1, 'x')", i)
					return nil
				})
			}
			g.Wait()
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, fairpgx.ErrConnInUse):
					inUse++
					for _, want := range []string{app, "several goroutines", "Detach"} {
						if !strings.Contains(err.Error(), want) {
							t.Fatalf("error %q does not name %q", err, want)
						}
					}
				default:
					t.Fatalf("Exec failed otherwise: %v", err)
				}
			}
			// Outside the transaction nobody sees its rows yet.
			var outside int
			if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&outside); err != nil {
				return err
			}
			if outside != 0 {
				t.Errorf("%d rows visible outside the transaction: calls ran on other connections", outside)
			}
			return tx.Rollback(ctx)
		})
	})
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatal(err)
	}
	if ok+inUse != 80 || ok == 0 {
		t.Errorf("%d ran, %d refused; want 80 in all, at least one ran", ok, inUse)
	}
	var after int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&after); err != nil || after != 0 {
		t.Errorf("after rollback %d rows (%v): some calls escaped the transaction", after, err)
	}
	t.Logf("%d ran inside the transaction, %d refused with ErrConnInUse", ok, inUse)

	// Detach: each goroutine acquires its own connection, all succeed.
	err = p.With(ctx, func(ctx context.Context, _ *pgx.Conn) error {
		g, gctx := errgroup.WithContext(p.Detach(ctx))
		for i := range 80 {
			g.Go(func() error {
				_, err := p.Exec(gctx, "INSERT INTO "+table+" VALUES ($1, 'y')", i)
				return err
			})
		}
		return g.Wait()
	})
	if err != nil {
		t.Fatalf("detached fan-out: %v", err)
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&after); err != nil || after != 80 {
		t.Errorf("detached fan-out wrote %d rows (%v), want 80", after, err)
	}
}

// TestOpenRowsMakeConnInUse: on a With's connection, a call made while
// rows are open fails with ErrConnInUse, and works once they are closed.
func TestOpenRowsMakeConnInUse(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	p := newPool(t, cfg)
	err := p.With(context.Background(), func(ctx context.Context, _ *pgx.Conn) error {
		rows, err := p.Query(ctx, "SELECT generate_series(1, 3)")
		if err != nil {
			return err
		}
		if _, err := p.Exec(ctx, "SELECT 1"); !errors.Is(err, fairpgx.ErrConnInUse) {
			t.Errorf("Exec with rows open: %v, want ErrConnInUse", err)
		}
		rows.Close()
		_, err = p.Exec(ctx, "SELECT 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHoldersNameTheCallersFile(t *testing.T) {
	cfg, _ := testConfig(t, 2)
	cfg.TrackLeases = true
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	hs := p.Holders()
	if len(hs) != 1 || !strings.Contains(hs[0].Caller, "share_test.go:") {
		t.Fatalf("Holders %+v; want one whose Caller is in share_test.go", hs)
	}
	err = p.With(ctx, func(ctx context.Context, _ *pgx.Conn) error {
		hs := p.Holders()
		if len(hs) != 2 || !strings.Contains(hs[1].Caller, "share_test.go:") {
			t.Errorf("inside With: Holders %+v; want the second's Caller in share_test.go", hs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTimeoutErrorNamesTheCallersFile: fairpool's timeout error lists the
// holders as fairpool sees them. It names share_test.go only once the
// core's caller filter also skips fairpgx's frames (see the report).
func TestTimeoutErrorNamesTheCallersFile(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	cfg.TrackLeases = true
	cfg.AcquireTimeout = 50 * time.Millisecond
	p := newPool(t, cfg)
	c, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	_, err = p.Acquire(context.Background())
	if err == nil {
		t.Fatal("second Acquire on a pool of one succeeded")
	}
	if !strings.Contains(err.Error(), "share_test.go:") {
		t.Errorf("timeout error %q: want the holder named by share_test.go, not fairpgx's own file", err)
	}
}

func TestWaitersInOrder(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := range 2 {
		go func() {
			done <- p.AcquireFunc(ctx, func(*fairpgx.Conn) error { return nil })
		}()
		waitFor(t, "waiter queued", func() bool { return len(p.Waiters()) == i+1 })
		time.Sleep(20 * time.Millisecond)
	}
	ws := p.Waiters()
	if len(ws) != 2 || ws[0] <= ws[1] || ws[1] < 20*time.Millisecond {
		t.Errorf("Waiters %v; want two, the first waiting longer, the second at least 20ms", ws)
	}
	c.Release()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if ws := p.Waiters(); len(ws) != 0 {
		t.Errorf("Waiters after all served: %v", ws)
	}
	runtime.Gosched()
}
