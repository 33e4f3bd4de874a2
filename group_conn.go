package fairpool

import (
	"context"
	"math/rand/v2"
)

// A Group connection's life after hand-out: taken back on release or
// discard, opened in a goroutine of its own, closed. Each step hands on
// the room it frees through the Locked functions of group_dispatch.go.

// release takes back a connection whose lease was released, as
// Pool.release does.
func (g *Group[K, T]) release(s *shard[K, T], c *conn[T]) {
	if c.broken.Load() {
		g.discard(s, c, closeDiscarded)
		return
	}
	if g.cfg.Reset != nil {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.OpenTimeout)
		err := g.cfg.Reset(ctx, c.value)
		cancel()
		if err != nil {
			g.logResetFailed(s.key, err)
			g.discard(s, c, closeResetFailed)
			return
		}
	}
	var now mono
	if g.needClock {
		now = g.now()
		if r, ok := c.expired(now, 0); ok {
			g.discard(s, c, r)
			return
		}
	}
	g.lock()
	// The fast path: nobody waits for what this frees.
	if !g.closed && s.connQ.len == 0 && s.placeQ.len == 0 && g.globalQ.len == 0 && g.slotQ.len == 0 {
		s.places--
		g.leases--
		if now != 0 {
			c.idleSince = now
		}
		g.pushIdleLocked(s, c)
		g.mu.Unlock()
		return
	}
	var t todo[K, T]
	g.putLocked(s, c, now, &t)
	g.unplaceLocked(s, &t)
	g.unleaseLocked(1, &t)
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

// run does what critical sections left to do, including what doing it
// leaves: a close frees room that starts an open.
func (g *Group[K, T]) run(t *todo[K, T]) {
	for !t.empty() {
		first, ready, opens, closes := t.first, t.ready, t.opens, t.closes
		t.first, t.ready, t.opens, t.closes = nil, nil, nil, nil
		if first != nil {
			first.ready <- struct{}{} // capacity one, and one signal per wait: never blocks
		}
		for _, r := range ready {
			r.ready <- struct{}{} // capacity one, and one signal per wait: never blocks
		}
		for _, o := range opens {
			go g.open(o.s, o.ctx)
		}
		for _, j := range closes {
			g.destroy(j.s, j.c, t)
		}
	}
}

// open opens one connection for s, in a goroutine of its own so that the
// waiter it is for can give up without aborting it. Close cancels it.
func (g *Group[K, T]) open(s *shard[K, T], ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.OpenTimeout)
	stop := context.AfterFunc(g.stopOpens, cancel)
	v, err := g.cfg.Open(ctx, s.key)
	stop()
	cancel()
	var now mono
	if err == nil && g.needClock {
		now = g.now()
	}
	var t todo[K, T]
	g.mu.Lock()
	s.opening--
	g.opening--
	if err == nil {
		s.opens++
		g.putLocked(s, g.newConn(v, now), now, &t)
		g.mu.Unlock()
		g.run(&t)
		return
	}
	s.openErrors++
	s.numOpen--
	g.conns--
	err = &OpenError{Pool: g.keyName(s.key), Err: err}
	if p := s.connQ.head; p != nil {
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
	g.logOpenFailed(s.key, err, waiting)
	g.run(&t)
}

func (g *Group[K, T]) newConn(v T, now mono) *conn[T] {
	c := &conn[T]{value: v, idleSince: now}
	if lt := g.cfg.MaxLifetime; lt > 0 {
		if j := g.cfg.MaxLifetimeJitter; j > 0 {
			lt += rand.N(j)
		}
		c.expiresAt = now + mono(lt)
	}
	return c
}

// destroy closes c, already counted as closing, then frees its room: the
// slot line first (older needs), then its own key.
func (g *Group[K, T]) destroy(s *shard[K, T], c *conn[T], t *todo[K, T]) {
	var err error
	if g.cfg.Close != nil {
		err = g.cfg.Close(c.value)
	}
	g.logClosed(s.key, c.reason, err)
	g.mu.Lock()
	s.closing--
	s.numOpen--
	g.closing--
	g.conns--
	g.serveSlotsLocked(t)
	g.refillLocked(s, t)
	g.maybeDropLocked(s)
	g.checkDrainedLocked()
	g.mu.Unlock()
}
