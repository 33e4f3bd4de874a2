package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fairpool/fairpool/sqlpool"
)

func TestDialectFromDriver(t *testing.T) {
	want := map[string]sqlpool.Dialect{"postgres": sqlpool.Postgres, "mariadb": sqlpool.MySQL}
	eachServer(t, func(t *testing.T, s *server) {
		p := s.newPool(t, sqlpool.Config{MaxSize: 1})
		if p.Dialect() != want[s.name] {
			t.Errorf("Dialect %v, want %v", p.Dialect(), want[s.name])
		}
	})
}

// TestWithConnAndWithTx: every method, on a real table.
func TestWithConnAndWithTx(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		p := s.newPool(t, sqlpool.Config{MaxSize: 2})
		table := s.table(t, s.open(t))
		ctx := context.Background()
		exec := func(ctx context.Context, q interface {
			ExecContext(context.Context, string, ...any) (sql.Result, error)
		}, stmt string) error {
			_, err := q.ExecContext(ctx, fmt.Sprintf(stmt, table))
			return err
		}
		rows := func() string {
			var vs []string
			err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				rs, err := c.QueryContext(ctx, "SELECT v FROM "+table+" ORDER BY id")
				if err != nil {
					return err
				}
				defer rs.Close()
				for rs.Next() {
					var v string
					rs.Scan(&v)
					vs = append(vs, v)
				}
				return rs.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			return strings.Join(vs, ",")
		}
		errBoom := errors.New("boom")

		// WithTx commits on nil; the nested WithTx and WithConn run in it.
		err := p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			if err := exec(ctx, tx, "INSERT INTO %s VALUES (1, 'one')"); err != nil {
				return err
			}
			if err := p.WithTx(ctx, nil, func(ctx context.Context, inner *sql.Tx) error {
				return exec(ctx, inner, "INSERT INTO %s VALUES (2, 'two')")
			}); err != nil {
				return err
			}
			return p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				var n int
				if err := c.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 2 {
					return fmt.Errorf("nested WithConn sees %d rows (%v), want the transaction's 2", n, err)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := rows(); got != "one,two" {
			t.Fatalf("after commit: %q", got)
		}

		// Rollback on error, on panic, and when a nested WithTx failed.
		if err := p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			exec(ctx, tx, "INSERT INTO %s VALUES (3, 'error')")
			return errBoom
		}); !errors.Is(err, errBoom) {
			t.Fatalf("WithTx: %v, want boom", err)
		}
		func() {
			defer func() { recover() }()
			p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
				exec(ctx, tx, "INSERT INTO %s VALUES (4, 'panic')")
				panic("oops")
			})
		}()
		err = p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			exec(ctx, tx, "INSERT INTO %s VALUES (5, 'doomed')")
			p.WithTx(ctx, nil, func(context.Context, *sql.Tx) error { return errBoom }) // swallowed
			return nil
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("doomed WithTx: %v, want boom", err)
		}
		if got := rows(); got != "one,two" {
			t.Fatalf("after three rollbacks: %q", got)
		}

		// A read-only transaction is read-only on the server.
		err = p.WithTx(ctx, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx *sql.Tx) error {
			return exec(ctx, tx, "INSERT INTO %s VALUES (6, 'ro')")
		})
		if err == nil {
			t.Errorf("insert in a read-only WithTx succeeded")
		}
		if st := p.Stats(); st.InUse != 0 || st.ClosedDiscard != 1 || st.ClosedReset != 0 {
			t.Errorf("in use %d, discarded %d, reset failed %d; want 0, 1 (the panic) and 0", st.InUse, st.ClosedDiscard, st.ClosedReset)
		}
	})
}

// leakStep is one lease that may leave something behind, and whether the
// next lease must be on a new session (discarded) or the same (reset).
type leakStep struct {
	name    string
	stmts   []string
	beginTx bool // leave a *sql.Tx open on fn's context
	discard bool
}

