package fairpgx

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// closeTimeout bounds the goodbye message to the server when a connection
// is closed; a dead server must not hold its slot.
const closeTimeout = 5 * time.Second

// Conn is an acquired connection, like pgxpool.Conn. Release gives it back;
// the first Release wins and later calls do nothing.
//
// A Conn kept after Release fails, because its connection may belong to
// another caller by then: every method with an error result returns an
// error wrapping ErrConnReleased without touching the connection, and Conn,
// which would hand the connection out, panics with such an error. The
// same holds for the rows, row, batch results and transactions obtained
// from it, except that rows and batch results closed before Release still
// report what they found, and a transaction that ended before still says
// pgx.ErrTxClosed. The *pgx.Conn that Conn returned is pgx's own and is not
// guarded: do not keep it.
type Conn struct {
	p     *Pool
	l     *fairpool.Lease[*connRes]
	r     *connRes
	conn  *pgx.Conn
	ended atomic.Bool // released or hijacked; nested calls on a context carrying it acquire anew
	bad   atomic.Bool // broke, or said to be bad: close it rather than reuse it
	busy  atomic.Bool // a call on the connection has not finished; see claim
}

// Release gives the connection back: to the oldest waiter, or to idle. One
// that was closed, broke, is inside a transaction, has a query in progress,
// is past MaxConnLifetime, predates Pool.Reset or is refused by
// AfterRelease is closed instead, and its slot goes to the oldest waiter.
func (c *Conn) Release() {
	if c.ended.Swap(true) {
		return
	}
	p := c.p
	if p.releaseTracer != nil {
		p.releaseTracer.TraceRelease(p, TraceReleaseData{Conn: c.conn})
	}
	why := ""
	switch {
	case c.bad.Load():
		why = "it broke"
	case unclean(c.conn) != "":
		why = unclean(c.conn)
	case c.r.gen != p.gen.Load():
		why = "the pool was Reset"
	case p.expired(c.r, time.Now()):
		p.lifetimeCloses.Add(1)
		why = "MaxConnLifetime passed"
	case p.cfg.AfterRelease != nil && !p.cfg.AfterRelease(c.conn):
		why = "AfterRelease returned false"
	case c.r.slot >= 0 && p.fleet.giveBack(c.conn):
		c.r.givenBack = true
		why = "its fleet slot goes to a process that waits with fewer connections"
	}
	if why != "" {
		p.cfg.logger().Info("fairpgx: closing a connection instead of reusing it", "pool", p.cfg.Name, "reason", why)
		c.l.Discard()
		p.kickHealth()
		return
	}
	c.r.idleSince.Store(time.Now().UnixNano())
	c.l.Release()
}

// Hijack takes the connection out of the pool: the pool forgets it and
// frees its slot, and the caller must close it. It panics if the Conn was
// already released or hijacked, as pgxpool's does.
func (c *Conn) Hijack() *pgx.Conn {
	if c.ended.Swap(true) {
		panic(prefix(c.p.cfg.Name) + "cannot hijack already released or hijacked connection")
	}
	c.r.hijacked.Store(true)
	c.l.Discard()
	return c.conn
}

// Conn returns the underlying *pgx.Conn. It belongs to the pool: do not
// close it, and do not use it after Release. Conn panics with an error
// wrapping ErrConnReleased if called after Release.
func (c *Conn) Conn() *pgx.Conn {
	if c.ended.Load() {
		panic(c.releasedErr("Conn.Conn", false))
	}
	return c.conn
}

// ErrConnReleased is what a Conn, and the rows, row, batch results and
// transactions obtained from it, fail with once the Conn has been released:
// the connection went back to the pool and may serve another caller, so
// nothing is sent on it. The errors also name the pool and the method
// called; those of a transaction wrap pgx.ErrTxClosed too.
var ErrConnReleased = errors.New("fairpgx: connection already released")

// ErrConnInUse is what a call fails with, wrapped with the pool's name, the
// call and the fix, when the connection it would run on is busy with
// another call that has not finished. That happens when the context of a
// With is shared by goroutines that query at once (an errgroup, say), or
// when rows or batch results are still open. pgx would fail it with "conn
// busy" or, between goroutines, race; running it on another connection
// would take it outside the With's transaction.
var ErrConnInUse = errors.New("fairpgx: connection in use by another call")

type inUseError struct{ pool, op string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("%s%s: connection in use by another call that has not finished "+
		"(a With's context used by several goroutines at once, or rows or batch results not closed): "+
		"a connection runs one statement at a time; make the calls one after another, "+
		"or give each goroutine pool.Detach(ctx) so it acquires its own connection, outside the With's transaction",
		prefix(e.pool), e.op)
}

func (e *inUseError) Is(target error) bool { return target == ErrConnInUse }

// claim marks the connection busy for one call, or says it is busy.
// Without it, a second goroutine would reach pgx's connection, which is
// not safe for concurrent use.
func (c *Conn) claim(op string) error {
	if !c.busy.CompareAndSwap(false, true) {
		return &inUseError{pool: c.p.cfg.Name, op: op}
	}
	return nil
}

func (c *Conn) unclaim() { c.busy.Store(false) }

// releasedError is ErrConnReleased for one call on one pool.
type releasedError struct {
	pool string
	op   string // the method called, "Conn.Exec"
	tx   bool   // on a transaction, which is closed too
}

