package sqlpool_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/fairpool/fairpool/sqlpool"
)

// TestDirectUseBlocksOnceThePoolIsFull is the trap the package doc
// describes: with the Pool holding MaxSize connections, all idle, a
// statement run on the DB directly waits until its context ends.
func TestDirectUseBlocksOnceThePoolIsFull(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	ctx := context.Background()
	if err := p.WithConn(ctx, func(context.Context, *sql.Conn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Idle != 1 || s.InUse != 0 {
		t.Fatalf("idle %d, in use %d; want the one connection idle in the Pool", s.Idle, s.InUse)
	}
	// Before its Pool holds a connection, a DB is usable directly.
	db2, _ := newFakeDB(t)
	newPool(t, db2, sqlpool.Config{MaxSize: 1})
	var id int
	if err := db2.QueryRowContext(ctx, "SELECT id").Scan(&id); err != nil {
		t.Fatalf("direct use of a DB whose Pool has no connection yet: %v", err)
	}

	const limit = 100 * time.Millisecond
	qctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	err := db.QueryRowContext(qctx, "SELECT id").Scan(&id)
	if waited := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || waited < limit {
		t.Errorf("direct query: %v after %v, want context.DeadlineExceeded after %v", err, waited, limit)
	}
	// The Pool itself is unaffected.
	if _, err := sessionID(ctx, p); err != nil {
		t.Errorf("WithConn after the blocked direct query: %v", err)
	}
}
