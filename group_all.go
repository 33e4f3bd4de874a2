package fairpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
)

// LeaseSet is leases on several keys of a Group, taken together by
// AcquireAll. Release gives them all back; each lease can also be released
// or discarded on its own (Lease), and the first call on each lease wins.
type LeaseSet[K cmp.Ordered, T any] struct {
	keys   []K // ascending
	leases []*GroupLease[K, T]
}

// Keys returns the set's keys in ascending order, the order they were
// taken in.
func (ls *LeaseSet[K, T]) Keys() []K { return slices.Clone(ls.keys) }

// Lease returns the lease on key, or nil if key is not in the set.
func (ls *LeaseSet[K, T]) Lease(key K) *GroupLease[K, T] {
	if i, ok := slices.BinarySearch(ls.keys, key); ok {
		return ls.leases[i]
	}
	return nil
}

// Value returns key's connection. It panics if key is not in the set or
// its lease has ended.
func (ls *LeaseSet[K, T]) Value(key K) T {
	l := ls.Lease(key)
	if l == nil {
		panic(fmt.Sprintf("fairpool: LeaseSet.Value: key %v is not in the set", key))
	}
	return l.Value()
}

// Release releases every lease of the set not yet released or discarded.
func (ls *LeaseSet[K, T]) Release() {
	for _, l := range ls.leases {
		l.Release()
	}
}

// Discard discards every lease of the set not yet released or discarded.
func (ls *LeaseSet[K, T]) Discard() {
	for _, l := range ls.leases {
		l.Discard()
	}
}

// AcquireAll returns leases on all of keys or on none. Whatever order keys
// come in, they are taken in ascending order, each key's place in that
// key's line, then the share of GlobalMax for all of them at once in the
// global line (see Group): so callers taking several keys, in any order,
// never deadlock one another. On a timeout, a cancelled context, a failed
// open or Close, everything taken so far is given back, and nothing is
// leaked; the error is as Acquire's. AcquireTimeout bounds the whole wait.
//
// A key given twice is an error wrapping ErrDuplicateKey; more keys than
// GlobalMax, ErrTooManyKeys. Like Acquire, AcquireAll is not reentrant:
// it ignores leases bound to ctx (WithAll does not).
func (g *Group[K, T]) AcquireAll(ctx context.Context, keys ...K) (*LeaseSet[K, T], error) {
	return g.acquireAll(ctx, false, keys...)
}

// acquireAll is AcquireAll. pinned says the leases are WithAll's, held by
// the calling goroutine until WithAll returns (see deadlockLocked).
func (g *Group[K, T]) acquireAll(ctx context.Context, pinned bool, keys ...K) (*LeaseSet[K, T], error) {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	if err := g.checkKeys(sorted); err != nil {
		return nil, err
	}
	ls := &LeaseSet[K, T]{keys: sorted, leases: make([]*GroupLease[K, T], len(sorted))}
	if len(sorted) == 0 {
		return ls, nil
	}
	if ctx.Err() != nil {
		return nil, g.canceled(ctx, sorted[0])
	}
	var who *caller
	if g.cfg.TrackLeases {
		who = currentCaller()
	}
	r := &request[K, T]{ctx: withCaller(ctx, who), parts: make([]part[K, T], len(sorted))}
	g.lock()
	for i, k := range sorted {
		s, err := g.shardLocked(k)
		if err != nil {
			g.mu.Unlock()
			return nil, err
		}
		r.parts[i] = part[K, T]{r: r, s: s}
	}
	if err := g.enterLocked(ctx, r, who); err != nil {
		return nil, err
	}
	for i := range r.parts {
		p := &r.parts[i]
		ls.leases[i] = g.newLease(p.c, p.s, r.waitedFor)
	}
	if who != nil {
		g.track(who, pinned, ls.leases...)
	}
	return ls, nil
}

// checkKeys rejects sorted keys with a duplicate, or more than GlobalMax.
func (g *Group[K, T]) checkKeys(sorted []K) error {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return fmt.Errorf("%w: %v", ErrDuplicateKey, sorted[i])
		}
	}
	if g.cfg.GlobalMax > 0 && len(sorted) > g.cfg.GlobalMax {
		return fmt.Errorf("%w: %d keys, GlobalMax %d", ErrTooManyKeys, len(sorted), g.cfg.GlobalMax)
	}
	return nil
}

// WithAll runs fn with a connection for each of keys (conns[i] is keys[i]'s)
// and gives them back when fn returns, even if fn panics. The connections
// are taken as AcquireAll takes them, all or nothing, in ascending order,
// except those of keys that an enclosing With or WithAll already bound to
// ctx, which are reused. fn's context carries every one of them, so a
// nested With or WithAll on any of these keys reuses its connection instead
// of waiting for itself: code that re-enters a shard it already holds
// (a helper called from inside the transaction) cannot deadlock on it.
//
// ctx bounds only the wait. fn's error is returned unchanged; if it wraps
// ErrBadConn, or fn panics, all of the connections are discarded (the
// reused ones by their outermost holder), since WithAll cannot tell which
// one broke, unless a nested With reported ErrBadConn for its key: then
// only that key's connection is.
func (g *Group[K, T]) WithAll(ctx context.Context, keys []K, fn func(ctx context.Context, conns []T) error) error {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	if err := g.checkKeys(sorted); err != nil {
		return err
	}
	conns := make([]T, len(keys))
	held := make([]*conn[T], 0, len(keys))
	var need []K
	for i, k := range keys {
		if l := g.bound(ctx, k); l != nil {
			conns[i] = l.c.value
			held = append(held, l.c)
		} else {
			need = append(need, k)
		}
	}
	ls, err := g.acquireAll(ctx, true, need...)
	if err != nil {
		return err
	}
	inner := ctx
	for i, k := range keys {
		if l := ls.Lease(k); l != nil {
			conns[i] = l.c.value
			held = append(held, l.c)
			inner = context.WithValue(inner, groupLeaseKey[K, T]{g, k}, l)
		}
	}
	returned := false
	defer func() {
		if !returned { // fn panicked; the panic goes on after this
			for _, c := range held {
				c.broken.Store(true)
			}
			ls.Discard()
		}
	}()
	err = fn(inner, conns)
	returned = true
	if err != nil && errors.Is(err, ErrBadConn) && !slices.ContainsFunc(held, func(c *conn[T]) bool { return c.broken.Load() }) {
		// No nested With said which one broke: discard them all.
		for _, c := range held {
			c.broken.Store(true)
		}
	}
	for _, l := range ls.leases {
		if l.c.broken.Load() {
			l.Discard()
		} else {
			l.Release()
		}
	}
	return err
}
