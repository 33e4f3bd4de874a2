package fairpool

import (
	"context"
	"time"
)

// A Group connection's life after hand-out: taken back on release or
// discard, opened in a goroutine of its own, closed in a goroutine of its
// own. Each step hands on the room it frees through the Locked functions
// of group_dispatch.go. The user's callbacks are called as callback.go
// says: a panic is that callback's failure, never the group's.

// release takes back a connection whose lease was released, as
// Pool.release does.
func (g *Group[K, T]) release(s *shard[K, T], c *conn[T]) {
	now, ok := g.reusable(c, s.key)
	if !ok {
		return
	}
	g.lock()
	// The fast path: nobody waits for what this frees, and the key has
	// room for one more idle.
	if !g.closed && s.connQ.len == 0 && s.placeQ.len == 0 && g.globalQ.len == 0 && g.slotQ.len == 0 && s.idle.len() < g.cfg.MaxIdle {
		s.places--
		g.leases--
		g.pushIdleLocked(s, c)
		g.mu.Unlock()
		return
	}
	var t todo[K, T]
	if g.globalQ.len > 0 {
		// The key's next request takes the freed place first: with the
		// global line not empty it can only join that line, and there it
		// may take c at once rather than see c closed for another key.
		g.unplaceLocked(s, &t)
		if !g.handOnLocked(s, c, now, &t) {
			g.putLocked(s, c, now, &t)
			g.unleaseLocked(1, &t)
		}
	} else {
		g.putLocked(s, c, now, &t)
		g.unplaceLocked(s, &t)
		g.unleaseLocked(1, &t)
	}
	g.mu.Unlock()
	g.run(&t)
}

// discard closes a connection whose lease ended, freeing its place and
// its share of GlobalMax at once; its room under the limits follows when
// the close is done.
func (g *Group[K, T]) discard(s *shard[K, T], c *conn[T], r closeReason) {
	var t todo[K, T]
	g.lock()
	g.beginCloseLocked(s, c, r, &t)
	g.unplaceLocked(s, &t)
	g.unleaseLocked(1, &t)
	g.mu.Unlock()
	g.run(&t)
}

// run does what a critical section left to do. Opens and closes each get
// a goroutine of their own: run is called on the goroutines of Acquire,
// Release, Discard and Close, which a slow Open or Close must not hold.
func (g *Group[K, T]) run(t *todo[K, T]) {
	if t.first != nil {
		t.first.ready <- struct{}{} // capacity one, and one signal per wait: never blocks
	}
	for _, r := range t.ready {
		r.ready <- struct{}{} // capacity one, and one signal per wait: never blocks
	}
	for _, o := range t.opens {
		go g.open(o.s, o.ctx, o.at)
	}
	for _, j := range t.closes {
		go g.destroy(j.s, j.c, j.at)
	}
}

// open opens one connection for s, in a goroutine of its own so that the
// waiter it is for can give up without aborting it (see life.open). at is
// when the open was decided. It returns Open's error, for the sweeper,
// which opens in its own goroutine.
func (g *Group[K, T]) open(s *shard[K, T], ctx context.Context, at mono) (err error) {
	g.life.open(ctx, s.key, func(ctx context.Context) (T, error) { return g.cfg.Open(ctx, s.key) }, func(v T, e error) {
		err = e
		g.opened(s, at, v, e)
	})
	return err
}

// opened settles the slot of a finished open of s: the connection goes to
// the key's next waiter or idle; a failure frees the slot and fails the
// key's next waiter.
func (g *Group[K, T]) opened(s *shard[K, T], at mono, v T, err error) {
	var now mono
	if err == nil {
		now = g.now()
	}
	var t todo[K, T]
	g.mu.Lock()
	s.opening--
	g.opening--
	if err == nil {
		// Only opens that succeed: a refusal, however fast, says nothing
		// of what a move would cost.
		observeCost(&g.openCost, time.Duration(now-at))
		if !g.needClock {
			now = 0 // the connection keeps no clock
		}
		g.count(s, cOpens, 1)
		g.putLocked(s, g.newConn(s, v, now), now, &t)
		g.mu.Unlock()
		g.run(&t)
		return
	}
	g.count(s, cOpenErrors, 1)
	s.numOpen--
	g.conns--
	err = &OpenError{Pool: g.keyName(s.key), Err: err}
	if p := s.connQ.next(); p != nil {
		// As in Pool: the next in line hears of the failure at once
		// rather than wait out its timeout on a server that refuses.
		g.failLocked(p.r, err, &t)
	}
	g.serveSlotsLocked(&t)
	g.refillLocked(s, &t)
	g.maybeDropLocked(s)
	g.checkDrainedLocked()
	waiting := s.placeQ.len + s.global + s.connQ.len
	g.mu.Unlock()
	g.events(s.key).openFailed(err, waiting)
	g.run(&t)
}

// A key's shard is the home of its connections: a GroupLease's Release
// and Discard reach the group through it.

func (s *shard[K, T]) untrack(c *conn[T])                { s.g.untrack(c) }
func (s *shard[K, T]) release(c *conn[T])                { s.g.release(s, c) }
func (s *shard[K, T]) discard(c *conn[T], r closeReason) { s.g.discard(s, c, r) }

// destroy closes c, already counted as closing, then frees its room: the
// slot line first (older needs), then its own key. It runs on a goroutine
// of its own (see run); the room stays counted until Close returns, so the
// limits bound connections being closed too. at is when the close was
// decided.
func (g *Group[K, T]) destroy(s *shard[K, T], c *conn[T], at mono) {
	g.closeConn(c, s.key)
	now := g.now()
	var t todo[K, T]
	g.mu.Lock()
	observeCost(&g.closeCost, time.Duration(now-at))
	s.closing--
	s.numOpen--
	g.closing--
	g.conns--
	g.serveSlotsLocked(&t)
	g.refillLocked(s, &t)
	g.kickLocked(s)
	g.maybeDropLocked(s)
	g.checkDrainedLocked()
	g.mu.Unlock()
	g.run(&t)
}
