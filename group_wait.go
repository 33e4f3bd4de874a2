package fairpool

import (
	"context"
	"time"
)

// The requesting goroutine's side: waiting, giving up, and (group_vet.go)
// vetting what it was given before it returns.

// serve waits, if waiting, for r to end, then vets its connections as Pool
// does on hand-out (expiry, Check), sending any that fail back to be
// closed while the part keeps its turn at the front of its key's connQ.
func (g *Group[K, T]) serve(ctx context.Context, r *request[K, T], waiting bool) error {
	for {
		if waiting {
			if err := g.wait(ctx, r); err != nil {
				return err
			}
			if over, late := g.tooLate(r); late {
				return g.shed(r, over)
			}
		}
		if !g.needClock {
			break
		}
		ok, err := g.vetAll(ctx, r)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if waiting, err = g.retry(r); err != nil {
			return err
		}
	}
	if r.waited {
		waited := time.Duration(g.now() - r.start)
		for i := range r.parts {
			s := r.parts[i].s
			s.hist.observe(waited)
			s.waitNanos.Add(int64(waited))
		}
		n := int64(len(r.parts))
		g.hist.counts[bucketOf(waited)].Add(n)
		g.waitNanos.Add(n * int64(waited))
		r.waitedFor = waited
		g.learn(r, waited)
	}
	return nil
}

// wait blocks until r ends (served, failed, or expired by the timer) or
// ctx ends.
func (g *Group[K, T]) wait(ctx context.Context, r *request[K, T]) error {
	done := ctx.Done()
	if done == nil {
		<-r.ready
		return r.err
	}
	select {
	case <-r.ready:
		if r.err == nil && ctx.Err() != nil {
			// Served as the context ended: the context wins and the
			// connections go on, never to a caller that gave up.
			return g.giveUp(r, ctx.Err(), true)
		}
		return r.err
	case <-done:
		return g.giveUp(r, ctx.Err(), false)
	}
}

// giveUp settles a request whose context ended. Under mu it is either
// still in line (it leaves and gives back what it holds), or was ended by
// the group in a critical section that happened before this one: failed
// or expired (that error stands), or served (the context wins and it all
// goes back). received says whether its signal was received already.
func (g *Group[K, T]) giveUp(r *request[K, T], cause error, received bool) error {
	var t todo[K, T]
	g.mu.Lock()
	// Ended by the group: its signal is sent, or will be right after the
	// ender unlocks. It is received below, so that none is left to wake
	// a later wait of this request (pooled, it may be another caller's).
	owed := !r.waiting && !received
	var err error
	if r.state == reqFailed {
		err = r.err
	} else {
		te := g.waitErrorLocked(r, cause)
		g.unwaitLocked(r)
		for i := range r.parts {
			g.count(r.parts[i].s, cCancels, 1)
		}
		g.abandonLocked(r, &t)
		err = te
	}
	g.mu.Unlock()
	if owed {
		<-r.ready
	}
	g.run(&t)
	return err
}

// shed gives back all that r, served too close to its context's deadline
// to use it, holds, and returns its ErrOverload; over is the hold it
// would have needed.
func (g *Group[K, T]) shed(r *request[K, T], over time.Duration) error {
	var t todo[K, T]
	g.mu.Lock()
	te := g.waitErrorLocked(r, ErrOverload)
	te.Estimate = over
	for i := range r.parts {
		g.count(r.parts[i].s, cSheds, 1)
	}
	g.abandonLocked(r, &t)
	g.mu.Unlock()
	g.run(&t)
	return te
}

// abandonLocked takes r out of whatever line it is in and gives back what
// it holds: connections first (to the next part of their key, or idle; or
// closed if they failed their vetting), then places, then its share of
// GlobalMax. A part whose Check still runs leaves its connection, place
// and share to the Check's goroutine (settleOrphan). r ends reqFailed; the
// caller settles its goroutine. Opens started for r go on, and their
// connections go to the next in line or idle.
func (g *Group[K, T]) abandonLocked(r *request[K, T], t *todo[K, T]) {
	pastGlobal := false
	switch r.state {
	case reqPlaces:
		p := &r.parts[r.step]
		p.s.placeQ.remove(p)
	case reqGlobal:
		g.globalQ.remove(r)
		for i := range r.parts {
			r.parts[i].s.global--
		}
	case reqConns, reqDone:
		pastGlobal = true
		for i := range r.parts {
			if p := &r.parts[i]; p.in != nil {
				p.in.remove(p)
			}
		}
	}
	wasGlobal := r.state == reqGlobal
	r.state = reqFailed // from here nothing can be given to r
	orphans := 0
	for i := range r.parts {
		p := &r.parts[i]
		c := p.c
		if c == nil {
			continue
		}
		p.c = nil
		g.count(p.s, cAcquires, -1) // that hand-out did not reach the caller
		switch p.vet {
		case vetBad:
			g.beginCloseLocked(p.s, c, p.bad, t)
		case vetOrphan:
			p.placed = false
			orphans++
		default: // as it was: a Check that failed for want of time says nothing of it
			g.putLocked(p.s, c, 0, t)
		}
	}
	for i := range r.parts {
		if p := &r.parts[i]; p.placed {
			p.placed = false
			g.unplaceLocked(p.s, t)
		}
	}
	if pastGlobal {
		g.unleaseLocked(len(r.parts)-orphans, t)
	} else if wasGlobal {
		g.serveGlobalLocked(t) // r may have held back smaller requests behind it
	}
	for i := range r.parts {
		g.refillLocked(r.parts[i].s, t) // fewer parts wait: a key may leave the slot line
	}
	g.unrefLocked(r)
}

