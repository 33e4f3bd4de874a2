package fairpgx

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// closeTimeout bounds the goodbye message to the server when a connection
// is closed; a dead server must not hold its slot.
const closeTimeout = 5 * time.Second

// Conn is an acquired connection, like pgxpool.Conn. Release gives it back;
// the first Release wins and later calls do nothing. Do not use a Conn, or
// anything obtained from it, after Release.
type Conn struct {
	p     *Pool
	l     *fairpool.Lease[*pgx.Conn]
	conn  *pgx.Conn
	ended atomic.Bool // released; nested calls on a context carrying it acquire anew
	bad   atomic.Bool // broke, or said to be bad: close it rather than reuse it
}

// Release gives the connection back: to the oldest waiter, or to idle. One
// that was closed, broke, is inside a transaction or has a query in
// progress is closed instead, and its slot goes to the oldest waiter.
func (c *Conn) Release() {
	if c.ended.Swap(true) {
		return
	}
	if c.bad.Load() {
		c.l.Discard()
		return
	}
	if why := c.p.unclean(c.conn); why != "" {
		c.p.cfg.logger().Info("fairpgx: closing a connection instead of reusing it", "pool", c.p.cfg.Name, "reason", why)
		c.l.Discard()
		return
	}
	c.l.Release()
}

// Conn returns the underlying *pgx.Conn. It belongs to the pool: do not
// close it, and do not use it after Release.
func (c *Conn) Conn() *pgx.Conn { return c.conn }

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
	tag, err := c.conn.Exec(ctx, sql, args...)
	return tag, c.check(err)
}

// Query runs sql with args on the connection; see pgx.Conn.Query.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.query(ctx, false, sql, args)
}

func (c *Conn) query(ctx context.Context, release bool, sql string, args []any) (pgx.Rows, error) {
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		err = c.check(err)
		if release {
			c.Release()
		}
		return errRows{err}, err
	}
	return &poolRows{r: rows, c: c, release: release}, nil
}

// QueryRow runs sql with args on the connection; see pgx.Conn.QueryRow.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &poolRow{r: c.conn.QueryRow(ctx, sql, args...), c: c}
}

// SendBatch sends b on the connection; see pgx.Conn.SendBatch.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return newBatchResults(c.conn.SendBatch(ctx, b), c, false)
}

// CopyFrom copies rows into a table; see pgx.Conn.CopyFrom.
func (c *Conn) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	n, err := c.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
	return n, c.check(err)
}

// Begin starts a transaction on the connection; see pgx.Conn.Begin.
func (c *Conn) Begin(ctx context.Context) (pgx.Tx, error) {
	return c.beginTx(ctx, pgx.TxOptions{}, false)
}

// BeginTx starts a transaction with txOptions; see pgx.Conn.BeginTx.
func (c *Conn) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	return c.beginTx(ctx, txOptions, false)
}

func (c *Conn) beginTx(ctx context.Context, opts pgx.TxOptions, release bool) (pgx.Tx, error) {
	tx, err := c.conn.BeginTx(ctx, opts)
	if err != nil {
		err = c.check(err)
		if release {
			c.Release()
		}
		return nil, err
	}
	return &poolTx{Tx: tx, c: c, release: release}, nil
}

// Ping checks that the server answers on this connection.
func (c *Conn) Ping(ctx context.Context) error { return c.check(c.conn.Ping(ctx)) }

// poolRows are rows that give their connection back on Close when they
// acquired it, as pgxpool's do, and say when the connection broke.
type poolRows struct {
	r       pgx.Rows
	c       *Conn
	release bool
	closed  bool
	err     error // r's error, checked while the connection was held
}

func (rows *poolRows) Close() {
	if rows.closed {
		return
	}
	rows.closed = true
	rows.r.Close()
	rows.err = rows.c.check(rows.r.Err())
	if rows.release {
		rows.c.Release()
	}
}

func (rows *poolRows) Err() error {
	if rows.closed {
		return rows.err
	}
	return rows.r.Err()
}

func (rows *poolRows) Next() bool {
	if rows.closed {
		return false
	}
	if !rows.r.Next() {
		rows.Close()
		return false
	}
	return true
}

func (rows *poolRows) Scan(dest ...any) error {
	err := rows.r.Scan(dest...)
	if err != nil {
		rows.Close()
	}
	return err
}

func (rows *poolRows) Values() ([]any, error) {
	v, err := rows.r.Values()
	if err != nil {
		rows.Close()
	}
	return v, err
}

