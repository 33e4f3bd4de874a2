package fairpgx

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// The methods below run on the connection the context carries from an
// enclosing With, or else on one acquired for the call and released when
// the call is done: for Query when the rows are closed, for QueryRow after
// Scan, for Begin and BeginTx when the transaction ends, for SendBatch when
// the results are closed. An error that ended the connection says so, as
// in With.

// Exec runs sql with args; see pgx.Conn.Exec.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := c.Exec(ctx, sql, args...)
	if acquired {
		c.Release()
	}
	return tag, err
}

// Query runs sql with args. The rows hold the connection until they are
// closed, which Next does when it returns false.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return errRows{err}, err
	}
	return c.query(ctx, acquired, sql, args)
}

// QueryRow runs sql with args; its Scan returns any error, including a
// failed acquire.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return errRow{err}
	}
	return c.queryRow(ctx, acquired, sql, args)
}

// SendBatch sends b; the results hold the connection until they are
// closed.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return errBatchResults{err}
	}
	return c.sendBatch(ctx, b, acquired)
}

// CopyFrom copies rows into a table; see pgx.Conn.CopyFrom.
func (p *Pool) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return 0, err
	}
	n, err := c.CopyFrom(ctx, tableName, columnNames, rowSrc)
	if acquired {
		c.Release()
	}
	return n, err
}

// Begin starts a transaction, so that pgx.BeginFunc(ctx, pool, fn) works.
// The transaction holds its connection until Commit or Rollback.
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with txOptions; see Begin.
func (p *Pool) BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error) {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.beginTx(ctx, txOptions, acquired)
}

// errRows, errRow and errBatchResults carry a failed acquire to where
// pgx's callers look for errors.
type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (errRows) RawValues() [][]byte                          { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

type errBatchResults struct{ err error }

func (e errBatchResults) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatchResults) Query() (pgx.Rows, error)         { return errRows{e.err}, e.err }
func (e errBatchResults) QueryRow() pgx.Row                { return errRow{e.err} }
func (e errBatchResults) Close() error                     { return e.err }
func (e errBatchResults) Tx() pgx.Tx                       { return nil }
