package fairpool

import (
	"cmp"
	"context"
	"time"
)

// GroupLease is the right to use one key's connection until Release or
// Discard: a Lease, with its rules (each acquire returns a new one, the
// first call of Release or Discard wins and later ones do nothing, Value
// panics after either), plus the key it is for.
type GroupLease[K cmp.Ordered, T any] struct {
	Lease[T]
	s *shard[K, T]
}

// newLease makes the lease on c, of key s, handed out after a wait of
// waited.
func (g *Group[K, T]) newLease(c *conn[T], s *shard[K, T], waited time.Duration) *GroupLease[K, T] {
	handedOut(&g.obs, c, waited)
	l := &GroupLease[K, T]{Lease: Lease[T]{c: c}, s: s}
	c.holder.Store(&l.Lease)
	return l
}

// held reports whether the lease has not ended.
func (l *GroupLease[K, T]) held() bool { return l.c.holder.Load() == &l.Lease }

// Key returns the key the lease is for.
func (l *GroupLease[K, T]) Key() K { return l.s.key }

// Acquire returns a lease on a connection for key, waiting in key's line
// and then in the global one if needed (see Group). It gives up as
// Pool.Acquire does: *TimeoutError at AcquireTimeout, counted from the
// call and including any Check, or when ctx ends (at once, with nothing
// handed out or checked, if ctx has ended already); ErrClosed after
// Close. The caller must Release or Discard the lease. Acquire is not
// reentrant; With is.
func (g *Group[K, T]) Acquire(ctx context.Context, key K) (*GroupLease[K, T], error) {
	return g.acquire(ctx, key, false)
}

// acquire is Acquire. pinned says the lease is With's: held by the calling
// goroutine until With returns, which is what makes a deadlock certain
// (see deadlockLocked).
func (g *Group[K, T]) acquire(ctx context.Context, key K, pinned bool) (l *GroupLease[K, T], err error) {
	if ctx.Err() != nil {
		return nil, g.canceled(ctx, key)
	}
	var who *caller
	if g.cfg.TrackLeases {
		who = currentCaller()
		defer func() {
			if l != nil {
				g.track(who, pinned, l)
			}
		}()
	}
	g.lock()
	s, err := g.shardLocked(key)
	if err != nil {
		g.mu.Unlock()
		return nil, err
	}
	// The fast path: nobody waits in either line this request would pass,
	// both have room, and the key has an idle connection.
	if g.takeableLocked(s) {
		c := g.handOutIdleLocked(s)
		g.mu.Unlock()
		now, ok := g.fresh(c)
		if ok {
			return g.newLease(c, s, 0), nil
		}
		// It must be vetted: as a request that holds its place, its
		// share of GlobalMax and c, whose clock starts now.
		r := g.getRequest(withCaller(ctx, who), s)
		g.startLocked(r, now)
		p := &r.parts[0]
		p.c, p.placed = c, true
		r.state = reqDone
		return g.leaseOf(r, g.serve(ctx, r, false))
	}
	r := g.getRequest(withCaller(ctx, who), s)
	return g.leaseOf(r, g.enterLocked(ctx, r, who))
}

// enterLocked puts r, its parts set, in the lines: as far as it gets at
// once, then waiting for the rest. It returns once r is served, or with
// the error that ended it (ErrDeadlock first, where waiting is certain to
// deadlock, with TrackLeases; ErrOverload, where its deadline cannot be
// met). It releases mu.
func (g *Group[K, T]) enterLocked(ctx context.Context, r *request[K, T], who *caller) error {
	if who != nil {
		if err := g.deadlockLocked(who.gid, r); err != nil {
			g.mu.Unlock()
			return err
		}
	}
	if err := g.shedLocked(r); err != nil {
		g.mu.Unlock()
		return err
	}
	var t todo[K, T]
	g.admitLocked(r, &t)
	waiting := r.state != reqDone
	if waiting {
		g.beginWaitLocked(r)
	}
	g.mu.Unlock()
	g.run(&t)
	return g.serve(ctx, r, waiting)
}

// getRequest returns a request for one key, from the pool.
func (g *Group[K, T]) getRequest(ctx context.Context, s *shard[K, T]) *request[K, T] {
	r, _ := g.reqs.Get().(*request[K, T])
	if r == nil {
		r = &request[K, T]{ready: make(chan struct{}, 1)}
	}
	r.ctx = ctx
	r.parts = r.one[:]
	r.parts[0] = part[K, T]{r: r, s: s}
	return r
}

// leaseOf returns the lease a served single-key request got, or err, and
// puts the request back in the pool: once served or failed, no line and no
// other goroutine refers to it.
func (g *Group[K, T]) leaseOf(r *request[K, T], err error) (*GroupLease[K, T], error) {
	var l *GroupLease[K, T]
	if err == nil {
		l = g.newLease(r.parts[0].c, r.parts[0].s, r.waitedFor)
	}
	ready := r.ready
	*r = request[K, T]{ready: ready}
	g.reqs.Put(r)
	return l, err
}

// groupLeaseKey binds a group's lease on one key to a context.
type groupLeaseKey[K cmp.Ordered, T any] struct {
	g   *Group[K, T]
	key K
}

// bound returns the lease on key that an enclosing With or WithAll bound
// to ctx, if it is still held.
func (g *Group[K, T]) bound(ctx context.Context, key K) *GroupLease[K, T] {
	if l, ok := ctx.Value(groupLeaseKey[K, T]{g, key}).(*GroupLease[K, T]); ok && l.held() {
		return l
	}
	return nil
}

// With runs fn with a connection for key and gives it back when fn
// returns, as Pool.With does: ctx bounds only the wait; fn's context
// carries the lease, so a nested With on the same key (or a WithAll that
// includes it) reuses the connection; an error wrapping ErrBadConn or a
// panic discards the connection (by the outermost holder, when nested).
func (g *Group[K, T]) With(ctx context.Context, key K, fn func(ctx context.Context, conn T) error) error {
	if l := g.bound(ctx, key); l != nil {
		return runLease(ctx, l.c, fn)
	}
	l, err := g.acquire(ctx, key, true)
	if err != nil {
		return err
	}
	return holdFor(context.WithValue(ctx, groupLeaseKey[K, T]{g, key}, l), l.c, fn, l.Release, l.Discard)
}
