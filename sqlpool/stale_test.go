package sqlpool_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool/sqlpool"
)

// TestStaleConnFailsAndTheSessionIsReused: the *sql.Conn of a finished
// lease fails with sql.ErrConnDone and sends nothing to the session, which
// the next lease gets under a *sql.Conn of its own.
func TestStaleConnFailsAndTheSessionIsReused(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	var stale *sql.Conn
	var first int
	err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		stale = c
		return c.QueryRowContext(ctx, "SELECT id").Scan(&first)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		if c == stale {
			return errors.New("the next lease got the stale *sql.Conn")
		}
		var id int
		if err := c.QueryRowContext(ctx, "SELECT id").Scan(&id); err != nil || id != first {
			t.Errorf("the next lease is on session %d (%v), want %d", id, err, first)
		}
		if _, err := stale.ExecContext(ctx, "STALE"); !errors.Is(err, sql.ErrConnDone) {
			t.Errorf("stale ExecContext: %v, want sql.ErrConnDone", err)
		}
		_, err := c.ExecContext(ctx, "OWNER")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if log := strings.Join(d.log(), ";"); strings.Contains(log, "STALE") || !strings.Contains(log, "OWNER") {
		t.Errorf("the sessions ran %q: want OWNER and no STALE", log)
	}
	if s := p.Stats(); s.Opens != 1 || s.ClosedReset+s.ClosedDiscard != 0 || d.open() != 1 {
		t.Errorf("opens %d, closed %d, driver connections open %d; want 1, 0 and 1", s.Opens, s.ClosedReset+s.ClosedDiscard, d.open())
	}
}

// TestRenewRefusesAnotherConnection: when the DB hands back another driver
// connection than the one released (here one the DB was left with by a
// direct use), the Pool closes it rather than take it for the session it
// checked.
func TestRenewRefusesAnotherConnection(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 2})
	ctx := context.Background()
	direct, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		return direct.Close() // leaves that driver connection idle in the DB
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil { // waits for the connection to close
		t.Fatal(err)
	}
	if s := p.Stats(); s.ClosedReset != 1 || d.open() != 0 {
		t.Errorf("closed by reset %d, driver connections open %d; want 1 and 0", s.ClosedReset, d.open())
	}
}

// TestRowsLeftOnAnotherContextBoundTheRelease: rows fn left open on a
// context of its own keep its *sql.Conn from closing; with
// SkipSessionReset nothing else notices them, so the release waits up to
// OpenTimeout, then closes the connection instead of hanging.
func TestRowsLeftOnAnotherContextBoundTheRelease(t *testing.T) {
	db, d := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1, SkipSessionReset: true, OpenTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	var rows *sql.Rows
	err := p.WithConn(ctx, func(_ context.Context, c *sql.Conn) error {
		var err error
		rows, err = c.QueryContext(context.Background(), "SELECT id")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rows.Close() // lets the *sql.Conn close, and then the Pool close its driver connection
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.ClosedReset != 1 || d.open() != 0 || db.Stats().OpenConnections != 0 {
		t.Errorf("closed by reset %d, driver connections open %d, DB connections %d; want 1, 0 and 0",
			s.ClosedReset, d.open(), db.Stats().OpenConnections)
	}
}