// failLocked ends r with err, giving back all it holds.
func (g *Group[K, T]) failLocked(r *request[K, T], err error, t *todo[K, T]) {
	g.abandonLocked(r, t)
	g.endLocked(r, reqFailed, err, t)
}

// waitErrorLocked pictures the line r was in as it gives up: its key's, or
// the whole group's if it waited for GlobalMax. Waited counts from r's
// start, so it includes time spent in Check and earlier turns. With
// TrackLeases it names the holders of that line.
func (g *Group[K, T]) waitErrorLocked(r *request[K, T], cause error) *TimeoutError {
	// Without tracking, no hint: the one TimeoutError gives names
	// Config.TrackLeases, which is not a Group's.
	e := &TimeoutError{Err: cause, group: true}
	if r.start != 0 {
		e.Waited = time.Duration(g.now() - r.start)
	}
	if r.state == reqGlobal {
		e.Pool = g.cfg.Name
		e.MaxSize = g.cfg.GlobalMax
		e.Open, e.Idle, e.Opening = g.conns, g.idle, g.opening
		e.InUse = g.conns - g.opening - g.closing - g.idle
		e.Waiting = g.waiting
		if r.waiting {
			e.Waiting-- // others only
		}
		if g.cfg.TrackLeases {
			g.trackedErrorLocked(e, r, nil)
		}
		return e
	}
	s := r.parts[0].s
	switch r.state {
	case reqPlaces:
		s = r.parts[r.step].s
	case reqConns:
		for i := range r.parts {
			if r.parts[i].c == nil {
				s = r.parts[i].s
				break
			}
		}
	}
	e.Pool = g.keyName(s.key)
	e.MaxSize = g.cfg.PerKeyMax
	e.Open, e.Idle, e.Opening = s.numOpen, s.idle.len(), s.opening
	e.InUse = s.numOpen - s.opening - s.closing - s.idle.len()
	e.Waiting = s.placeQ.len + s.global + s.connQ.len
	if r.queuedOn(s) {
		e.Waiting-- // others only
	}
	if g.cfg.TrackLeases {
		g.trackedErrorLocked(e, r, s)
	}
	return e
}

// queuedOn reports whether r is counted among s's waiters.
func (r *request[K, T]) queuedOn(s *shard[K, T]) bool {
	for i := range r.parts {
		if p := &r.parts[i]; p.s == s {
			return p.in != nil || r.state == reqGlobal
		}
	}
	return false
}

// canceled is the error of an acquire whose context had ended before it
// began: it gets nothing, and no Check runs on its behalf, which would
// fail and close a healthy connection. As in Pool, no counter counts it:
// it never waited.
func (g *Group[K, T]) canceled(ctx context.Context, key K) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &request[K, T]{ctx: ctx}
	r.parts = r.one[:]
	r.parts[0] = part[K, T]{r: r, s: g.shards[key]}
	if r.parts[0].s == nil { // no pool yet: picture an empty one
		r.parts[0].s = &shard[K, T]{key: key}
	}
	return g.waitErrorLocked(r, ctx.Err())
}

// expire ends, with a *TimeoutError, the wait of every request whose
// AcquireTimeout has passed, and re-arms the timer for the earliest
// deadline left. The timed list is in deadline order, so the due requests
// are its head and the next deadline is the new head's. A request ended
// here under mu can no longer be served, so a timeout and a service never
// both reach it.
func (g *Group[K, T]) expire() {
	var t todo[K, T]
	g.mu.Lock()
	g.timer.fired()
	if g.closed {
		g.checkDrainedLocked()
		g.mu.Unlock()
		return
	}
	now := g.now()
	// Unlink first: giving back what one holds can serve, and so
	// unwait, others.
	var due []*request[K, T]
	for r := g.timed.head; r != nil && r.deadline <= now; r = g.timed.head {
		g.timed.remove(r)
		due = append(due, r)
	}
	var expired []*TimeoutError
	for _, r := range due {
		if !r.waiting {
			continue // served meanwhile
		}
		te := g.waitErrorLocked(r, ErrTimeout)
		for i := range r.parts {
			g.count(r.parts[i].s, cTimeouts, 1)
		}
		g.abandonLocked(r, &t)
		g.endLocked(r, reqFailed, te, &t)
		expired = append(expired, te)
	}
	if h := g.timed.head; h != nil {
		g.timer.arm(h.deadline, now)
	}
	g.mu.Unlock()
	g.run(&t)
	for _, te := range expired {
		logTimeout(g.cfg.Logger, te)
	}
}
