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

// TestStaleSQLConnFailsAndTouchesNothing: a *sql.Conn kept after WithConn
// returned, the same *sql.Conn got by a nested WithConn, a statement
// prepared on it and the *sql.Tx of a WithTx all fail once their lease
// ended, while the next holder of the same session keeps its transaction,
// the row it inserted, its temporary table (PostgreSQL) and its user
// variable (MariaDB).
func TestStaleSQLConnFailsAndTouchesNothing(t *testing.T) {
	// The owner's state, read back after each stale call: "tx" when its
	// transaction is open, then what it made.
	state := map[string]string{
		"postgres": `SELECT CASE WHEN now() <> statement_timestamp() THEN 'tx' ELSE 'no tx' END || '|' ||
			(SELECT count(*) FROM stale_probe) || '|' || (SELECT count(*) FROM %s)`,
		"mariadb": `SELECT CONCAT_WS('|', IF(@@in_transaction, 'tx', 'no tx'), IFNULL(@stale_probe, 'none'), (SELECT COUNT(*) FROM %s))`,
	}
	setup := map[string][]string{
		"postgres": {"BEGIN", "CREATE TEMP TABLE stale_probe (x int)", "INSERT INTO stale_probe VALUES (1)", "INSERT INTO %s VALUES (1, 'owner')"},
		"mariadb":  {"SET @stale_probe = 1", "START TRANSACTION", "INSERT INTO %s VALUES (1, 'owner')"},
	}
	want := map[string]string{"postgres": "tx|1|1", "mariadb": "tx|1|1"}
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("SkipSessionReset=%v", skip), func(t *testing.T) {
			eachServer(t, func(t *testing.T, s *server) {
				p := s.newPool(t, sqlpool.Config{MaxSize: 1, SkipSessionReset: skip})
				table := s.table(t, s.open(t))
				ctx := context.Background()

				var (
					stale, nested *sql.Conn
					stmt          *sql.Stmt
					staleTx       *sql.Tx
					staleID       int64
				)
				err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
					stale = c
					if err := c.QueryRowContext(ctx, s.pidSQL).Scan(&staleID); err != nil {
						return err
					}
					var err error
					if stmt, err = c.PrepareContext(ctx, "ROLLBACK"); err != nil {
						return err
					}
					return p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
						nested = c
						return p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
							staleTx = tx
							return nil
						})
					})
				})
				if err != nil {
					t.Fatal(err)
				}

				err = p.WithConn(ctx, func(ctx context.Context, owner *sql.Conn) error {
					var id int64
					if err := owner.QueryRowContext(ctx, s.pidSQL).Scan(&id); err != nil {
						return err
					}
					if id != staleID {
						return fmt.Errorf("the owner got session %d, want the stale handles' %d: the session was not reused", id, staleID)
					}
					for _, q := range setup[s.name] {
						if strings.Contains(q, "%s") {
							q = fmt.Sprintf(q, table)
						}
						if _, err := owner.ExecContext(ctx, q); err != nil {
							return fmt.Errorf("%s: %w", q, err)
						}
					}
					defer owner.ExecContext(ctx, "ROLLBACK")
					intact := func(after string) error {
						var st string
						if err := owner.QueryRowContext(ctx, fmt.Sprintf(state[s.name], table)).Scan(&st); err != nil {
							return fmt.Errorf("after the stale %s: the owner's session: %w", after, err)
						}
						if st != want[s.name] {
							return fmt.Errorf("after the stale %s: the owner's session is %q, want %q", after, st, want[s.name])
						}
						return nil
					}
					if err := intact("nothing"); err != nil {
						return err
					}

					for _, c := range []struct {
						name string
						conn *sql.Conn
					}{{"*sql.Conn", stale}, {"nested *sql.Conn", nested}} {
						for _, call := range []struct {
							name string
							f    func() error
						}{
							{"ExecContext", func() error { _, err := c.conn.ExecContext(ctx, "ROLLBACK"); return err }},
							{"QueryContext", func() error {
								rows, err := c.conn.QueryContext(ctx, "ROLLBACK")
								if err == nil {
									rows.Close()
								}
								return err
							}},
							{"QueryRowContext", func() error { return c.conn.QueryRowContext(ctx, "ROLLBACK").Scan() }},
							{"BeginTx", func() error {
								tx, err := c.conn.BeginTx(ctx, nil)
								if err == nil {
									tx.Rollback()
								}
								return err
							}},
							{"PrepareContext", func() error {
								st, err := c.conn.PrepareContext(ctx, "ROLLBACK")
								if err == nil {
									st.Close()
								}
								return err
							}},
							{"PingContext", func() error { return c.conn.PingContext(ctx) }},
							{"Raw", func() error { return c.conn.Raw(func(any) error { return errors.New("Raw ran f") }) }},
							{"Close", c.conn.Close},
						} {
							err := call.f()
							if !errors.Is(err, sql.ErrConnDone) {
								t.Errorf("stale %s.%s: %v, want sql.ErrConnDone", c.name, call.name, err)
							}
							if err := intact(c.name + "." + call.name); err != nil {
								return err
							}
						}
					}

					_, err := stmt.ExecContext(ctx)
					if !errors.Is(err, sql.ErrConnDone) {
						t.Errorf("statement prepared on the stale *sql.Conn: %v, want sql.ErrConnDone", err)
					}
					if err := intact("statement"); err != nil {
						return err
					}

					_, err = staleTx.ExecContext(ctx, "ROLLBACK")
					if !errors.Is(err, sql.ErrTxDone) {
						t.Errorf("stale *sql.Tx: %v, want sql.ErrTxDone", err)
					}
					if err := staleTx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
						t.Errorf("stale *sql.Tx Rollback: %v, want sql.ErrTxDone", err)
					}
					return intact("*sql.Tx")
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
