package fairpgx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
)

// tempTable creates a table for the test on an admin connection and drops
// it at the end. Tables are real (not TEMP) so every pool connection sees
// them.
func tempTable(t *testing.T, admin *pgx.Conn, app string) string {
	t.Helper()
	ctx := context.Background()
	name := pgx.Identifier{strings.ToLower(app)}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE TABLE "+name+" (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP TABLE "+name) })
	return name
}

func TestPoolMethodsOnServer(t *testing.T) {
	cfg, app := testConfig(t, 2)
	p := newPool(t, cfg)
	admin := adminConn(t)
	table := tempTable(t, admin, app)
	ctx := context.Background()
	inUse := func(step string) {
		t.Helper()
		if n := p.Stat().AcquiredConns(); n != 0 {
			t.Fatalf("after %s: %d connections still acquired", step, n)
		}
	}

	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	inUse("Ping")

	tag, err := p.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 'one'), (2, 'two')")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("Exec: %v, %v", tag, err)
	}
	inUse("Exec")

	n, err := p.CopyFrom(ctx, pgx.Identifier{strings.ToLower(app)}, []string{"id", "v"},
		pgx.CopyFromRows([][]any{{3, "three"}, {4, "four"}}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	inUse("CopyFrom")

	rows, err := p.Query(ctx, "SELECT v FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(vs, ",") != "one,two,three,four" {
		t.Fatalf("Query: %v, %v", vs, err)
	}
	inUse("Query")

	var v string
	if err := p.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = $1", 3).Scan(&v); err != nil || v != "three" {
		t.Fatalf("QueryRow: %q, %v", v, err)
	}
	if err := p.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = 99").Scan(&v); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("QueryRow of nothing: %v, want pgx.ErrNoRows", err)
	}
	inUse("QueryRow")

	b := &pgx.Batch{}
	b.Queue("UPDATE " + table + " SET v = 'uno' WHERE id = 1")
	b.Queue("SELECT count(*) FROM " + table)
	br := p.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := br.QueryRow().Scan(&count); err != nil || count != 4 {
		t.Fatalf("batch count: %d, %v", count, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	inUse("SendBatch")

	// pgx.BeginFunc on the pool: commit on nil, roll back on error.
	if err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE "+table+" SET v = 'dos' WHERE id = 2")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	if err := pgx.BeginTxFunc(ctx, p, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("BeginTxFunc: %v, want boom", err)
	}
	inUse("BeginFunc")
	rows, _ = p.Query(ctx, "SELECT v FROM "+table+" ORDER BY id")
	vs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(vs, ",") != "uno,dos,three,four" {
		t.Fatalf("after commit and rollback: %v, %v", vs, err)
	}

	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := backendPID(ctx, c); err != nil || pid == 0 {
		t.Fatalf("Conn.QueryRow: %d, %v", pid, err)
	}
	if n := p.Stat().AcquiredConns(); n != 1 {
		t.Fatalf("Acquire: %d acquired, want 1", n)
	}
	c.Release()
	c.Release() // second call does nothing
	inUse("Release")

	st := p.Stat()
	if st.MaxConns() != 2 || st.TotalConns() < 1 || st.TotalConns() > 2 || st.AcquireCount() < 10 || st.NewConnsCount() < 1 {
		t.Errorf("Stat: max %d total %d acquires %d new %d", st.MaxConns(), st.TotalConns(), st.AcquireCount(), st.NewConnsCount())
	}
}

