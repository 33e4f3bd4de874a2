package fairpool

import (
	"context"
	"errors"
	"runtime"
)

// Lease is the right to use one connection until Release or Discard. Each
// Acquire returns a new Lease, so a Lease kept after its release can never
// reach the connection that another goroutine holds now.
//
// Release and Discard may be called in any order and any number of times:
// the first call wins and the others do nothing. Value must not be called
// after either.
type Lease[T any] struct {
	c *conn[T]
}

// Value returns the leased connection. It panics if the lease has been
// released or discarded, because the connection may by then belong to
// someone else.
func (l *Lease[T]) Value() T {
	if l.c.holder.Load() != l {
		panic("fairpool: Lease.Value called after Release or Discard")
	}
	return l.c.value
}

// Release gives the connection back for reuse: to the oldest waiter, or to
// the idle set after Config.Reset (if any) succeeds. The first call of
// Release or Discard wins; later calls do nothing.
func (l *Lease[T]) Release() {
	c := l.c
	if c.holder.CompareAndSwap(l, nil) {
		c.pool.untrack(c)
		runtime.KeepAlive(l) // see untrack
		c.pool.release(c)
	}
}

// Discard closes the connection instead of reusing it: call it when the
// connection is broken or its state is unknown. Its slot goes to the oldest
// waiter, who gets a fresh connection. The first call of Release or Discard
// wins; later calls do nothing.
func (l *Lease[T]) Discard() {
	c := l.c
	if c.holder.CompareAndSwap(l, nil) {
		c.pool.untrack(c)
		runtime.KeepAlive(l) // see untrack
		c.pool.discard(c, closeDiscarded)
	}
}

// leaseKey binds a pool's lease to a context. Keyed by the pool, so With on
// one pool never picks up another pool's connection.
type leaseKey[T any] struct{ p *Pool[T] }

// With runs fn with a connection and gives it back when fn returns, even if
// fn panics. ctx bounds only the wait for the connection; fn receives a
// context derived from ctx that carries the lease.
//
// With is reentrant: when ctx (or a context derived from it) comes from an
// enclosing With on the same pool, and that With has not returned, fn gets
// the same connection and no second one is taken, so nested With cannot
// deadlock even a pool of MaxSize 1. The outermost With gives it back. The
// connection is then shared by everything that uses that context: if T is
// not safe for concurrent use, do not pass the context to other goroutines
// that call With.
//
// fn's error is returned unchanged. If it wraps ErrBadConn, or if fn panics,
// the connection is discarded rather than reused (by the outermost With, when
// nested); a panic keeps propagating with its original stack.
func (p *Pool[T]) With(ctx context.Context, fn func(ctx context.Context, conn T) error) error {
	if l, ok := ctx.Value(leaseKey[T]{p}).(*Lease[T]); ok && l.c.holder.Load() == l {
		return l.run(ctx, fn)
	}
	l, err := p.acquire(ctx, true, true)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned { // fn panicked; the panic goes on after this
			l.Discard()
		}
	}()
	err = l.run(context.WithValue(ctx, leaseKey[T]{p}, l), fn)
	returned = true
	if l.c.broken.Load() {
		l.Discard()
	} else {
		l.Release()
	}
	return err
}

// run calls fn with l's connection and marks it broken if fn says so or
// panics.
func (l *Lease[T]) run(ctx context.Context, fn func(context.Context, T) error) error {
	returned := false
	defer func() {
		if !returned {
			l.c.broken.Store(true)
		}
	}()
	err := fn(ctx, l.c.value)
	returned = true
	if err != nil && errors.Is(err, ErrBadConn) {
		l.c.broken.Store(true)
	}
	return err
}
