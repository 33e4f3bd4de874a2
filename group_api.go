package fairpool

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Group's counterparts of Pool's TryAcquire, Require, Waiters and Var,
// under the same names and with the same meaning, per key.

// TryAcquire is Acquire without waiting in line: it returns ErrExhausted,
// wrapped with the key's name (Name[key]), when no connection of key can
// be handed out at once: none is idle, the key is at PerKeyMax or the
// group at GlobalMax, or someone waits in a line this request would pass
// (the key's, or the global one). So it never jumps a line.
//
// When it fails only because nothing of the key is idle, while the key
// and the group have room for one more connection and nobody waits, it
// starts opening one in the background for a later call, as
// Pool.TryAcquire does. That connection then counts against PerKeyMax and
// GlobalMax like any other: it goes to the key's next waiter, or idle,
// where another key's need under GlobalMax can evict it.
//
// An idle connection due for GroupConfig.Check is checked before it is
// handed out, for no longer than Acquire would wait (AcquireTimeout, or
// ctx); one that fails its check, or has expired, is closed and the next
// idle one of the key is tried. A context that has ended gets its error
// at once, as with Acquire; after Close, ErrClosed.
func (g *Group[K, T]) TryAcquire(ctx context.Context, key K) (*GroupLease[K, T], error) {
	var who *caller
	if g.cfg.TrackLeases {
		who = currentCaller()
	}
	l, err := g.tryAcquire(ctx, key)
	if l != nil && who != nil {
		g.track(who, false, l)
	}
	return l, err
}

func (g *Group[K, T]) tryAcquire(ctx context.Context, key K) (*GroupLease[K, T], error) {
	if ctx.Err() != nil {
		return nil, g.canceled(ctx, key)
	}
	// r carries the clock of the first check across the connections
	// tried, so that all of them together take no longer than one
	// Acquire: made on the first connection that needs vetting.
	var r *request[K, T]
	for {
		g.lock()
		s, err := g.shardLocked(key)
		if err != nil {
			g.mu.Unlock()
			g.putRequest(r)
			return nil, err
		}
		if !g.takeableLocked(s) {
			var t todo[K, T]
			g.prefetchLocked(ctx, s, &t)
			g.mu.Unlock()
			g.run(&t)
			g.putRequest(r)
			return nil, &poolError{pool: g.keyName(key), err: ErrExhausted}
		}
		c := g.handOutIdleLocked(s)
		g.mu.Unlock()
		now, ok := g.fresh(c)
		if ok {
			g.putRequest(r)
			return g.newLease(c, s, 0), nil
		}
		if r == nil {
			r = g.getRequest(ctx, s)
		}
		// Done, and in no line: r and its clock are this goroutine's.
		r.parts[0] = part[K, T]{r: r, s: s, c: c, placed: true}
		r.state = reqDone
		g.startLocked(r, now) // kept from an earlier try: one deadline for all
		ok, err = g.vetAll(ctx, r)
		if err != nil || ok {
			// On an error vetAll has given everything back already.
			return g.leaseOf(r, err)
		}
		// Refused: the connection closes and its place and share go on,
		// as if this caller had never taken them; then the next idle one,
		// if nobody has come to wait meanwhile.
		var t todo[K, T]
		g.mu.Lock()
		g.abandonLocked(r, &t)
		g.mu.Unlock()
		g.run(&t)
	}
}

// takeableLocked reports whether a request for s may take one of s's idle
// connections now: there is one, both limits have room, and nobody waits
// in a line the request would pass. Acquire's fast path asks the same.
func (g *Group[K, T]) takeableLocked(s *shard[K, T]) bool {
	return s.placeQ.len == 0 && s.connQ.len == 0 && s.places < g.cfg.PerKeyMax &&
		g.globalQ.len == 0 && g.leases < g.globalMax && s.idle.len() > 0
}

// handOutIdleLocked is the fast path's hand-out, when takeableLocked: the
// place, the share of GlobalMax and the connection, taken at once.
func (g *Group[K, T]) handOutIdleLocked(s *shard[K, T]) *conn[T] {
	c := g.popIdleLocked(s)
	s.places++
	g.leases++
	g.count(s, cAcquires, 1)
	return c
}

// prefetchLocked starts one open for s on behalf of a TryAcquire that
// found nothing idle, if that breaks no rule: nobody waits for the key, the
// global line or a slot (so the new connection is nobody's turn taken),
// nothing of the key is idle or opening already (one at a time, as in
// Pool), and both the key and the group have room for a lease and a
// connection. The open is for no request: when it is done, putLocked gives
// the connection to the key's next waiter if one has come, else idle.
// Meanwhile a part that queues for the key counts it as opening for it
// (wantLocked), so no second open starts for the same need.
func (g *Group[K, T]) prefetchLocked(ctx context.Context, s *shard[K, T], t *todo[K, T]) {
	if g.closed || s.placeQ.len > 0 || s.connQ.len > 0 || s.global > 0 || g.globalQ.len > 0 || g.slotQ.len > 0 ||
		s.idle.len() > 0 || s.opening > 0 ||
		s.places >= g.cfg.PerKeyMax || s.numOpen >= g.cfg.PerKeyMax ||
		g.leases >= g.globalMax || g.conns >= g.globalMax {
		return
	}
	// openLocked's counting, with the caller's context for Open's values:
	// openLocked takes its context from a part waiting in the key's
	// connQ, and there is none.
	g.conns++
	g.opening++
	s.numOpen++
	s.opening++
	t.opens = append(t.opens, openJob[K, T]{s, ctx, g.now()})
}