func (rows *poolRows) CommandTag() pgconn.CommandTag { return rows.r.CommandTag() }
func (rows *poolRows) FieldDescriptions() []pgconn.FieldDescription {
	return rows.r.FieldDescriptions()
}
func (rows *poolRows) RawValues() [][]byte  { return rows.r.RawValues() }
func (rows *poolRows) Conn() *pgx.Conn      { return rows.r.Conn() }
func (rows *poolRows) TypeMap() *pgtype.Map { return rows.r.TypeMap() }

// poolRow releases its connection after Scan when it acquired it.
type poolRow struct {
	r       pgx.Row
	c       *Conn
	release bool
}

func (row *poolRow) Scan(dest ...any) error {
	if row.release {
		defer row.c.Release() // also when Scan panics
	}
	return row.c.check(row.r.Scan(dest...))
}

// poolTx ends by giving its connection back when it acquired it.
type poolTx struct {
	pgx.Tx
	c        *Conn
	release  bool
	released bool
}

// Commit commits, then gives the connection back if the transaction
// acquired it. After the connection went back, the transaction is closed.
func (tx *poolTx) Commit(ctx context.Context) error {
	if tx.released {
		return pgx.ErrTxClosed
	}
	err := tx.check(tx.Tx.Commit(ctx))
	tx.done()
	return err
}

// Rollback rolls back, then gives the connection back if the transaction
// acquired it. After the connection went back, the transaction is closed.
func (tx *poolTx) Rollback(ctx context.Context) error {
	if tx.released {
		return pgx.ErrTxClosed
	}
	err := tx.check(tx.Tx.Rollback(ctx))
	tx.done()
	return err
}

// The statement methods say when the connection broke, as everywhere.

func (tx *poolTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := tx.Tx.Exec(ctx, sql, args...)
	return tag, tx.check(err)
}

func (tx *poolTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := tx.Tx.Query(ctx, sql, args...)
	if err != nil || tx.released {
		return rows, tx.check(err)
	}
	return &poolRows{r: rows, c: tx.c}, nil
}

func (tx *poolTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if tx.released {
		return tx.Tx.QueryRow(ctx, sql, args...)
	}
	return &poolRow{r: tx.Tx.QueryRow(ctx, sql, args...), c: tx.c}
}

func (tx *poolTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if tx.released {
		return tx.Tx.SendBatch(ctx, b)
	}
	return newBatchResults(tx.Tx.SendBatch(ctx, b), tx.c, false)
}

func (tx *poolTx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	n, err := tx.Tx.CopyFrom(ctx, tableName, columnNames, rowSrc)
	return n, tx.check(err)
}

func (tx *poolTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	sd, err := tx.Tx.Prepare(ctx, name, sql)
	return sd, tx.check(err)
}

// check is Conn.check while the transaction still holds the connection.
func (tx *poolTx) check(err error) error {
	if tx.released {
		return err
	}
	return tx.c.check(err)
}

func (tx *poolTx) done() {
	if tx.release && !tx.released {
		tx.released = true
		tx.c.Release()
	}
}

// poolBatchResults gives its connection back on Close when it acquired it,
// unless the batch began a transaction (pgx.Batch.BeginTx): then the
// transaction owns the connection and gives it back when it ends.
type poolBatchResults struct {
	pgx.BatchResults
	c       *Conn
	tx      *poolTx
	release bool
	closed  bool
}

func newBatchResults(br pgx.BatchResults, c *Conn, release bool) *poolBatchResults {
	r := &poolBatchResults{BatchResults: br, c: c, release: release}
	if tx := br.Tx(); tx != nil {
		r.tx = &poolTx{Tx: tx, c: c, release: release}
		r.release = false
	}
	return r
}

// Tx returns the transaction the batch began, or nil.
func (br *poolBatchResults) Tx() pgx.Tx {
	if br.tx == nil {
		return nil
	}
	return br.tx
}

func (br *poolBatchResults) Exec() (pgconn.CommandTag, error) {
	tag, err := br.BatchResults.Exec()
	if !br.closed {
		err = br.c.check(err)
	}
	return tag, err
}

func (br *poolBatchResults) Close() error {
	if br.closed {
		return nil
	}
	br.closed = true
	err := br.c.check(br.BatchResults.Close())
	if br.release {
		br.c.Release()
	}
	if br.tx != nil && (br.c.conn.IsClosed() || br.c.conn.PgConn().TxStatus() == 'I') {
		br.tx.done() // the batch failed before or while beginning it
	}
	return err
}
