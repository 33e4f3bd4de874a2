package fairpool

import "time"

// Overload in a Group, by the rule overload.go gives a Pool: a request
// whose context's deadline the lines of its keys cannot meet is turned
// away at once (ErrOverload), and one served too close to its deadline to
// use its connections gives them back at once to the next in line. Each
// key keeps its own pace, learned from its single-key requests: how long
// each waited for each request that was ahead of it in the key's lines.
// The global line is not estimated: a request that waits for GlobalMax is
// judged by its keys' lines alone, and at its turn.

// shedLocked turns away r, about to enter the lines, if its context's
// deadline cannot be met: for one of its keys, with every place taken,
// the requests ahead at the key's pace, plus a lease's hold, end past
// it. A request first in its keys' lines is always let in: its wait
// teaches the pace. It returns nil to let r in.
func (g *Group[K, T]) shedLocked(r *request[K, T]) error {
	if g.cfg.IgnoreDeadlines {
		return nil
	}
	// Judged at its turn in any order, as in a Pool; at entry only in
	// arrival order, where the line ahead is the line it waits behind.
	r.ctxDone = ctxDeadline(r.ctx, g.base)
	if r.ctxDone == 0 || g.cfg.WaitOrder == LIFO {
		return nil
	}
	var worst time.Duration
	for i := range r.parts {
		s := r.parts[i].s
		ahead := s.placeQ.len + s.connQ.len
		if s.places < g.cfg.PerKeyMax || ahead == 0 {
			continue
		}
		if len(r.parts) == 1 {
			r.ahead, r.paced = ahead, true
		}
		if wait, hold := s.pace.estimate(ahead, g.cfg.PerKeyMax); wait > 0 {
			worst = max(worst, wait+hold)
		}
	}
	if worst == 0 || g.now().add(worst) <= r.ctxDone {
		return nil
	}
	for i := range r.parts {
		g.count(r.parts[i].s, cSheds, 1)
	}
	te := g.waitErrorLocked(r, ErrOverload)
	te.Estimate = worst
	return te
}

// learn teaches r's key the pace of its lines from r's wait, if r was
// judged at entry by a line it waited in.
func (g *Group[K, T]) learn(r *request[K, T], waited time.Duration) {
	if r.paced {
		r.parts[0].s.pace.observe(waited / time.Duration(r.ahead+1))
	}
}

// tooLate reports whether r, served after waiting, is too close to its
// context's deadline to use its connections for a lease's hold, and by
// how much it would overrun.
func (g *Group[K, T]) tooLate(r *request[K, T]) (time.Duration, bool) {
	if r.ctxDone == 0 {
		return 0, false
	}
	var hold time.Duration
	for i := range r.parts {
		_, h := r.parts[i].s.pace.estimate(0, g.cfg.PerKeyMax)
		hold = max(hold, h)
	}
	return hold, hold > 0 && g.now().add(hold) > r.ctxDone
}
