package fairpgx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// staleSetup is a pool of one connection, a Conn that was acquired and
// released (stale), and the Conn that holds the same backend now (owner),
// inside a transaction that created a temporary table and put a row in
// it.
type staleSetup struct {
	t     *testing.T
	p     *fairpgx.Pool
	stale *fairpgx.Conn
	owner *fairpgx.Conn
	name  string    // the pool's name, which the errors must carry
	start time.Time // the owner's transaction start
}

// newStaleSetup acquires the one connection, lets before obtain handles
// from it, releases it, and gives it to the owner, who begins a
// transaction on it.
func newStaleSetup(t *testing.T, before func(ctx context.Context, c *fairpgx.Conn)) *staleSetup {
	t.Helper()
	cfg, app := testConfig(t, 1)
	cfg.AcquireTimeout = 2 * time.Second // a stale handle holding the connection shows as a timeout
	s := &staleSetup{t: t, p: newPool(t, cfg), name: app}
	ctx := context.Background()
	var err error
	if s.stale, err = s.p.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	stalePID, err := backendPID(ctx, s.stale)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(ctx, s.stale)
	}
	s.stale.Release()
	if s.owner, err = s.p.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.owner.Release)
	if pid, err := backendPID(ctx, s.owner); err != nil || pid != stalePID {
		t.Fatalf("the owner is on backend %d (%v), want the stale Conn's %d: the release was not clean", pid, err, stalePID)
	}
	for _, q := range []string{"BEGIN", "CREATE TEMP TABLE stale_probe (x int)", "INSERT INTO stale_probe VALUES (1)"} {
		if _, err := s.owner.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.owner.QueryRow(ctx, "SELECT now()").Scan(&s.start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.owner.Exec(context.Background(), "ROLLBACK") })
	return s
}

// ownerIntact fails the test unless the owner's transaction is the one it
// began, still open, with its temporary table holding its one row.
func (s *staleSetup) ownerIntact(after string) {
	s.t.Helper()
	ctx := context.Background()
	if st := s.owner.Conn().PgConn().TxStatus(); st != 'T' {
		s.t.Fatalf("after the stale %s: the owner's transaction status is %q, want 'T'", after, st)
	}
	var start time.Time
	var n int
	err := s.owner.QueryRow(ctx, "SELECT now(), (SELECT count(*) FROM stale_probe)").Scan(&start, &n)
	if err != nil || !start.Equal(s.start) || n != 1 {
		s.t.Fatalf("after the stale %s: the owner's transaction began at %v (want %v), its table has %d rows (want 1), err %v",
			after, start, s.start, n, err)
	}
}

// released fails the test unless err says that a released connection was
// used, naming the pool.
func (s *staleSetup) released(what string, err error) {
	s.t.Helper()
	if !errors.Is(err, fairpgx.ErrConnReleased) || !strings.Contains(fmt.Sprint(err), s.name) {
		s.t.Errorf("stale %s: %v, want an error wrapping fairpgx.ErrConnReleased that names pool %q", what, err, s.name)
	}
	s.ownerIntact(what)
}

// panics fails the test unless f panics with an error wrapping
// ErrConnReleased.
func (s *staleSetup) panics(what string, f func()) {
	s.t.Helper()
	var r any
	func() {
		defer func() { r = recover() }()
		f()
	}()
	if err, ok := r.(error); !ok || !errors.Is(err, fairpgx.ErrConnReleased) {
		s.t.Errorf("stale %s: recovered %v, want a panic with an error wrapping fairpgx.ErrConnReleased", what, r)
	}
	s.ownerIntact(what)
}

// TestStaleConnFailsAndTouchesNothing: every method of a Conn kept after
// Release fails, and the caller who holds its connection now keeps its
// transaction and temporary table.
func TestStaleConnFailsAndTouchesNothing(t *testing.T) {
	s := newStaleSetup(t, nil)
	ctx := context.Background()
	c := s.stale

	_, err := c.Exec(ctx, "ROLLBACK")
	s.released("Exec", err)

	rows, err := c.Query(ctx, "ROLLBACK")
	s.released("Query", err)
	rows.Close()
	s.released("Query's rows", rows.Err())

	s.released("QueryRow", c.QueryRow(ctx, "ROLLBACK").Scan())

	b := &pgx.Batch{}
	b.Queue("ROLLBACK")
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	s.released("SendBatch's Exec", err)
	s.released("SendBatch's Close", br.Close())

	tx, err := c.Begin(ctx)
	s.released("Begin", err)
	if tx != nil {
		tx.Rollback(ctx)
	}
	tx, err = c.BeginTx(ctx, pgx.TxOptions{})
	s.released("BeginTx", err)
	if tx != nil {
		tx.Rollback(ctx)
	}

	_, err = c.CopyFrom(ctx, pgx.Identifier{"stale_probe"}, []string{"x"}, pgx.CopyFromRows([][]any{{2}}))
	s.released("CopyFrom", err)

	s.released("Ping", c.Ping(ctx))

	s.panics("Conn", func() { c.Conn() })

	c.Release() // a second Release does nothing, as documented
	s.ownerIntact("second Release")
}

