package sqlpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Dialect says which server a Pool talks to, which decides how a session
// is cleaned between leases.
type Dialect int

const (
	// AutoDialect picks the dialect from the driver's package:
	// github.com/jackc/pgx and github.com/lib/pq mean Postgres,
	// github.com/go-sql-driver/mysql means MySQL, anything else OtherDialect.
	AutoDialect Dialect = iota

	// Postgres resets the session with one round trip per lease, running
	// the parts of DISCARD ALL that keep the driver's own prepared
	// statements: CLOSE ALL, SET SESSION AUTHORIZATION DEFAULT, RESET ALL,
	// UNLISTEN *, pg_advisory_unlock_all(), DISCARD TEMP, DISCARD SEQUENCES.
	// A session left in a transaction is closed instead (pgx's stdlib
	// driver reports it; for other drivers the same message checks first).
	// Statements made with SQL PREPARE carry over: DEALLOCATE them.
	Postgres

	// MySQL (and MariaDB) has no SQL that resets a session, so the session is
	// compared, with one round trip per lease, to what it was when the
	// connection was opened: a transaction left open, a changed setting
	// (autocommit, sql_mode, time_zone, character sets and collation,
	// isolation level, read-only, foreign_key_checks, unique_checks,
	// lc_time_names, group_concat_max_len, statement time limit, current
	// database) or, on MariaDB, a user variable closes the connection.
	// Temporary tables and GET_LOCK locks are not seen: drop and release them
	// before returning.
	MySQL

	// OtherDialect relies on the driver's own check only (see
	// Config.SkipSessionReset); set Config.Reset to clean sessions.
	OtherDialect
)

// String returns the constant's name.
func (d Dialect) String() string {
	switch d {
	case AutoDialect:
		return "AutoDialect"
	case Postgres:
		return "Postgres"
	case MySQL:
		return "MySQL"
	case OtherDialect:
		return "OtherDialect"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// dialectOf names the dialect of a driver by its package path, so sqlpool
// needs none of the drivers to build. checksTx says the driver's
// ResetSession refuses a session left in a transaction.
func dialectOf(d driver.Driver) (_ Dialect, checksTx bool) {
	t := reflect.TypeOf(d)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return OtherDialect, false
	}
	switch path := t.PkgPath(); {
	case strings.HasPrefix(path, "github.com/jackc/pgx/v5/"):
		return Postgres, true
	case strings.HasPrefix(path, "github.com/jackc/pgx/"), path == "github.com/lib/pq":
		return Postgres, false
	case path == "github.com/go-sql-driver/mysql":
		return MySQL, false
	}
	return OtherDialect, false
}

// postgresReset is the parts of DISCARD ALL that keep the driver's own
// prepared statements (DEALLOCATE ALL would drop those from under it), in
// one simple-protocol message: one round trip.
const postgresReset = `CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;
SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES`

// postgresTxCheck goes first when the driver does not itself refuse a
// session left in a transaction (pgx's does): it fails inside a
// transaction block, where now() is the block's start, not this
// statement's. The text is cast to int only to fail with a message that
// says why.
const postgresTxCheck = `SELECT CASE WHEN now() <> statement_timestamp()
	THEN ('sqlpool: session left a transaction open at ' || now())::int END; `

// clean decides whether s's connection may be reused, and resets its
// session if so. cleanErr non-nil means it must be closed; broken means it
// no longer works (as opposed to holding state that cannot be cleaned).
// failed says fn returned an error, which is when telling the two apart is
// worth a ping. ctx bounds it all.
func (p *Pool) clean(ctx context.Context, s *session, failed bool) (broken bool, cleanErr error) {
	cleanErr = raw(s.c.conn, func(dc any) error {
		if err := checkDriver(ctx, dc); err != nil || p.cfg.SkipSessionReset {
			return err
		}
		return p.resetSession(ctx, dc, s.c.baseline)
	})
	if cleanErr == nil && p.cfg.Reset != nil {
		cleanErr = p.cfg.Reset(ctx, s.c.conn)
	}
	if cleanErr != nil && failed {
		// The driver's check does not say why (pgx's answers ErrBadConn for
		// a closed connection and for an open transaction alike); a ping
		// does: it works in a transaction, aborted or not.
		broken = errors.Is(cleanErr, sql.ErrConnDone) || raw(s.c.conn, func(dc any) error {
			if pinger, ok := dc.(driver.Pinger); ok {
				return pinger.Ping(ctx)
			}
			return nil
		}) != nil
	}
	return broken, cleanErr
}

// raw runs f on conn's driver connection, under database/sql's lock for
// it. The error never unwraps to driver.ErrBadConn: database/sql would
// then close conn inside Raw, and closing waits for any transaction fn left
// open, which ends only when fn's context is cancelled, after clean.
func raw(conn *sql.Conn, f func(dc any) error) error {
	return conn.Raw(func(dc any) error {
		if err := f(dc); err != nil {
			return sessionError{err}
		}
		return nil
	})
}

type sessionError struct{ err error }

func (e sessionError) Error() string { return e.err.Error() }

// checkDriver asks the driver, through the interfaces database/sql itself
// uses before reusing a connection, whether dc is fit for reuse. With
// pgx's stdlib driver this catches a closed connection and a transaction
// left open; with go-sql-driver/mysql a closed connection, unread results,
// and a socket the server has closed. Neither costs a round trip.
func checkDriver(ctx context.Context, dc any) error {
	if v, ok := dc.(driver.Validator); ok && !v.IsValid() {
		return errors.New("sqlpool: the driver says the connection is not valid")
	}
	if r, ok := dc.(driver.SessionResetter); ok {
		if err := r.ResetSession(ctx); err != nil {
			return fmt.Errorf("sqlpool: the driver's session check failed (closed, or in a transaction): %v", err)
		}
	}
	return nil
}

// resetSession runs the dialect's reset on the driver connection dc, whose
// session began as baseline. An error means it must be closed.
func (p *Pool) resetSession(ctx context.Context, dc any, baseline string) error {
	switch p.dialect {
	case Postgres:
		x, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("sqlpool: the driver cannot execute without preparing; set SkipSessionReset")
		}
		q := postgresReset
		if !p.driverChecksTx {
			q = postgresTxCheck + q
		}
		_, err := x.ExecContext(ctx, q, nil)
		return err
	case MySQL:
		q := p.mysql.Load()
		if q == nil {
			return nil // opened with SkipSessionReset; cannot happen
		}
		inTx, fp, err := q.fingerprint(ctx, dc)
		switch {
		case err != nil:
			return err
		case inTx:
			return errors.New("sqlpool: session left a transaction open")
		case fp != baseline:
			return fmt.Errorf("sqlpool: session state changed: was %q, now %q", baseline, fp)
		}
	}
	return nil
}

