// Package fairpgx is a pool of pgx connections (*pgx.Conn) that serves
// waiters strictly in arrival order, built on fairpool. It has the
// pgxpool.Pool methods applications use (Query, QueryRow, Exec, Begin,
// BeginTx, SendBatch, CopyFrom, Acquire, Ping, Stat, Close), reads
// pgxpool's pool_* connection-string parameters, and adds With, a
// reentrant block form.
//
// Switching from pgxpool is usually a change of import and constructor:
//
//	pool, err := fairpgx.New(ctx, "postgres://app@localhost/app?pool_max_conns=8")
//	if err != nil {
//		return err
//	}
//	defer pool.Close()
//
//	var n int
//	err = pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer = $1", id).Scan(&n)
//
//	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		_, err := tx.Exec(ctx, "UPDATE stock SET n = n - 1 WHERE item = $1", item)
//		return err
//	})
//
// # Why
//
// pgxpool's waiters are served in order too (puddle's semaphore), but its
// wait is bounded only by the context, and code that acquires while
// holding a connection can deadlock a small pool. fairpgx bounds every
// wait (AcquireTimeout, 5 s unless set) with an error that shows the pool's
// state, hands a released connection straight to the oldest waiter, and
// lets nested code share the connection through With's context.
//
// # Connections are clean or closed
//
// On release, a connection that is closed, is inside a transaction, or
// has a query in progress (rows not closed) is closed rather than reused,
// as in pgxpool. Config.ResetSession also runs DISCARD ALL, so no setting,
// temporary table, advisory lock or LISTEN outlives a lease. A connection
// idle longer than Config.HealthCheckPeriod (1 s) is pinged before it is
// handed out.
//
// When the connection breaks under a call (the server ended the session,
// the network failed), the call's error begins "fairpgx: pool "name":
// connection broke:" and wraps pgx's error, and errors.Is(err,
// fairpool.ErrBadConn) reports it; the connection is closed and never
// handed out again.
//
// # A released Conn fails
//
// A *Conn kept after Release, and the rows, row, batch results and
// transactions obtained from it, send nothing more: the connection may
// already serve another caller, whose transaction a stray ROLLBACK would
// end. Each of their methods that has an error result returns an error
// wrapping ErrConnReleased that names the pool and the method; a
// transaction's also wraps pgx.ErrTxClosed, so a deferred Rollback stays
// harmless. The methods that would hand the *pgx.Conn itself out
// (Conn.Conn, and Conn and LargeObjects of rows and transactions) panic
// with such an error instead, as pgxpool's Conn and fairpool's
// Lease.Value do. Release itself may be called again and does nothing.
// The *pgx.Conn that With passes to its function, or that Conn returned,
// is pgx's own type and cannot be guarded: do not keep it past the lease.
package fairpgx