// putRequest puts back in the pool a request that TryAcquire made for a
// check and no longer needs; nil does nothing.
func (g *Group[K, T]) putRequest(r *request[K, T]) {
	if r != nil {
		ready := r.ready
		*r = request[K, T]{ready: ready}
		g.reqs.Put(r)
	}
}

// Require runs fn with the connection for key that an enclosing With, or
// a WithAll that includes key, bound to ctx, and returns ErrNoLease
// (wrapped with the key's name, Name[key]) if there is none or it has
// been given back. It never takes a connection of its own, as
// Pool.Require: code below the middleware that does the With can demand
// the request's connection instead of silently checking out another. As in
// With, an error of fn that wraps ErrBadConn, or a panic, has the
// connection discarded by the With that holds it (for a WithAll, that
// key's connection only).
func (g *Group[K, T]) Require(ctx context.Context, key K, fn func(ctx context.Context, conn T) error) error {
	if l := g.bound(ctx, key); l != nil {
		return runLease(ctx, l.c, fn)
	}
	return &poolError{pool: g.keyName(key), err: ErrNoLease}
}

// Waiters returns how long each request now waiting in the group has
// waited, longest first, whatever its keys: a request for several keys
// (AcquireAll) is listed once. Its length is Stats().Total.Waiting. A
// wait counts as in KeyWaiters.
func (g *Group[K, T]) Waiters() []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	seen := make(map[*request[K, T]]bool, g.waiting)
	var starts []mono
	add := func(r *request[K, T]) {
		if !seen[r] {
			seen[r] = true
			starts = append(starts, r.start)
		}
	}
	for r := g.globalQ.head; r != nil; r = r.next {
		add(r)
	}
	for _, s := range g.shards {
		for p := s.connQ.head; p != nil; p = p.next {
			add(p.r)
		}
		for p := s.placeQ.head; p != nil; p = p.next {
			add(p.r)
		}
	}
	slices.Sort(starts)
	ws := make([]time.Duration, len(starts))
	for i, st := range starts {
		ws[i] = time.Duration(now - st)
	}
	return ws
}

// KeyWaiters returns how long each request now waiting for key has waited,
// in the order the key will serve them: first those past both lines
// waiting for a connection to be opened or released, then those holding
// the key's place in the global line (in that line's order, whatever
// their keys), then those waiting for a place on the key. Its length is
// KeyStats(key).Waiting.
//
// A request in the global line waits for every one of its keys at once,
// so an AcquireAll there is listed under each of its keys; one still
// taking its keys' places is listed only under the key whose line it is
// in, not under those it holds already or has yet to reach. A wait counts
// from when the request began waiting, or from its first Check if that
// came first, as TimeoutError.Waited does. A key without a pool has no
// waiters: KeyWaiters returns an empty slice.
func (g *Group[K, T]) KeyWaiters(key K) []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.shards[key]
	if s == nil {
		return []time.Duration{}
	}
	now := g.now()
	ws := make([]time.Duration, 0, s.connQ.len+s.global+s.placeQ.len)
	for p := s.connQ.next(); p != nil; p = s.connQ.after(p) {
		ws = append(ws, time.Duration(now-p.r.start))
	}
	for r, n := g.globalQ.head, s.global; r != nil && n > 0; r = r.next {
		for i := range r.parts {
			if r.parts[i].s == s {
				ws = append(ws, time.Duration(now-r.start))
				n--
				break
			}
		}
	}
	for p := s.placeQ.next(); p != nil; p = s.placeQ.after(p) {
		ws = append(ws, time.Duration(now-p.r.start))
	}
	return ws
}

// Var returns the group's GroupStats as an expvar.Var, as Pool.Var does
// for a pool:
//
//	expvar.Publish("tenants", group.Var())
//
// Each read takes a fresh Stats and renders it as JSON, with the fields
// of GroupStats; Keys is an object whose names are the keys formatted
// with %v (as in the key's pool name, Name[key]), so keys of any ordered
// type, floats included, can be named in JSON.
func (g *Group[K, T]) Var() fmt.Stringer { return groupVar[K, T]{g} }

type groupVar[K cmp.Ordered, T any] struct{ g *Group[K, T] }

func (v groupVar[K, T]) String() string {
	gs := v.g.Stats()
	keys := make(map[string]Stats, len(gs.Keys))
	for k, s := range gs.Keys {
		keys[fmt.Sprint(k)] = s
	}
	// The outer Keys hides GroupStats.Keys from encoding/json, which
	// could not name a float key; every other field is GroupStats' own.
	b, err := json.Marshal(struct {
		*GroupStats[K]
		Keys map[string]Stats
	}{&gs, keys})
	if err != nil { // only numbers and strings; this cannot happen
		return strconv.Quote(err.Error())
	}
	return string(b)
}
