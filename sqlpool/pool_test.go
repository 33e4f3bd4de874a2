package sqlpool_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
)

func newPool(t *testing.T, db *sql.DB, cfg sqlpool.Config) *sqlpool.Pool {
	t.Helper()
	if cfg.AcquireTimeout == 0 {
		cfg.AcquireTimeout = 2 * time.Second // a deadlock shows as a timeout, not a hung test
	}
	p, err := sqlpool.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s := p.Stats(); s.InUse != 0 {
			t.Errorf("%d connections leased at the end of the test", s.InUse)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return p
}

func TestNewTakesOverTheDBLimits(t *testing.T) {
	db, _ := newFakeDB(t)
	db.SetMaxIdleConns(5)
	p := newPool(t, db, sqlpool.Config{MaxSize: 3})
	if s := db.Stats(); s.MaxOpenConnections != 3 {
		t.Errorf("DB MaxOpenConnections %d, want MaxSize 3", s.MaxOpenConnections)
	}
	if p.Dialect() != sqlpool.OtherDialect || p.DB() != db {
		t.Errorf("Dialect %v, DB %p; want OtherDialect for an unknown driver, and the DB given", p.Dialect(), p.DB())
	}
	for _, tc := range []struct {
		db   *sql.DB
		cfg  sqlpool.Config
		want string
	}{
		{nil, sqlpool.Config{MaxSize: 1}, "db must not be nil"},
		{db, sqlpool.Config{}, "MaxSize"},
		{db, sqlpool.Config{MaxSize: 1, Dialect: 9}, "Dialect"},
	} {
		if _, err := sqlpool.New(tc.db, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestWithConnNestsOnOneConnection(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	err := p.WithConn(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return p.WithConn(ctx, func(ctx context.Context, inner *sql.Conn) error {
			if inner != conn {
				return errors.New("nested WithConn got another *sql.Conn")
			}
			return p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
				return p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
					if c != conn {
						return errors.New("WithConn inside WithTx got another *sql.Conn")
					}
					return nil
				})
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Acquires != 1 || s.Opens != 1 {
		t.Errorf("acquires %d, opens %d; want 1 and 1", s.Acquires, s.Opens)
	}
	if err := hasAll(d.log(), "1:BEGIN", "1:COMMIT"); err != nil {
		t.Error(err)
	}
}

func TestWithTxCommitsRollsBackAndPanics(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	errBoom := errors.New("boom")

	if err := p.WithTx(ctx, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "ok")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		tx.ExecContext(ctx, "undone")
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("WithTx: %v, want boom", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "oops" {
				t.Errorf("recovered %v, want the panic", r)
			}
		}()
		p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			tx.ExecContext(ctx, "panicked")
			panic("oops")
		})
	}()
	closesDone(t, p)
	want := "1:BEGIN ro=true;1:ok;1:COMMIT;1:BEGIN ro=false;1:undone;1:ROLLBACK;1:BEGIN ro=false;1:panicked;1:ROLLBACK"
	if got := strings.Join(d.log(), ";"); got != want {
		t.Errorf("statements:\ngot  %s\nwant %s", got, want)
	}
	if s := p.Stats(); s.ClosedDiscard != 1 || s.ClosedReset != 0 || s.Open != 0 {
		t.Errorf("after a panic: discarded %d, reset failed %d, open %d; want the connection closed as discarded", s.ClosedDiscard, s.ClosedReset, s.Open)
	}
}

// TestNestedWithTxJoinsAndDooms: a nested WithTx runs in the outer
// transaction; when it fails, the outer one rolls back even if the error
// was swallowed in between.
func TestNestedWithTxJoinsAndDooms(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	errInner := errors.New("inner failed")

	err := p.WithTx(ctx, nil, func(ctx context.Context, outer *sql.Tx) error {
		if err := p.WithTx(ctx, nil, func(ctx context.Context, inner *sql.Tx) error {
			if inner != outer {
				return errors.New("nested WithTx did not join")
			}
			_, err := inner.ExecContext(ctx, "inner work")
			return err
		}); err != nil {
			return err
		}
		p.WithTx(ctx, nil, func(context.Context, *sql.Tx) error { return errInner }) // error swallowed
		return nil
	})
	if !errors.Is(err, errInner) || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("outer WithTx: %v; want a rollback naming the inner error", err)
	}
	err = p.WithTx(ctx, nil, func(ctx context.Context, _ *sql.Tx) error {
		return p.WithTx(ctx, &sql.TxOptions{ReadOnly: true}, func(context.Context, *sql.Tx) error { return nil })
	})
	if !errors.Is(err, sqlpool.ErrNestedTxOptions) {
		t.Errorf("nested WithTx with other options: %v, want ErrNestedTxOptions", err)
	}
	want := "1:BEGIN ro=false;1:inner work;1:ROLLBACK;1:BEGIN ro=false;1:ROLLBACK"
	if got := strings.Join(d.log(), ";"); got != want {
		t.Errorf("statements:\ngot  %s\nwant %s", got, want)
	}
}

// TestBrokenConnectionIsReportedAndClosed: a call that finds the server
// gone fails with an error that says the connection broke, and the next
// lease is on a new session.
func TestBrokenConnectionIsReportedAndClosed(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1, Name: "orders"})
	ctx := context.Background()
	err := p.WithConn(ctx, func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "BREAK")
		return fmt.Errorf("saving: %w", err)
	})
	if !errors.Is(err, fairpool.ErrBadConn) || !strings.HasPrefix(err.Error(), `sqlpool: pool "orders": connection broke: saving: `) {
		t.Errorf("got %v; want a broken-connection error wrapping fn's", err)
	}
	id, err := sessionID(ctx, p)
	if err != nil || id != 2 {
		t.Errorf("next lease on session %d (%v), want a new one, 2", id, err)
	}
	if n := d.open(); n != 1 {
		t.Errorf("%d driver connections open, want 1: the broken one closed", n)
	}
	if s := p.Stats(); s.ClosedDiscard != 1 || s.ClosedReset != 0 {
		t.Errorf("discarded %d, reset failed %d; want the broken connection (ErrBadConn) counted as discarded", s.ClosedDiscard, s.ClosedReset)
	}
}