// TestStaleConnHandlesFailAndTouchNothing: rows, a row, batch results and
// transactions obtained from a Conn fail once it is released, even when
// the server's transaction was ended behind the pgx.Tx's back so that the
// connection went back clean.
func TestStaleConnHandlesFailAndTouchNothing(t *testing.T) {
	var (
		rows pgx.Rows
		row  pgx.Row
		br   pgx.BatchResults
		tx   pgx.Tx
		sp   pgx.Tx
	)
	s := newStaleSetup(t, func(ctx context.Context, c *fairpgx.Conn) {
		var err error
		if rows, err = c.Query(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		row = c.QueryRow(ctx, "SELECT 1")
		var one int
		if err := row.Scan(&one); err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue("SELECT 1")
		br = c.SendBatch(ctx, b)
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		if tx, err = c.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if sp, err = tx.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		// The transaction ends on the server but not in pgx, so the
		// connection is clean when released and goes to the owner.
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()

	if rows.Next() {
		t.Error("stale rows: Next returned true")
	}
	s.released("Rows.Scan", rows.Scan())
	_, err := rows.Values()
	s.released("Rows.Values", err)
	if rows.FieldDescriptions() != nil || rows.RawValues() != nil || rows.TypeMap() != nil {
		t.Error("stale rows: FieldDescriptions, RawValues or TypeMap returned the connection's data")
	}
	s.panics("Rows.Conn", func() { rows.Conn() })
	rows.Close()

	var one int
	s.released("Row.Scan", row.Scan(&one))

	_, err = br.Exec()
	s.released("BatchResults.Exec", err)
	qrows, err := br.Query()
	s.released("BatchResults.Query", err)
	qrows.Close()
	s.released("BatchResults.QueryRow", br.QueryRow().Scan(&one))

	for _, x := range []struct {
		name string
		tx   pgx.Tx
	}{{"savepoint", sp}, {"transaction", tx}} {
		tx := x.tx
		txErr := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, pgx.ErrTxClosed) {
				t.Errorf("stale %s %s: %v, want an error wrapping pgx.ErrTxClosed too", x.name, what, err)
			}
			s.released(x.name+" "+what, err)
		}
		_, err := tx.Exec(ctx, "ROLLBACK")
		txErr("Exec", err)
		trows, err := tx.Query(ctx, "ROLLBACK")
		txErr("Query", err)
		trows.Close()
		txErr("QueryRow", tx.QueryRow(ctx, "ROLLBACK").Scan())
		b := &pgx.Batch{}
		b.Queue("ROLLBACK")
		tbr := tx.SendBatch(ctx, b)
		_, err = tbr.Exec()
		txErr("SendBatch", err)
		tbr.Close()
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"stale_probe"}, []string{"x"}, pgx.CopyFromRows([][]any{{2}}))
		txErr("CopyFrom", err)
		_, err = tx.Prepare(ctx, "stale", "ROLLBACK")
		txErr("Prepare", err)
		_, err = tx.Begin(ctx)
		txErr("Begin", err)
		s.panics(x.name+" Conn", func() { tx.Conn() })
		txErr("Rollback", tx.Rollback(ctx))
		txErr("Commit", tx.Commit(ctx))
	}
}

// TestTxFromPoolStaysClosedAfterCommit: a transaction that acquired its
// own connection keeps failing with pgx.ErrTxClosed once it ended, as in
// pgx, so that a deferred Rollback stays harmless, and touches nothing
// when the connection has another owner.
func TestTxFromPoolStaysClosedAfterCommit(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	p := newPool(t, cfg)
	ctx := context.Background()
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	owner, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Release()
	if _, err := owner.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	defer owner.Exec(ctx, "ROLLBACK")
	if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Rollback after Commit: %v, want pgx.ErrTxClosed", err)
	}
	if _, err := tx.Exec(ctx, "ROLLBACK"); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after Commit: %v, want pgx.ErrTxClosed", err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("Conn after Commit did not panic")
			}
		}()
		tx.Conn()
	}()
	if st := owner.Conn().PgConn().TxStatus(); st != 'T' {
		t.Errorf("the owner's transaction status is %q, want 'T'", st)
	}
}