// mysqlQuery reads what a MySQL or MariaDB session has that a lease could
// change.
type mysqlQuery struct {
	sql string
}

// The settings compared; the names that differ between servers are filled
// in by mysqlQueryFor.
const mysqlSettings = `IFNULL(@@session.autocommit, ''), IFNULL(@@session.sql_mode, ''), IFNULL(@@session.time_zone, ''),
	IFNULL(@@session.character_set_client, ''), IFNULL(@@session.character_set_connection, ''), IFNULL(@@session.character_set_results, ''),
	IFNULL(@@session.collation_connection, ''), IFNULL(@@session.%s, ''), IFNULL(@@session.%s, ''),
	IFNULL(@@session.foreign_key_checks, ''), IFNULL(@@session.unique_checks, ''), IFNULL(@@session.lc_time_names, ''),
	IFNULL(@@session.group_concat_max_len, ''), IFNULL(@@session.%s, ''), IFNULL(DATABASE(), '')`

func mysqlQueryFor(mariadb, userVars bool) *mysqlQuery {
	if !mariadb { // MySQL 8: no in_transaction, no user-variable view
		return &mysqlQuery{sql: "SELECT 0, CONCAT_WS('|', " +
			fmt.Sprintf(mysqlSettings, "transaction_isolation", "transaction_read_only", "max_execution_time") + ")"}
	}
	vars := "''"
	if userVars {
		vars = "(SELECT COUNT(*) FROM information_schema.USER_VARIABLES)"
	}
	return &mysqlQuery{sql: "SELECT @@in_transaction, CONCAT_WS('|', " +
		fmt.Sprintf(mysqlSettings, "tx_isolation", "tx_read_only", "max_statement_time") + ", " + vars + ")"}
}

func (q *mysqlQuery) fingerprint(ctx context.Context, dc any) (inTx bool, fp string, err error) {
	vals, err := queryRow(ctx, dc, q.sql)
	if err != nil {
		return false, "", err
	}
	return asString(vals[0]) != "0", asString(vals[1]), nil
}

// mysqlBaseline records conn's session as opened. The first call picks the
// query for the server: MariaDB or MySQL, and whether MariaDB shows user
// variables (its user_variables plugin).
func (p *Pool) mysqlBaseline(ctx context.Context, conn *sql.Conn) (fp string, err error) {
	err = raw(conn, func(dc any) error {
		q := p.mysql.Load()
		if q == nil {
			vals, err := queryRow(ctx, dc, "SELECT VERSION()")
			if err != nil {
				return err
			}
			mariadb := strings.Contains(strings.ToLower(asString(vals[0])), "mariadb")
			_, err = queryRow(ctx, dc, "SELECT COUNT(*) FROM information_schema.USER_VARIABLES")
			q = mysqlQueryFor(mariadb, mariadb && err == nil)
			p.mysql.CompareAndSwap(nil, q)
		}
		_, fp, err = q.fingerprint(ctx, dc)
		return err
	})
	return fp, err
}

// queryRow runs q on the driver connection dc and returns its first row.
func queryRow(ctx context.Context, dc any, q string) ([]driver.Value, error) {
	qr, ok := dc.(driver.QueryerContext)
	if !ok {
		return nil, errors.New("sqlpool: the driver cannot query without preparing; set SkipSessionReset")
	}
	rows, err := qr.QueryContext(ctx, q, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vals := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(vals); err != nil {
		return nil, fmt.Errorf("sqlpool: the session query returned no row: %w", err)
	}
	return vals, nil
}

func asString(v driver.Value) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}
