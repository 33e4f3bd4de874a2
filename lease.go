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

// home is where a leased connection goes back to: its Pool, or its key in
// a Group. A Lease reaches it through the connection, so that one Lease
// type, and one rule for ending it, serves both.
type home[T any] interface {
	untrack(c *conn[T])
	release(c *conn[T])
	discard(c *conn[T], r closeReason)
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
	if c := l.c; c.holder.CompareAndSwap(l, nil) {
		l.untrack(c)
		if c.use.since != 0 { // the common case makes no call
			c.use.ended()
		}
		c.home.release(c)
	}
}

// Discard closes the connection instead of reusing it: call it when the
// connection is broken or its state is unknown. Its slot goes to the oldest
// waiter, who gets a fresh connection. The first call of Release or Discard
// wins; later calls do nothing.
func (l *Lease[T]) Discard() {
	if c := l.c; c.holder.CompareAndSwap(l, nil) {
		l.untrack(c)
		if c.use.since != 0 { // the common case makes no call
			c.use.ended()
		}
		c.home.discard(c, closeDiscarded)
	}
}

// untrack forgets the record of a lease that TrackLeases recorded. l stays
// reachable until it returns: a GC cleanup that ran before would find the
// record still held and reclaim a connection that is being released. (A
// GroupLease is kept alive by its embedded Lease.) c.rec is read without
// mu: only the lease's holder writes it, and the holder is the caller.
func (l *Lease[T]) untrack(c *conn[T]) {
	if c.rec != nil {
		c.home.untrack(c)
		runtime.KeepAlive(l)
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
		return runLease(ctx, l.c, fn)
	}
	l, err := p.acquire(ctx, true, true)
	if err != nil {
		return err
	}
	return holdFor(context.WithValue(ctx, leaseKey[T]{p}, l), l.c, fn, l.Release, l.Discard)
}

// runLease calls fn with c's value and marks c broken if fn says so or
// panics. Pool's and Group's With, Require and nested With run fn this way.
func runLease[T any](ctx context.Context, c *conn[T], fn func(context.Context, T) error) error {
	returned := false
	defer func() {
		if !returned {
			c.broken.Store(true)
		}
	}()
	err := fn(ctx, c.value)
	returned = true
	if err != nil && errors.Is(err, ErrBadConn) {
		c.broken.Store(true)
	}
	return err
}

// holdFor runs fn on c as the outermost With does, then ends the lease:
// discard if fn panicked (the panic goes on after this) or reported the
// connection broken, release otherwise.
func holdFor[T any](ctx context.Context, c *conn[T], fn func(context.Context, T) error, release, discard func()) error {
	returned := false
	defer func() {
		if !returned {
			discard()
		}
	}()
	err := runLease(ctx, c, fn)
	returned = true
	if c.broken.Load() {
		discard()
	} else {
		release()
	}
	return err
}
