// Package sqlpool serves the connections of a *sql.DB to goroutines fairly,
// in strict arrival order, with bounded waits and reentrant use, on top of
// fairpool.
//
// database/sql hands a freed connection to a random waiter, so under load
// some requests wait many times longer than others. A Pool holds every
// connection of its DB as a *sql.Conn in a fairpool.Pool and gives them out
// itself, first come first served; New sets the DB's own limits so that
// database/sql never has a waiter or an idle connection to choose from.
//
//	db, err := sql.Open("pgx", "postgres://localhost/app")
//	...
//	pool, err := sqlpool.New(db, sqlpool.Config{MaxSize: 8, Name: "app"})
//	...
//	defer pool.Close(context.Background())
//
//	err = pool.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
//		_, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", 10, from)
//		if err != nil {
//			return err
//		}
//		return audit(ctx, pool) // may call pool.WithTx(ctx, ...): it joins this transaction
//	})
//
// # What the order covers
//
// The order covers every use that goes through WithConn and WithTx: the
// n-th caller to start waiting is the n-th to get a connection. It does not
// cover the DB used directly (db.QueryContext and friends): such calls take
// connections from the same MaxSize in database/sql's own way and can make
// Pool callers wait behind them. Statements prepared with db.Prepare also
// use the DB directly; prepare them on the *sql.Conn or *sql.Tx instead.
//
// # Direct use of the DB waits for a free slot
//
// New sets the DB's MaxOpenConns to MaxSize, and the Pool keeps the
// connections it opened, idle ones included. So once the Pool holds
// MaxSize connections, even all idle, a direct call on the same DB
// (db.QueryRowContext, db.ExecContext, db.BeginTx, db.Conn) blocks until
// its context ends, and fails then with the context's error; without a
// deadline it blocks forever. Go through WithConn or WithTx instead, or
// give direct calls a DB of their own (a second sql.Open). MaxSize is a
// bound on the connections to the server, which is why the Pool does not
// leave the DB a spare one.
//
// # Sessions do not leak
//
// A connection is given back only after its session has been checked and
// cleaned, so one lease never sees another's transaction or settings. fn's
// context ends when fn returns, and a transaction or rows fn left open on
// it are ended by database/sql. Then, before reuse:
//
//   - the driver's own check runs (driver.Validator and
//     driver.SessionResetter, what database/sql runs before reuse): with
//     pgx's stdlib driver it closes a connection left in a transaction or
//     already closed, with go-sql-driver/mysql one that is closed, has
//     unread results, or whose server end has gone;
//   - the dialect's reset runs (see Postgres and MySQL), one round trip,
//     unless Config.SkipSessionReset is set;
//   - Config.Reset runs, if set.
//
// A connection that fails any of these is closed, not reused, and counted
// in Stats.ClosedReset, as any connection whose reset fails is in
// fairpool; its slot goes to the next waiter, who gets a new connection.
// Stats.ClosedDiscard counts instead the connections closed without a
// check: those fn reported bad (an error wrapping fairpool.ErrBadConn,
// driver.ErrBadConn or sql.ErrConnDone) or panicked on.
//
// # A finished lease's handles fail
//
// The *sql.Conn that WithConn passes to fn is that lease's only: when the
// outermost WithConn returns, it is closed, and the connection goes on
// under a new *sql.Conn (same driver connection, same session). So a
// *sql.Conn kept past fn, the same one a nested WithConn got, and the
// statements prepared on it fail with sql.ErrConnDone and send nothing,
// where they would otherwise run on the session of whoever holds the
// connection next. A *sql.Tx kept past WithTx fails with sql.ErrTxDone.
// Close statements prepared on the *sql.Conn before fn returns: a
// statement's Close reaches its driver connection all the same.
//
// # Broken connections
//
// When the connection breaks during fn (the server ended the session, the
// network failed), WithConn and WithTx return an error that begins
// "sqlpool: pool "name": connection broke:" ("sqlpool: connection broke:"
// for a pool without a Name) and wraps the driver's error;
// errors.Is(err, fairpool.ErrBadConn) reports it. The connection is closed
// and never handed out again: counted in Stats.ClosedReset when the check
// after fn found it broken, in Stats.ClosedDiscard when fn's error already
// said so.
//
// # A full server
//
// An open that the server refuses because it is full (Config.Refused,
// IsRefusal by default) fails no caller: the pool waits for the
// connections it holds and probes for room with back-off.
//
// # Behind a transaction pooler
//
// Behind PgBouncer in transaction mode a session is lent to a client for
// one transaction only. The Postgres dialect's reset after each lease
// (RESET ALL, UNLISTEN *, pg_advisory_unlock_all() and the rest) then
// runs on whatever server session PgBouncer picks for that one statement,
// so it cleans nothing of the lease's and costs a round trip; session
// state never carries over there in the first place, because sessions
// are not kept. Set SkipSessionReset (or Dialect OtherDialect), and do
// not rely on session settings, advisory locks, LISTEN or temporary
// tables across transactions.
package sqlpool
