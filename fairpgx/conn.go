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
	"github.com/jackc/pgx/v5/pgtype"
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

// releasedError is ErrConnReleased for one call on one pool.
type releasedError struct {
	pool string
	op   string // the method called, "Conn.Exec"
	tx   bool   // on a transaction, which is closed too
}

func (e *releasedError) Error() string {
	return fmt.Sprintf("fairpgx: pool %q: %s after Release: connection already released", e.pool, e.op)
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
	tag, err := c.conn.Exec(ctx, sql, args...)
	return tag, c.check(err)
}

// Query runs sql with args on the connection; see pgx.Conn.Query.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if c.ended.Load() {
		err := c.releasedErr("Conn.Query", false)
		return errRows{err}, err
	}
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
	if c.ended.Load() {
		return errRow{c.releasedErr("Conn.QueryRow", false)}
	}
	return &poolRow{r: c.conn.QueryRow(ctx, sql, args...), c: c}
}

// SendBatch sends b on the connection; see pgx.Conn.SendBatch.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if c.ended.Load() {
		return errBatchResults{c.releasedErr("Conn.SendBatch", false)}
	}
	return newBatchResults(c.conn.SendBatch(ctx, b), c, false)
}

// CopyFrom copies rows into a table; see pgx.Conn.CopyFrom.
func (c *Conn) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if c.ended.Load() {
		return 0, c.releasedErr("Conn.CopyFrom", false)
	}
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
func (c *Conn) Ping(ctx context.Context) error {
	if c.ended.Load() {
		return c.releasedErr("Conn.Ping", false)
	}
	return c.check(c.conn.Ping(ctx))
}

// poolRows are rows that give their connection back on Close when they
// acquired it, as pgxpool's do, and say when the connection broke. Once
// their Conn is released they no longer reach pgx's rows, whose buffers and
// connection may serve another caller by then: they fail as rows whose
// query failed do.
type poolRows struct {
	r       pgx.Rows
	c       *Conn
	release bool
	closed  bool
	err     error             // r's error, checked while the connection was held
	tag     pgconn.CommandTag // r's, kept at Close
}

func (rows *poolRows) Close() { rows.close("Rows.Close") }

// close closes the rows; op is the call that closes them, for the error if
// the Conn was released with them open.
func (rows *poolRows) close(op string) {
	if rows.closed {
		return
	}
	rows.closed = true
	if rows.c.ended.Load() {
		// Release found the rows open and closed the connection; that
		// is under way on a goroutine of the pool, so leave pgx's rows be.
		rows.err = rows.c.releasedErr(op, false)
		return
	}
	rows.r.Close()
	rows.tag = rows.r.CommandTag()
	rows.err = rows.c.check(rows.r.Err())
	if rows.release {
		rows.c.Release()
	}
}

func (rows *poolRows) Err() error {
	if rows.closed {
		return rows.err
	}
	if rows.c.ended.Load() {
		return rows.c.releasedErr("Rows.Err", false)
	}
	return rows.r.Err()
}

func (rows *poolRows) Next() bool {
	if rows.closed {
		return false
	}
	if rows.c.ended.Load() || !rows.r.Next() {
		rows.close("Rows.Next")
		return false
	}
	return true
}

func (rows *poolRows) Scan(dest ...any) error {
	if rows.c.ended.Load() {
		return rows.c.releasedErr("Rows.Scan", false)
	}
	err := rows.r.Scan(dest...)
	if err != nil {
		rows.Close()
	}
	return err
}

func (rows *poolRows) Values() ([]any, error) {
	if rows.c.ended.Load() {
		return nil, rows.c.releasedErr("Rows.Values", false)
	}
	v, err := rows.r.Values()
	if err != nil {
		rows.Close()
	}
	return v, err
}

func (rows *poolRows) CommandTag() pgconn.CommandTag {
	if rows.c.ended.Load() {
		return rows.tag
	}
	return rows.r.CommandTag()
}

// FieldDescriptions, RawValues and TypeMap are the connection's, which is
// why they are nil once the Conn is released, as for rows whose query
// failed.

func (rows *poolRows) FieldDescriptions() []pgconn.FieldDescription {
	if rows.c.ended.Load() {
		return nil
	}
	return rows.r.FieldDescriptions()
}

func (rows *poolRows) RawValues() [][]byte {
	if rows.c.ended.Load() {
		return nil
	}
	return rows.r.RawValues()
}

func (rows *poolRows) TypeMap() *pgtype.Map {
	if rows.c.ended.Load() {
		return nil
	}
	return rows.r.TypeMap()
}

// Conn panics once the Conn is released, as Conn.Conn does.
func (rows *poolRows) Conn() *pgx.Conn {
	if rows.c.ended.Load() {
		panic(rows.c.releasedErr("Rows.Conn", false))
	}
	return rows.r.Conn()
}

// poolRow releases its connection after Scan when it acquired it.
type poolRow struct {
	r       pgx.Row
	c       *Conn
	release bool
}

func (row *poolRow) Scan(dest ...any) error {
	if row.c.ended.Load() {
		return row.c.releasedErr("Row.Scan", false)
	}
	if row.release {
		defer row.c.Release() // also when Scan panics
	}
	return row.c.check(row.r.Scan(dest...))
}

// poolTx ends by giving its connection back when it acquired it. Once
// that connection is back in the pool, or the Conn it was begun on is
// released, it no longer reaches pgx's transaction.
type poolTx struct {
	pgx.Tx
	c        *Conn
	release  bool
	released bool
}