func TestWithIsReentrantOnOneConnection(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	cfg.AcquireTimeout = 2 * time.Second // a deadlock would show as a timeout
	p := newPool(t, cfg)
	ctx := context.Background()

	err := p.With(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		outer, err := backendPID(ctx, conn)
		if err != nil {
			return err
		}
		tx, err := p.Begin(ctx) // on the held connection
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := p.Exec(ctx, "CREATE TEMP TABLE t (x int)"); err != nil {
			return err
		}
		return p.With(ctx, func(ctx context.Context, inner *pgx.Conn) error {
			if inner != conn {
				return errors.New("nested With got another *pgx.Conn")
			}
			for _, q := range []interface {
				QueryRow(context.Context, string, ...any) pgx.Row
			}{p, tx} {
				if pid, err := backendPID(ctx, q); err != nil || pid != outer {
					return fmt.Errorf("nested call ran on backend %d (%v), want %d", pid, err, outer)
				}
			}
			if s := inner.PgConn().TxStatus(); s != 'T' {
				return fmt.Errorf("nested call outside the transaction begun outside it: status %q", s)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Acquires != 1 || s.ClosedDiscard+s.ClosedReset != 0 {
		t.Errorf("acquires %d (want 1), closed %d (want 0)", s.Acquires, s.ClosedDiscard+s.ClosedReset)
	}
}

// TestReleaseClosesUncleanConnections: with one connection, each case
// leaves it unclean; the next lease must be on a new backend, outside any
// transaction, and a clean release must keep the backend.
func TestReleaseClosesUncleanConnections(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	p := newPool(t, cfg)
	ctx := context.Background()
	errBoom := errors.New("boom")
	cases := []struct {
		name    string
		discard bool
		use     func() error
	}{
		{"clean With", false, func() error {
			return p.With(ctx, func(ctx context.Context, c *pgx.Conn) error { _, err := c.Exec(ctx, "SELECT 1"); return err })
		}},
		{"error that is not ErrBadConn", false, func() error {
			return p.With(ctx, func(context.Context, *pgx.Conn) error { return errBoom })
		}},
		{"transaction left open", true, func() error {
			c, err := p.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			_, err = c.Exec(ctx, "BEGIN")
			return err
		}},
		{"Begin without Commit inside With", true, func() error {
			return p.With(ctx, func(ctx context.Context, _ *pgx.Conn) error { _, err := p.Begin(ctx); return err })
		}},
		{"rows left open", true, func() error {
			c, err := p.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			_, err = c.Query(ctx, "SELECT generate_series(1, 100000)")
			return err
		}},
		{"ErrBadConn from fn", true, func() error {
			err := p.With(ctx, func(context.Context, *pgx.Conn) error { return fmt.Errorf("x: %w", fairpool.ErrBadConn) })
			if !errors.Is(err, fairpool.ErrBadConn) {
				return fmt.Errorf("With returned %v", err)
			}
			return nil
		}},
		{"panic in fn", true, func() (err error) {
			defer func() {
				if r := recover(); r != "oops" {
					err = fmt.Errorf("recovered %v, want the panic's value", r)
				}
			}()
			return p.With(ctx, func(context.Context, *pgx.Conn) error { panic("oops") })
		}},
	}
	prev, err := backendPID(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		if err := tc.use(); err != nil && !errors.Is(err, errBoom) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var pid uint32
		err := p.With(ctx, func(ctx context.Context, c *pgx.Conn) error {
			if s := c.PgConn().TxStatus(); s != 'I' {
				t.Errorf("%s: the next lease has transaction status %q", tc.name, s)
			}
			return c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		})
		if err != nil {
			t.Fatalf("%s: next lease: %v", tc.name, err)
		}
		if tc.discard == (pid == prev) {
			t.Errorf("%s: backend %d then %d; want a new one: %v", tc.name, prev, pid, tc.discard)
		}
		prev = pid
	}
}

// TestResetSessionCleansSettings: with ResetSession the connection is kept
// (same backend) but nothing of the previous session shows, and pgx's
// statement cache still works after DISCARD ALL.
func TestResetSessionCleansSettings(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	cfg.ResetSession = true
	p := newPool(t, cfg)
	admin := adminConn(t)
	ctx := context.Background()

	var pid1 uint32
	err := p.With(ctx, func(ctx context.Context, c *pgx.Conn) error {
		for _, q := range []string{
			"SET search_path TO pg_catalog", "SET TIME ZONE 'Asia/Tokyo'", "CREATE TEMP TABLE leak (x int)",
			"SELECT pg_advisory_lock(424242)", "LISTEN leak", "PREPARE leak AS SELECT 1",
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return c.QueryRow(ctx, "SELECT pg_backend_pid() WHERE $1::int = 1", 1).Scan(&pid1) // cached statement
	})
	if err != nil {
		t.Fatal(err)
	}
	var pid2 uint32
	var path, tz string
	var temps, locks, prepared int
	err = p.With(ctx, func(ctx context.Context, c *pgx.Conn) error {
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid() WHERE $1::int = 1", 1).Scan(&pid2); err != nil {
			return fmt.Errorf("cached statement after DISCARD ALL: %w", err)
		}
		return c.QueryRow(ctx, `SELECT current_setting('search_path'), current_setting('TimeZone'),
			(SELECT count(*) FROM pg_class WHERE relname = 'leak' AND relpersistence = 't'),
			(SELECT count(*) FROM pg_prepared_statements WHERE name = 'leak')`).Scan(&path, &tz, &temps, &prepared)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242").Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if pid2 != pid1 {
		t.Errorf("backend %d then %d: the reset should keep the connection", pid1, pid2)
	}
	if path == "pg_catalog" || tz == "Asia/Tokyo" || temps != 0 || locks != 0 || prepared != 0 {
		t.Errorf("session leaked: search_path %q, TimeZone %q, temp tables %d, advisory locks %d, prepared %d", path, tz, temps, locks, prepared)
	}
}