// TestSessionLeftInTransactionIsClosed: a transaction begun on fn's
// context and left open is rolled back and its session not reused; an
// error that is not about the connection keeps the session.
func TestSessionLeftInTransactionIsClosed(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	errBoom := errors.New("boom")
	steps := []struct {
		name   string
		fn     func(context.Context, *sql.Conn) error
		sameID bool
	}{
		{"clean", func(context.Context, *sql.Conn) error { return nil }, true},
		{"plain error", func(context.Context, *sql.Conn) error { return errBoom }, true},
		{"sql.Tx left open", func(ctx context.Context, c *sql.Conn) error { _, err := c.BeginTx(ctx, nil); return err }, false},
		{"BEGIN statement left open", func(ctx context.Context, c *sql.Conn) error { _, err := c.ExecContext(ctx, "BEGIN"); return err }, false},
	}
	prev, err := sessionID(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if err := p.WithConn(ctx, s.fn); err != nil && !errors.Is(err, errBoom) {
			t.Fatalf("%s: %v", s.name, err)
		}
		id, err := sessionID(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if (id == prev) != s.sameID {
			t.Errorf("%s: session %d then %d; want the same: %v", s.name, prev, id, s.sameID)
		}
		prev = id
	}
	if err := hasAll(d.log(), "1:BEGIN ro=false;1:ROLLBACK;2:BEGIN"); err != nil {
		t.Errorf("the abandoned sql.Tx was not rolled back: %v", err)
	}
	// Closed because the session check failed: the pool's reset, not a
	// discard by the caller.
	if s := p.Stats(); s.ClosedReset != 2 || s.ClosedDiscard != 0 {
		t.Errorf("reset failed %d, discarded %d; want the two sessions left in a transaction counted as failed resets", s.ClosedReset, s.ClosedDiscard)
	}
}

func TestResetHookFailureClosesTheSession(t *testing.T) {
	db, _ := newFakeDB(t)
	var calls int
	p := newPool(t, db, sqlpool.Config{MaxSize: 1, Reset: func(ctx context.Context, c *sql.Conn) error {
		calls++
		if calls == 2 {
			return errors.New("cannot reset")
		}
		return nil
	}})
	ctx := context.Background()
	var ids []int
	for range 3 {
		id, err := sessionID(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if fmt.Sprint(ids) != "[1 1 2]" || calls != 3 {
		t.Errorf("sessions %v after %d resets; want [1 1 2]: the failed reset closes session 1", ids, calls)
	}
	if s := p.Stats(); s.ClosedReset != 1 || s.ClosedDiscard != 0 {
		t.Errorf("reset failed %d, discarded %d; want session 1 counted as a failed reset", s.ClosedReset, s.ClosedDiscard)
	}
}

// TestWaitersAreServedInArrivalOrder: database/sql would pick at random.
func TestWaitersAreServedInArrivalOrder(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	hold := make(chan struct{})
	held := make(chan struct{})
	go p.WithConn(ctx, func(context.Context, *sql.Conn) error { close(held); <-hold; return nil })
	<-held

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	const n = 8
	for i := range n {
		wg.Go(func() {
			p.WithConn(ctx, func(context.Context, *sql.Conn) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return nil
			})
		})
		for p.Stats().Waiting != i+1 { // queued before the next one starts
			time.Sleep(50 * time.Microsecond)
		}
	}
	close(hold)
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 2 3 4 5 6 7]" {
		t.Errorf("served in order %v, want arrival order", order)
	}
}

// closesDone waits until no close is under way: the core pool closes
// connections on goroutines of its own, off the caller's path.
func closesDone(t *testing.T, p *sqlpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Closing != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("closes did not finish: %+v", p.Stats())
		}
		runtime.Gosched()
	}
}