func (e *releasedError) Error() string {
	return fmt.Sprintf("%s%s after Release: connection already released", prefix(e.pool), e.op)
}

// Is makes errors.Is(err, ErrConnReleased) true, and errors.Is(err,
// pgx.ErrTxClosed) on a transaction, so that a deferred Rollback still
// ignores it as pgx.BeginFunc does.
func (e *releasedError) Is(target error) bool {
	return target == ErrConnReleased || e.tx && target == pgx.ErrTxClosed
}

// releasedErr is the error of op called on c after its Release.
func (c *Conn) releasedErr(op string, tx bool) error {
	return &releasedError{pool: c.p.cfg.Name, op: op, tx: tx}
}

// check marks c bad and says the connection broke if err came with the
// connection's end. It must be called while c is held.
func (c *Conn) check(err error) error {
	switch {
	case err == nil:
		return nil
	case c.conn.IsClosed():
		c.bad.Store(true)
		return &brokenConnError{pool: c.p.cfg.Name, err: err}
	case errors.Is(err, fairpool.ErrBadConn):
		c.bad.Store(true)
	}
	return err
}

// run calls fn with c's connection, for With.
func (c *Conn) run(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
	returned := false
	defer func() {
		if !returned {
			c.bad.Store(true)
		}
	}()
	err := fn(ctx, c.conn)
	returned = true
	return c.check(err)
}

// Exec runs sql with args on the connection; see pgx.Conn.Exec.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if c.ended.Load() {
		return pgconn.CommandTag{}, c.releasedErr("Conn.Exec", false)
	}
	if err := c.claim("Exec"); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.unclaim()
	tag, err := c.conn.Exec(ctx, sql, args...)
	return tag, c.check(err)
}

// Query runs sql with args on the connection; see pgx.Conn.Query. The
// connection is busy until the rows are closed.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if c.ended.Load() {
		err := c.releasedErr("Conn.Query", false)
		return errRows{err}, err
	}
	return c.query(ctx, false, sql, args)
}

func (c *Conn) query(ctx context.Context, release bool, sql string, args []any) (pgx.Rows, error) {
	fail := func(err error) (pgx.Rows, error) {
		if release {
			c.Release()
		}
		return errRows{err}, err
	}
	if err := c.claim("Query"); err != nil {
		return fail(err)
	}
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		c.unclaim()
		return fail(c.check(err))
	}
	return &poolRows{r: rows, c: c, release: release, claimed: true}, nil
}

// QueryRow runs sql with args on the connection; see pgx.Conn.QueryRow.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if c.ended.Load() {
		return errRow{c.releasedErr("Conn.QueryRow", false)}
	}
	return c.queryRow(ctx, false, sql, args)
}

func (c *Conn) queryRow(ctx context.Context, release bool, sql string, args []any) pgx.Row {
	if err := c.claim("QueryRow"); err != nil {
		if release {
			c.Release()
		}
		return errRow{err}
	}
	return &poolRow{r: c.conn.QueryRow(ctx, sql, args...), c: c, release: release, claimed: true}
}

// SendBatch sends b on the connection; see pgx.Conn.SendBatch. The
// connection is busy until the results are closed.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if c.ended.Load() {
		return errBatchResults{c.releasedErr("Conn.SendBatch", false)}
	}
	return c.sendBatch(ctx, b, false)
}

func (c *Conn) sendBatch(ctx context.Context, b *pgx.Batch, release bool) pgx.BatchResults {
	if err := c.claim("SendBatch"); err != nil {
		if release {
			c.Release()
		}
		return errBatchResults{err}
	}
	br := newBatchResults(c.conn.SendBatch(ctx, b), c, release)
	br.claimed = true
	return br
}

// CopyFrom copies rows into a table; see pgx.Conn.CopyFrom.
func (c *Conn) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if c.ended.Load() {
		return 0, c.releasedErr("Conn.CopyFrom", false)
	}
	if err := c.claim("CopyFrom"); err != nil {
		return 0, err
	}
	defer c.unclaim()
	n, err := c.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
	return n, c.check(err)
}

// Begin starts a transaction on the connection; see pgx.Conn.Begin.
func (c *Conn) Begin(ctx context.Context) (pgx.Tx, error) {
	if c.ended.Load() {
		return nil, c.releasedErr("Conn.Begin", false)
	}
	return c.beginTx(ctx, pgx.TxOptions{}, false)
}

// BeginTx starts a transaction with txOptions; see pgx.Conn.BeginTx.
func (c *Conn) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	if c.ended.Load() {
		return nil, c.releasedErr("Conn.BeginTx", false)
	}
	return c.beginTx(ctx, txOptions, false)
}

func (c *Conn) beginTx(ctx context.Context, opts pgx.TxOptions, release bool) (pgx.Tx, error) {
	err := c.claim("BeginTx")
	var tx pgx.Tx
	if err == nil {
		tx, err = c.conn.BeginTx(ctx, opts)
		c.unclaim()
		err = c.check(err)
	}
	if err != nil {
		if release {
			c.Release()
		}
		return nil, err
	}
	return &Tx{tx: tx, c: c, release: release}, nil
}

// Ping checks that the server answers on this connection.
func (c *Conn) Ping(ctx context.Context) error {
	if c.ended.Load() {
		return c.releasedErr("Conn.Ping", false)
	}
	if err := c.claim("Ping"); err != nil {
		return err
	}
	defer c.unclaim()
	return c.check(c.conn.Ping(ctx))
}
