package sqlpool

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNestedTxOptions is what a nested WithTx whose TxOptions differ from
// those of the transaction it would join fails with: its error names the
// pool and wraps ErrNestedTxOptions, so test it with errors.Is.
var ErrNestedTxOptions = errors.New("sqlpool: nested WithTx asks for TxOptions other than the enclosing transaction's")

// txState is one transaction, bound to the context WithTx passes to its
// function so that nested WithTx calls join it.
type txState struct {
	pool  string // Config.Name, for errors
	tx    *sql.Tx
	opts  sql.TxOptions
	ended atomic.Bool // set when the outermost WithTx returns

	mu     sync.Mutex
	doomed error // the first error or panic of a nested WithTx
}

type txKey struct{ p *Pool }

// WithTx runs fn in a transaction on a connection from the pool: it begins
// the transaction, commits if fn returns nil, and rolls back if fn returns
// an error or panics (the panic keeps propagating and the connection is
// closed). ctx bounds the wait for the connection; the transaction is
// bound to the context fn receives, as with WithConn.
//
// WithTx called with the context fn received (or one derived from it, also
// through WithConn) joins the enclosing transaction, as a nested
// transaction block does in ActiveRecord: nothing is committed until the
// outermost WithTx commits. A nested WithTx that fails dooms the whole
// transaction: the outermost one rolls back and returns the nested error,
// even if the code between them swallowed it, so work is never half
// committed. A nested opts must be nil or equal to the outermost's, or the
// nested WithTx returns an error wrapping ErrNestedTxOptions (and dooms
// the transaction).
// Use a savepoint through tx.ExecContext where a partial rollback is
// wanted.
//
// The error of a failed commit is returned as it is; when the connection
// broke, the error says so, as with WithConn.
func (p *Pool) WithTx(ctx context.Context, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if ts, ok := ctx.Value(txKey{p}).(*txState); ok && !ts.ended.Load() {
		if opts != nil && *opts != ts.opts {
			err := &poolError{pool: p.cfg.Name, err: ErrNestedTxOptions}
			ts.doom(err)
			return err
		}
		return ts.runNested(ctx, fn)
	}
	return p.WithConn(ctx, func(ctx context.Context, conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, opts)
		if err != nil {
			return err
		}
		ts := &txState{pool: p.cfg.Name, tx: tx}
		if opts != nil {
			ts.opts = *opts
		}
		defer ts.ended.Store(true)
		return ts.runOuter(context.WithValue(ctx, txKey{p}, ts), fn)
	})
}

// runOuter runs the outermost fn and ends the transaction.
func (ts *txState) runOuter(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	done := false
	defer func() {
		if !done { // fn panicked: roll back, then let the panic go on
			ts.tx.Rollback()
		}
	}()
	err := fn(ctx, ts.tx)
	done = true
	if err == nil {
		err = ts.doomedErr()
	}
	if err != nil {
		if rerr := ts.tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return &rollbackError{err: err, rerr: rerr}
		}
		return err
	}
	return ts.tx.Commit()
}

// runNested runs a nested fn in the enclosing transaction and dooms it if
// fn fails.
func (ts *txState) runNested(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	done := false
	defer func() {
		if !done {
			ts.doom(&poolError{pool: ts.pool, err: errNestedPanic})
		}
	}()
	err := fn(ctx, ts.tx)
	done = true
	if err != nil {
		ts.doom(err)
	}
	return err
}

func (ts *txState) doom(err error) {
	ts.mu.Lock()
	if ts.doomed == nil {
		ts.doomed = err
	}
	ts.mu.Unlock()
}

func (ts *txState) doomedErr() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.doomed == nil {
		return nil
	}
	return &doomedError{pool: ts.pool, err: ts.doomed}
}

// errNestedPanic dooms a transaction whose nested WithTx panicked.
var errNestedPanic = errors.New("sqlpool: a nested WithTx panicked")