// TestSessionStateDoesNotLeak: on one connection, each step changes the
// session and the next lease looks for the change. A session that could
// not be cleaned is closed by the pool's reset, and counted so
// (Stats.ClosedReset), not as discarded by the caller.
func TestSessionStateDoesNotLeak(t *testing.T) {
	steps := map[string][]leakStep{
		"postgres": {
			{"settings, temp table, advisory lock, LISTEN", []string{"SET search_path TO pg_catalog", "SET TIME ZONE 'Asia/Tokyo'",
				"CREATE TEMP TABLE leak (x int)", "SELECT pg_advisory_lock(4242)", "LISTEN leak", "SET ROLE pg_monitor"}, false, false},
			{"BEGIN left open", []string{"BEGIN", "INSERT INTO %s VALUES (1, 'leak')"}, false, true},
			{"sql.Tx left open", []string{"INSERT INTO %s VALUES (2, 'leak')"}, true, true},
			{"aborted transaction", []string{"BEGIN", "SELECT 1/0"}, false, true},
			{"clean", []string{"SELECT 1"}, false, false},
		},
		"mariadb": {
			{"time_zone", []string{"SET time_zone = '+09:00'"}, false, true},
			{"sql_mode", []string{"SET sql_mode = ''"}, false, true},
			{"autocommit", []string{"SET autocommit = 0"}, false, true},
			{"user variable", []string{"SET @leak = 1"}, false, true},
			{"USE", []string{"USE information_schema"}, false, true},
			{"START TRANSACTION left open", []string{"START TRANSACTION", "INSERT INTO %s VALUES (1, 'leak')"}, false, true},
			{"sql.Tx left open", []string{"INSERT INTO %s VALUES (2, 'leak')"}, true, true},
			{"clean", []string{"SELECT 1"}, false, false},
		},
	}
	check := map[string]string{
		"postgres": `SELECT current_setting('search_path') || '|' || current_setting('TimeZone') || '|' || current_user || '|' ||
			(SELECT count(*) FROM pg_class WHERE relname = 'leak' AND relpersistence = 't') || '|' ||
			(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) || '|' ||
			(SELECT count(*) FROM pg_listening_channels()) || '|' || (SELECT count(*) FROM %s)`,
		"mariadb": `SELECT CONCAT_WS('|', @@session.time_zone, @@session.sql_mode, @@session.autocommit, IFNULL(@leak, 'none'),
			DATABASE(), @@in_transaction, (SELECT COUNT(*) FROM test.%s))`,
	}
	eachServer(t, func(t *testing.T, s *server) {
		p := s.newPool(t, sqlpool.Config{MaxSize: 1})
		table := s.table(t, s.open(t))
		ctx := context.Background()
		state := func() (id int64, st string) {
			t.Helper()
			err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				return c.QueryRowContext(ctx, s.pidSQL+", ("+fmt.Sprintf(check[s.name], table)+")").Scan(&id, &st)
			})
			if err != nil {
				t.Fatal(err)
			}
			return id, st
		}
		prev, clean := state()
		var resets int64
		for _, step := range steps[s.name] {
			err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				var q interface {
					ExecContext(context.Context, string, ...any) (sql.Result, error)
				} = c
				if step.beginTx {
					tx, err := c.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					q = tx
				}
				for _, stmt := range step.stmts {
					if strings.Contains(stmt, "%s") {
						stmt = fmt.Sprintf(stmt, table)
					}
					if _, err := q.ExecContext(ctx, stmt); err != nil && !strings.Contains(stmt, "1/0") {
						return fmt.Errorf("%s: %w", stmt, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			id, st := state()
			if st != clean {
				t.Errorf("%s: the next lease sees %q, want %q", step.name, st, clean)
			}
			if (id != prev) != step.discard {
				t.Errorf("%s: session %d then %d; want a new session: %v", step.name, prev, id, step.discard)
			}
			prev = id
			if step.discard {
				resets++
			}
			if st := p.Stats(); st.ClosedReset != resets || st.ClosedDiscard != 0 {
				t.Errorf("%s: closed by failed reset %d, discarded %d; want %d and 0", step.name, st.ClosedReset, st.ClosedDiscard, resets)
			}
		}
	})
}

// TestSkipSessionResetKeepsSettings shows what SkipSessionReset gives up:
// settings carry over, as with database/sql, while a transaction left open
// (pgx's driver sees it) still closes the connection.
func TestSkipSessionResetKeepsSettings(t *testing.T) {
	s := postgres(t)
	p := s.newPool(t, sqlpool.Config{MaxSize: 1, SkipSessionReset: true})
	ctx := context.Background()
	var tz string
	err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		_, err := c.ExecContext(ctx, "SET TIME ZONE 'Asia/Tokyo'")
		return err
	})
	if err == nil {
		err = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
			return c.QueryRowContext(ctx, "SHOW TimeZone").Scan(&tz)
		})
	}
	if err != nil || tz != "Asia/Tokyo" {
		t.Errorf("TimeZone %q (%v): SkipSessionReset should not reset settings", tz, err)
	}
	before, _ := s.sessionID(ctx, p)
	p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error { _, err := c.ExecContext(ctx, "BEGIN"); return err })
	if after, err := s.sessionID(ctx, p); err != nil || after == before {
		t.Errorf("session %d then %d (%v): a transaction left open must still close the connection", before, after, err)
	}
}
