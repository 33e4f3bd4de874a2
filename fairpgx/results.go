package fairpgx

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// poolRows are rows that give their connection back on Close when they
// acquired it, as pgxpool's do, and say when the connection broke. Once
// their Conn is released they no longer reach pgx's rows, whose buffers and
// connection may serve another caller by then: they fail as rows whose
// query failed do.
type poolRows struct {
	r       pgx.Rows
	c       *Conn
	release bool
	claimed bool // it holds its Conn's claim until closed
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
	if rows.claimed {
		rows.c.unclaim()
	}
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
	claimed bool // it holds its Conn's claim until scanned
}

func (row *poolRow) Scan(dest ...any) error {
	if row.c.ended.Load() {
		return row.c.releasedErr("Row.Scan", false)
	}
	if row.release {
		defer row.c.Release() // also when Scan panics
	}
	if row.claimed {
		row.claimed = false
		defer row.c.unclaim()
	}
	return row.c.check(row.r.Scan(dest...))
}

// Tx is the transaction Begin and BeginTx return (as a pgx.Tx), as
// pgxpool's Tx is: it ends by giving its connection back when it acquired
// it. Once that connection is back in the pool, or the Conn it was begun
// on is released, it no longer reaches pgx's transaction, and its methods
// fail with pgx.ErrTxClosed or ErrConnReleased.
type Tx struct {
	tx       pgx.Tx
	c        *Conn
	release  bool
	released bool
}

// closedErr is why tx must not reach pgx's transaction, or nil: it ended
// and gave back the connection it acquired (pgx.ErrTxClosed, as pgx says
// after a transaction ends), or the Conn it runs on was released, which
// closes it too. In the second case pgx may not know: the transaction
// could have been ended by SQL, and the connection reused.
func (tx *Tx) closedErr(op string) error {
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
func (tx *Tx) Commit(ctx context.Context) error {
	if err := tx.closedErr("Tx.Commit"); err != nil {
		return err
	}
	if err := tx.c.claim("Tx.Commit"); err != nil {
		return err
	}
	err := tx.check(tx.tx.Commit(ctx))
	tx.c.unclaim()
	tx.done()
	return err
}

// Rollback rolls back, then gives the connection back if the transaction
// acquired it. After the connection went back, the transaction is closed.
func (tx *Tx) Rollback(ctx context.Context) error {
	if err := tx.closedErr("Tx.Rollback"); err != nil {
		return err
	}
	if err := tx.c.claim("Tx.Rollback"); err != nil {
		return err
	}
	err := tx.check(tx.tx.Rollback(ctx))
	tx.c.unclaim()
	tx.done()
	return err
}

// The statement methods say when the connection broke, as everywhere.

// Exec runs sql in the transaction; see Conn.Exec.
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := tx.closedErr("Tx.Exec"); err != nil {
		return pgconn.CommandTag{}, err
	}
	if err := tx.c.claim("Tx.Exec"); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer tx.c.unclaim()
	tag, err := tx.tx.Exec(ctx, sql, args...)
	return tag, tx.check(err)
}

// Query runs sql in the transaction; see Conn.Query.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := tx.closedErr("Tx.Query"); err != nil {
		return errRows{err}, err
	}
	if err := tx.c.claim("Tx.Query"); err != nil {
		return errRows{err}, err
	}
	rows, err := tx.tx.Query(ctx, sql, args...)
	if err != nil {
		tx.c.unclaim()
		return rows, tx.check(err)
	}
	return &poolRows{r: rows, c: tx.c, claimed: true}, nil
}

// QueryRow runs sql in the transaction; see Conn.QueryRow.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := tx.closedErr("Tx.QueryRow"); err != nil {
		return errRow{err}
	}
	if err := tx.c.claim("Tx.QueryRow"); err != nil {
		return errRow{err}
	}
	return &poolRow{r: tx.tx.QueryRow(ctx, sql, args...), c: tx.c, claimed: true}
}

// SendBatch sends b in the transaction; see Conn.SendBatch.
func (tx *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := tx.closedErr("Tx.SendBatch"); err != nil {
		return errBatchResults{err}
	}
	if err := tx.c.claim("Tx.SendBatch"); err != nil {
		return errBatchResults{err}
	}
	br := newBatchResults(tx.tx.SendBatch(ctx, b), tx.c, false)
	br.claimed = true
	return br
}

// CopyFrom copies rows in the transaction; see Conn.CopyFrom.
func (tx *Tx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := tx.closedErr("Tx.CopyFrom"); err != nil {
		return 0, err
	}
	if err := tx.c.claim("Tx.CopyFrom"); err != nil {
		return 0, err
	}
	defer tx.c.unclaim()
	n, err := tx.tx.CopyFrom(ctx, tableName, columnNames, rowSrc)
	return n, tx.check(err)
}

// Prepare prepares a statement on the transaction's connection.
func (tx *Tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := tx.closedErr("Tx.Prepare"); err != nil {
		return nil, err
	}
	if err := tx.c.claim("Tx.Prepare"); err != nil {
		return nil, err
	}
	defer tx.c.unclaim()
	sd, err := tx.tx.Prepare(ctx, name, sql)
	return sd, tx.check(err)
}

// Begin starts a pseudo nested transaction (a savepoint), guarded as tx is.
func (tx *Tx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := tx.closedErr("Tx.Begin"); err != nil {
		return nil, err
	}
	if err := tx.c.claim("Tx.Begin"); err != nil {
		return nil, err
	}
	sp, err := tx.tx.Begin(ctx)
	tx.c.unclaim()
	if err != nil {
		return nil, tx.check(err)
	}
	return &Tx{tx: sp, c: tx.c}, nil
}

// Conn returns the transaction's *pgx.Conn; it panics once the transaction
// no longer reaches it, as Conn.Conn does.
func (tx *Tx) Conn() *pgx.Conn {
	if tx.released || tx.c.ended.Load() {
		panic(tx.c.releasedErr("Tx.Conn", true))
	}
	return tx.tx.Conn()
}

// LargeObjects returns the transaction's large objects; it panics once the
// transaction no longer reaches its connection.
func (tx *Tx) LargeObjects() pgx.LargeObjects {
	if tx.released || tx.c.ended.Load() {
		panic(tx.c.releasedErr("Tx.LargeObjects", true))
	}
	return tx.tx.LargeObjects()
}

// check is Conn.check while the transaction still holds the connection.
func (tx *Tx) check(err error) error {
	if tx.released {
		return err
	}
	return tx.c.check(err)
}

func (tx *Tx) done() {
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
	tx      *Tx
	release bool
	claimed bool // it holds its Conn's claim until closed
	closed  bool
}

func newBatchResults(br pgx.BatchResults, c *Conn, release bool) *poolBatchResults {
	r := &poolBatchResults{BatchResults: br, c: c, release: release}
	if tx := br.Tx(); tx != nil {
		r.tx = &Tx{tx: tx, c: c, release: release}
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
	if br.claimed {
		br.c.unclaim()
	}
	if br.release {
		br.c.Release()
	}
	if br.tx != nil && (br.c.conn.IsClosed() || br.c.conn.PgConn().TxStatus() == 'I') {
		br.tx.done() // the batch failed before or while beginning it
	}
	return err
}