// closedErr is why tx must not reach pgx's transaction, or nil: it ended
// and gave back the connection it acquired (pgx.ErrTxClosed, as pgx says
// after a transaction ends), or the Conn it runs on was released, which
// closes it too. In the second case pgx may not know: the transaction
// could have been ended by SQL, and the connection reused.
func (tx *poolTx) closedErr(op string) error {
	if tx.released {
		return pgx.ErrTxClosed
	}
	if tx.c.ended.Load() {
		return tx.c.releasedErr(op, true)
	}
	return nil
}

// Commit commits, then gives the connection back if the transaction
// acquired it. After the connection went back, the transaction is closed.
func (tx *poolTx) Commit(ctx context.Context) error {
	if err := tx.closedErr("Tx.Commit"); err != nil {
		return err
	}
	err := tx.check(tx.Tx.Commit(ctx))
	tx.done()
	return err
}

// Rollback rolls back, then gives the connection back if the transaction
// acquired it. After the connection went back, the transaction is closed.
func (tx *poolTx) Rollback(ctx context.Context) error {
	if err := tx.closedErr("Tx.Rollback"); err != nil {
		return err
	}
	err := tx.check(tx.Tx.Rollback(ctx))
	tx.done()
	return err
}

// The statement methods say when the connection broke, as everywhere.

func (tx *poolTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := tx.closedErr("Tx.Exec"); err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := tx.Tx.Exec(ctx, sql, args...)
	return tag, tx.check(err)
}

func (tx *poolTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := tx.closedErr("Tx.Query"); err != nil {
		return errRows{err}, err
	}
	rows, err := tx.Tx.Query(ctx, sql, args...)
	if err != nil {
		return rows, tx.check(err)
	}
	return &poolRows{r: rows, c: tx.c}, nil
}

func (tx *poolTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := tx.closedErr("Tx.QueryRow"); err != nil {
		return errRow{err}
	}
	return &poolRow{r: tx.Tx.QueryRow(ctx, sql, args...), c: tx.c}
}

func (tx *poolTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := tx.closedErr("Tx.SendBatch"); err != nil {
		return errBatchResults{err}
	}
	return newBatchResults(tx.Tx.SendBatch(ctx, b), tx.c, false)
}

func (tx *poolTx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := tx.closedErr("Tx.CopyFrom"); err != nil {
		return 0, err
	}
	n, err := tx.Tx.CopyFrom(ctx, tableName, columnNames, rowSrc)
	return n, tx.check(err)
}

func (tx *poolTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := tx.closedErr("Tx.Prepare"); err != nil {
		return nil, err
	}
	sd, err := tx.Tx.Prepare(ctx, name, sql)
	return sd, tx.check(err)
}

// Begin starts a pseudo nested transaction (a savepoint), guarded as tx is.
func (tx *poolTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := tx.closedErr("Tx.Begin"); err != nil {
		return nil, err
	}
	sp, err := tx.Tx.Begin(ctx)
	if err != nil {
		return nil, tx.check(err)
	}
	return &poolTx{Tx: sp, c: tx.c}, nil
}

// Conn and LargeObjects hand the connection out, so they panic once it
// went back to the pool, as Conn.Conn does.

func (tx *poolTx) Conn() *pgx.Conn {
	if tx.released || tx.c.ended.Load() {
		panic(tx.c.releasedErr("Tx.Conn", true))
	}
	return tx.Tx.Conn()
}

func (tx *poolTx) LargeObjects() pgx.LargeObjects {
	if tx.released || tx.c.ended.Load() {
		panic(tx.c.releasedErr("Tx.LargeObjects", true))
	}
	return tx.Tx.LargeObjects()
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
// transaction owns the connection and gives it back when it ends. Once the
// connection went back it no longer reaches pgx's results.
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
	if br.c.ended.Load() {
		return pgconn.CommandTag{}, br.c.releasedErr("BatchResults.Exec", false)
	}
	tag, err := br.BatchResults.Exec()
	if !br.closed {
		err = br.c.check(err)
	}
	return tag, err
}

func (br *poolBatchResults) Query() (pgx.Rows, error) {
	if br.c.ended.Load() {
		err := br.c.releasedErr("BatchResults.Query", false)
		return errRows{err}, err
	}
	rows, err := br.BatchResults.Query()
	if err != nil {
		if !br.closed {
			err = br.c.check(err)
		}
		return rows, err
	}
	return &poolRows{r: rows, c: br.c}, nil
}

func (br *poolBatchResults) QueryRow() pgx.Row {
	if br.c.ended.Load() {
		return errRow{br.c.releasedErr("BatchResults.QueryRow", false)}
	}
	return &poolRow{r: br.BatchResults.QueryRow(), c: br.c}
}

func (br *poolBatchResults) Close() error {
	if br.closed {
		return nil
	}
	br.closed = true
	if br.c.ended.Load() {
		// Release found the batch unread and closed the connection, on a
		// goroutine of the pool: leave pgx's results be.
		return br.c.releasedErr("BatchResults.Close", false)
	}
	err := br.c.check(br.BatchResults.Close())
	if br.release {
		br.c.Release()
	}
	if br.tx != nil && (br.c.conn.IsClosed() || br.c.conn.PgConn().TxStatus() == 'I') {
		br.tx.done() // the batch failed before or while beginning it
	}
	return err
}
