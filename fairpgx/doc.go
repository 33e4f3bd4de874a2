// Package fairpgx is a pool of pgx connections (*pgx.Conn) that serves
// waiters strictly in arrival order, built on fairpool. It has pgxpool's
// API (Config with its hooks, ParseConfig with every pool_* parameter,
// Pool, Conn, Stat, AcquireTracer and ReleaseTracer), so that code written
// for pgxpool compiles and behaves alike with only the import changed,
// apart from the differences in the table below. It adds bounded waits,
// With (a reentrant block form) and lease tracking.
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
// # From pgxpool
//
// Same: ParseConfig and its pool_* parameters (pool_max_conns,
// pool_min_conns, pool_min_idle_conns, pool_max_conn_lifetime,
// pool_max_conn_lifetime_jitter, pool_max_conn_idle_time,
// pool_health_check_period, pool_ping_timeout), their defaults and their
// parse errors; Config's fields and hooks (BeforeConnect, AfterConnect,
// BeforeAcquire, PrepareConn, AfterRelease, BeforeClose, ShouldPing) with
// pgxpool's timing and outcomes; the background health check; Copy and
// ConnString; Pool's, Conn's and Tx's methods (Begin returns a *Tx, as
// pgxpool's returns a *pgxpool.Tx); Stat's methods; the tracers' calls.
// Differences:
//
//	pgxpool                              fairpgx                                  why
//	-----------------------------------  ---------------------------------------  -----------------------------------------------
//	acquire waits until ctx ends         waits at most AcquireTimeout (5 s),     a wait with no bound hides an exhausted pool;
//	                                     *fairpool.TimeoutError; negative: ctx   the error shows who holds the connections
//	AcquireTracer, ReleaseTracer take    the same, with *fairpgx.Pool; a tracer  Go interfaces name the concrete pool type;
//	  *pgxpool.Pool                        must implement fairpgx's (otelpgx's   write a small adapter for otelpgx
//	                                       methods take *pgxpool.Pool)
//	NewWithConfig panics on a Config      returns an error; zero fields get       a panic in a constructor is no way to report
//	  not made by ParseConfig               ParseConfig's defaults                  bad input
//	MinConns > MaxConns, negative         NewWithConfig returns an error          caught at start, not at the first top-up
//	  minimums accepted
//	HealthCheckPeriod 0 panics (ticker)   0 means 1 min                           the zero value is usable
//	a failed ping or PrepareConn false:   the same; the retry waits in line       arrival order is the pool's promise
//	  acquire again                         again, behind earlier waiters
//	AfterRelease runs on a goroutine      runs in Release                         the next waiter gets the connection only
//	                                                                                once it is known to be reusable
//	ShouldPing for every acquire          the same; a connection handed from a    fairpool passes it on without it going idle
//	                                        release straight to a waiter has
//	                                        IdleDuration near 0
//	CanceledAcquireCount: ctx only        ctx and AcquireTimeout                  both end a wait without a connection
//	EmptyAcquireCount                     waits less those that ended without a   fairpool counts waits, not successful ones
//	                                        connection
//	Pool.Acquire while holding a Conn     the same; With, and Query, Exec, ...    nested code shares one connection instead of
//	                                        with With's context reuse its           deadlocking a small pool
//	                                        connection
//	a refused connect (53300, "too many   waits for the connections the pool       the server being full is back-pressure:
//	  clients") fails the acquire           holds; one probe retries with back-off   the pool's own connections will free up
//	-                                     added: AcquireTimeout, ConnectTimeout,  fairpool's features
//	                                        ResetSession, WaitOrder, TrackLeases,
//	                                        LeakThreshold, Logger, Name, Refused,
//	                                        FleetName, FleetSize; With, Detach,
//	                                        Stats, Holders, Waiters, Observe;
//	                                        pool_acquire_timeout,
//	                                        pool_reset_session, pool_name,
//	                                        pool_fleet_name, pool_fleet_size
//	a released Conn's use is undefined   fails with ErrConnReleased              the connection may serve someone else
//	a broken connection: pgx's error      "fairpgx: pool ...: connection broke",  errors.Is(err, fairpool.ErrBadConn) holds
//	                                        wrapping pgx's error
//
// # A full server is back-pressure
//
// A connect refused because the server is full (IsRefusal: SQLSTATE
// 53300, from max_connections or a role's CONNECTION LIMIT) fails no
// caller: the pool shrinks to the connections it has (Stats'
// EffectiveSize), its waiters wait for those, and one probe connects
// again with a jittered back-off (5 ms doubling to 250 ms). A pool with
// no connection keeps probing while anyone waits; a caller fails only at
// its own deadline, with a *fairpool.TimeoutError that also wraps the
// last refusal. Set Config.Refused to change what counts as a refusal.
//
// # A fleet's budget
//
// N processes each with pool_max_conns=M need N·M connections at peak,
// more than the server or the role may allow. pool_fleet_name=NAME and
// pool_fleet_size=S (Config.FleetName, FleetSize) cap the connections of
// every pool of fleet NAME, in every process, at S, held in PostgreSQL
// itself: each connection takes one of S session advisory locks (two
// int4 keys: a hash of NAME and the slot) right after it connects, and
// holds it for its whole life. With none free, the connect reports
// ErrFleetFull, a refusal, so the pool waits for the connections it
// holds and probes again with back-off; the connection that looked for a
// slot is kept (at most one per pool, for a second) to look again, so a
// process never has more than one connection to the server beyond its
// share of the budget. Shares are even: the connection that waits marks
// its process as waiting (another advisory lock), every connection with a
// slot marks it as a member, and pg_locks shows each process's count; a
// process takes a free slot only if no process with fewer connections
// waits, and, on release (looking at most every 100 ms) and for its idle
// connections every 250 ms, closes a connection instead of keeping it
// while a process with two fewer waits. A busy fleet settles within one connection of S / processes.
//
// Guarantees and limits:
//
//   - Never more than S connections of the fleet hold slots, plus at most
//     one looking for a slot per pool.
//   - A process that dies loses its locks with its sessions: the server
//     ends them when it sees the sockets close, and the others take the
//     slots within their next probe (250 ms at most) and grow from there.
//     A client cut off by the network keeps its backend, and its slot,
//     until TCP keepalives (or tcp_user_timeout) end the session.
//   - Config.ResetSession's DISCARD ALL releases advisory locks too; the
//     connection takes its slot back at once, and is closed if another
//     process took it in that instant.
//   - A hijacked connection keeps its slot until it is closed.
//   - Session advisory locks mean nothing behind PgBouncer in transaction
//     mode (each statement may run on another server session): there, do
//     not set a fleet; PgBouncer's own limits (default_pool_size,
//     max_db_connections) are the budget, and its "no more connections
//     allowed" is not SQLSTATE 53300.
//   - The budget counts only this fleet's pools; other clients of the
//     server count against max_connections as before.
//
// # Behind PgBouncer in transaction mode
//
// Use default_query_exec_mode=exec (or simple_protocol) in the
// connection string: pgx's default caches prepared statements per
// session, which a transaction pooler does not keep. Queries,
// transactions, batches and With work unchanged. Leave ResetSession off:
// DISCARD ALL would run on whichever server session PgBouncer picked,
// clearing nothing of yours (PgBouncer resets server sessions itself with
// server_reset_query in session mode only).
//
// # Sharing a With's connection
//
// A connection runs one statement at a time. Calls made with a With's
// context while another call on its connection has not finished (the
// context handed to goroutines that run at once, as in an errgroup, or
// rows not closed) fail at once with ErrConnInUse, which names the pool,
// the cause and the fix, instead of pgx's "conn busy" or a data race, and
// instead of running on another connection outside the With's
// transaction. Pool.Detach gives goroutines a context that acquires their
// own connections.
//
// # Connections are clean or closed
//
// On release, a connection that is closed, is inside a transaction, or
// has a query in progress (rows not closed) is closed rather than reused,
// as in pgxpool. Config.ResetSession also runs DISCARD ALL, so no setting,
// temporary table, advisory lock or LISTEN outlives a lease. A connection
// that Config.ShouldPing picks (by default, one idle for more than 1 s) is
// pinged before it is handed out, and replaced if the ping fails.
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
