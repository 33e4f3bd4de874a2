package fairpool

import "time"

// How a request moves, and how whatever frees a place, a lease or a
// connection hands it on. Every function here ending in Locked runs under
// Group.mu and records in a todo what must happen after Unlock: opens and
// closes never run under the lock.
//
// The one rule behind them all: nothing freed ever rests while someone in
// line could use it. A place freed on a key goes to the next part in the
// key's line; leases freed under GlobalMax go to the front of the global
// line, as long as its head fits (a request for n keys at the head is not
// overtaken by smaller ones behind it, or it could starve, as in
// x/sync/semaphore); a connection freed goes to the next part waiting for
// one of its key, else is closed if another key needs the room, else goes
// idle.
//
// One exception keeps a busy group from spending its budget reconnecting
// (handOnLocked): a lease released with its connection, while every
// connection GlobalMax allows exists, passes with the connection to the
// oldest request of the same key in the global line, ahead of older
// requests of other keys, as long as the head of the line has been passed
// over so for less than what a move costs (moveBoundLocked). Serving the
// head instead would close the connection and open one for the head's key:
// a close and an open during which the room serves nobody.

func (g *Group[K, T]) ticket() uint64 {
	g.nextTicket++
	return g.nextTicket
}

// admitLocked starts r: its parts take their keys' places in key order.
// Until r ends, its keys are kept from being dropped, even those it has
// not reached yet.
func (g *Group[K, T]) admitLocked(r *request[K, T], t *todo[K, T]) {
	r.refs = true
	for i := range r.parts {
		r.parts[i].s.refs++
	}
	r.state = reqPlaces
	g.placeNextLocked(r, t)
}

// unrefLocked ends r's hold on its keys: it is served (its leases now
// hold the keys) or has failed.
func (g *Group[K, T]) unrefLocked(r *request[K, T]) {
	if !r.refs {
		return
	}
	r.refs = false
	for i := range r.parts {
		s := r.parts[i].s
		s.refs--
		g.maybeDropLocked(s)
	}
}

// placeNextLocked takes places for r's parts from r.step on, stopping at
// the first key that has none free (or a line), and moves r to the global
// line once it has them all. A part asks for its key only once it holds
// every smaller key: the canonical order that keeps requests for several
// keys from waiting on one another in a cycle.
func (g *Group[K, T]) placeNextLocked(r *request[K, T], t *todo[K, T]) {
	for r.step < len(r.parts) {
		p := &r.parts[r.step]
		s := p.s
		if s.placeQ.len > 0 || s.places >= g.cfg.PerKeyMax {
			s.placeQ.push(p, g.ticket())
			return
		}
		s.places++
		p.placed = true
		r.step++
	}
	g.enterGlobalLocked(r, t)
}

// enterGlobalLocked takes r's share of GlobalMax, one per key and all at
// once, or puts r in the global line. Taking them together is what makes
// several keys safe under a global limit: a request never holds part of
// its share while waiting for the rest.
func (g *Group[K, T]) enterGlobalLocked(r *request[K, T], t *todo[K, T]) {
	n := len(r.parts)
	if g.globalQ.len == 0 && g.leases+n <= g.globalMax {
		g.leases += n
		g.connectLocked(r, t)
		return
	}
	r.state = reqGlobal
	g.globalQ.push(r, g.ticket())
	for i := range r.parts {
		r.parts[i].s.global++
	}
}

// serveGlobalLocked lets requests through the global line, oldest first,
// while the head fits.
func (g *Group[K, T]) serveGlobalLocked(t *todo[K, T]) {
	if g.closed {
		return
	}
	var served []*request[K, T]
	for r := g.globalQ.head; r != nil && g.leases+len(r.parts) <= g.globalMax; r = g.globalQ.head {
		g.globalQ.remove(r)
		for i := range r.parts {
			r.parts[i].s.global--
		}
		g.leases += len(r.parts)
		served = append(served, r)
	}
	// All idle connections first, then the queues and opens: a refill for
	// one request may evict an idle connection, and it must not be one that
	// a request served in the same pass was about to take.
	for _, r := range served {
		g.takeIdleLocked(r, t)
	}
	for _, r := range served {
		g.queueRestLocked(r, t)
	}
}

// connectLocked gives r's parts connections: an idle one of the key if
// nobody of the key is waiting for one, else a place in the key's connQ
// and, if the key needs it, an open.
func (g *Group[K, T]) connectLocked(r *request[K, T], t *todo[K, T]) {
	g.takeIdleLocked(r, t)
	g.queueRestLocked(r, t)
}

// takeIdleLocked gives each of r's parts an idle connection of its key
// where nobody of the key waits for one.
func (g *Group[K, T]) takeIdleLocked(r *request[K, T], t *todo[K, T]) {
	r.state = reqConns
	r.missing = len(r.parts)
	for i := range r.parts {
		p := &r.parts[i]
		p.c = nil
		if p.s.connQ.len == 0 && p.s.idle.len() > 0 {
			g.giveLocked(p, g.popIdleLocked(p.s), t)
		}
	}
}

// queueRestLocked puts r's parts that got no idle connection in their
// keys' connQ, opening (or evicting to open) where a key needs it.
func (g *Group[K, T]) queueRestLocked(r *request[K, T], t *todo[K, T]) {
	for i := range r.parts {
		p := &r.parts[i]
		if p.c != nil {
			continue
		}
		p.s.connQ.push(p, g.ticket())
		g.refillLocked(p.s, t)
	}
}

// giveLocked hands c to p; the last connection a request lacked ends its
// wait.
func (g *Group[K, T]) giveLocked(p *part[K, T], c *conn[T], t *todo[K, T]) {
	p.c = c
	p.vet = vetNone
	g.count(p.s, cAcquires, 1)
	g.kickLocked(p.s)
	r := p.r
	r.missing--
	if r.missing == 0 {
		g.endLocked(r, reqDone, nil, t)
	}
}

// endLocked ends r's wait. If its goroutine waits, it owes it one signal,
// sent after unlocking (see todo).
func (g *Group[K, T]) endLocked(r *request[K, T], state reqState, err error, t *todo[K, T]) {
	r.state = state
	r.err = err
	g.unrefLocked(r)
	if g.unwaitLocked(r) {
		t.signal(r)
	}
}

// unwaitLocked ends the wait of r's goroutine, if it waits, and reports
// whether it did.
func (g *Group[K, T]) unwaitLocked(r *request[K, T]) bool {
	if !r.waiting {
		return false
	}
	r.waiting = false
	g.waiting--
	g.timed.remove(r) // nothing to do if r has no deadline the timer keeps
	return true
}

// beginWaitLocked marks r as waited for by its goroutine, which then
// waits in wait, and arms the timer for its deadline. A request that
// waits again (a connection failed its check) keeps its start, and so its
// deadline, and is still one wait.
func (g *Group[K, T]) beginWaitLocked(r *request[K, T]) {
	if r.ready == nil {
		r.ready = make(chan struct{}, 1)
	}
	r.waiting = true
	g.waiting++
	now := g.now()
	g.startLocked(r, now)
	if r.deadline != 0 && !r.byCtx {
		g.timed.insert(r)
		g.timer.armSooner(r.deadline, now)
	}
	first := !r.waited
	r.waited = true
	for i := range r.parts {
		s := r.parts[i].s
		if first {
			g.count(s, cWaits, 1)
		}
		if s.hist == nil {
			s.hist = new(histogram)
		}
	}
}

// startLocked starts r's clock at now unless it runs already. Under mu,
// or by r's goroutine while r is done (see request).
func (g *Group[K, T]) startLocked(r *request[K, T], now mono) {
	if r.start != 0 {
		return
	}
	r.start = now
	if g.cfg.AcquireTimeout > 0 {
		r.deadline = now.add(g.cfg.AcquireTimeout)
		if d, ok := r.ctx.Deadline(); ok && mono(1).add(d.Sub(g.base)) <= r.deadline {
			r.byCtx = true
		}
	}
}

// count adds n to one of s's counters and to the group's total of it.
func (g *Group[K, T]) count(s *shard[K, T], c counter, n int64) {
	s.n[c] += n
	g.total.n[c] += n
}

// unplaceLocked frees one of s's places: it goes to the next part in the
// key's line, whose request then goes on.
func (g *Group[K, T]) unplaceLocked(s *shard[K, T], t *todo[K, T]) {
	s.places--
	if g.closed { // Close fails whoever waits; nothing moves on meanwhile
		return
	}
	if p := s.placeQ.pop(); p != nil {
		s.places++
		p.placed = true
		p.r.step++
		g.placeNextLocked(p.r, t)
	}
}

// unleaseLocked frees n of GlobalMax.
func (g *Group[K, T]) unleaseLocked(n int, t *todo[K, T]) {
	g.leases -= n
	g.serveGlobalLocked(t)
}

// putLocked takes back c of s, which nobody holds: the next part of the key
// waiting for a connection gets it; if none, and another key needs room
// that the connections already closing will not make, or the key has
// MaxIdle idle already, it is closed; else it goes idle. now, if set, is
// when it was released.
func (g *Group[K, T]) putLocked(s *shard[K, T], c *conn[T], now mono, t *todo[K, T]) {
	if g.closed {
		g.beginCloseLocked(s, c, closePoolClosed, t)
		return
	}
	if now != 0 {
		c.idleSince = now
	}
	if p := s.connQ.pop(); p != nil {
		g.giveLocked(p, c, t)
		return
	}
	if g.slotShortLocked() {
		g.beginCloseLocked(s, c, closeEvicted, t)
		return
	}
	if s.idle.len() >= g.cfg.MaxIdle {
		g.beginCloseLocked(s, c, closeOverIdle, t)
		return
	}
	g.pushIdleLocked(s, c)
}

// wantLocked is how many opens s needs and its limit allows: parts waiting
// for a connection beyond the opens already under way.
func (g *Group[K, T]) wantLocked(s *shard[K, T]) int {
	return max(0, min(s.connQ.len-s.opening, g.cfg.PerKeyMax-s.numOpen))
}

// slotShortLocked reports whether the keys waiting for room under
// GlobalMax need more than the connections now closing will free.
func (g *Group[K, T]) slotShortLocked() bool {
	if g.slotQ.len == 0 {
		return false
	}
	need := 0
	for s := g.slotQ.head; s != nil; s = s.slotLink.next {
		need += g.wantLocked(s)
	}
	return need > g.closing
}

// refillLocked starts the opens s needs, or, with GlobalMax connections
// open, puts s in the slot line and closes idle connections of other keys
// to make room.
func (g *Group[K, T]) refillLocked(s *shard[K, T], t *todo[K, T]) {
	for !g.closed && g.wantLocked(s) > 0 {
		if g.conns >= g.globalMax {
			g.slotQ.pushBack(s)
			g.evictLocked(t)
			return
		}
		g.openLocked(s, t)
	}
	g.slotQ.remove(s)
}

// serveSlotsLocked gives room freed under GlobalMax to the keys in the slot
// line, one open each in turn.
func (g *Group[K, T]) serveSlotsLocked(t *todo[K, T]) {
	for g.conns < g.globalMax && g.slotQ.len > 0 && !g.closed {
		s := g.slotQ.head
		if g.wantLocked(s) > 0 {
			g.openLocked(s, t)
		}
		if g.wantLocked(s) == 0 {
			g.slotQ.remove(s)
		} else {
			g.slotQ.remove(s) // to the back: the next key gets the next room
			g.slotQ.pushBack(s)
		}
	}
}

// evictLocked closes idle connections, those of the key that has had them
// longest first, until the keys in the slot line will have their room.
func (g *Group[K, T]) evictLocked(t *todo[K, T]) {
	for g.idleShards.len > 0 && g.slotShortLocked() {
		s := g.idleShards.head
		g.beginCloseLocked(s, g.popOldestIdleLocked(s), closeEvicted, t)
	}
}

// openLocked counts an open for s and records it to start; the part it is
// for lends its context's values.
func (g *Group[K, T]) openLocked(s *shard[K, T], t *todo[K, T]) {
	ctx := s.connQ.nth(s.opening).r.ctx
	g.conns++
	g.opening++
	s.numOpen++
	s.opening++
	t.opens = append(t.opens, openJob[K, T]{s, ctx, g.now()})
}

func (g *Group[K, T]) beginCloseLocked(s *shard[K, T], c *conn[T], r closeReason, t *todo[K, T]) {
	c.reason = r
	s.closing++
	g.closing++
	if r == closeEvicted {
		g.evictions++
	}
	s.closedBy[r]++
	g.total.closedBy[r]++
	t.closes = append(t.closes, closeJob[K, T]{s, c, g.now()})
}

// handOnLocked passes c, just released by a lease of s, with that lease's
// share of GlobalMax, to the next request of s in the global line if that
// asks for s alone, and reports whether it did. It does so only when the
// line in order would move a connection: GlobalMax connections exist, so
// serving the head (of another key) means closing one, most likely c, and
// opening one for the head's key. And only for so long: counted from the
// first time the head is passed over, for the move bound, then the line is
// first come, first served until the head is served. Nobody of s may wait
// for a connection (they come first, as ever), nor any key for room
// already promised (the slot line: its move is under way).
//
// Past the bound, c moves if s keeps another connection; past twice the
// bound, whatever s has. The connection that moves is the first released
// past the bound, and a key left with none would need one moved back:
// with three keys on three connections, a start at 2-1-0 took a dozen
// moves at times to settle at 1-1-1 when any key gave one up, and takes
// one this way. A group with more busy keys than GlobalMax has no such
// donor, and waits the second bound.
//
// The clock starts when the head is first passed over, not when it came:
// under load every request waits long, and a line that reverted to order
// whenever its head had waited longer than a move would move on every
// hand-off, which lengthens every wait: churn that sustains itself. And
// it starts again whenever the head is passed over while one of its keys
// has an open under way: a connection is on its way to that key, most
// often one just moved there for the request ahead, and will come back
// to the head after one use. A head that counted that time, as long as a
// move, would have a second connection moved to its key as the first
// arrives, taking it from a key that then needs one back: the moves would
// chase one another round the keys. Opens end (OpenTimeout), and while the
// head waits none starts but for requests already past the line, so the
// clock does run.
//
// The leases out do not change, so the head, which did not fit, still
// does not; the request served was behind it, is its key's next in the
// global line (per-key order holds), and is in no other line.
func (g *Group[K, T]) handOnLocked(s *shard[K, T], c *conn[T], now mono, t *todo[K, T]) bool {
	p := s.globalParts.head
	if p == nil || len(p.r.parts) != 1 || g.closed || s.connQ.len > 0 || g.conns < g.globalMax || g.slotShortLocked() {
		return false
	}
	head := g.globalQ.head
	if head.names(s) {
		return false // in order, the head takes c itself: nothing moves
	}
	bound := g.moveBoundLocked()
	if bound <= 0 {
		return false
	}
	at := g.now()
	if head.passedAt == 0 || head.opening() {
		head.passedAt = at // the clock starts, or starts again: see above
	} else if passed := time.Duration(at - head.passedAt); passed >= 2*bound || passed >= bound && s.numOpen-s.closing > 1 {
		return false
	}
	r := p.r
	g.globalQ.remove(r)
	s.global--
	if now != 0 {
		c.idleSince = now
	}
	r.state = reqConns
	r.missing = 1
	g.giveLocked(p, c, t)
	return true
}

// moveBoundLocked is how long the head of the global line may be passed
// over (handOnLocked) before a connection is moved to it: MoveAfter if
// set, else what a move has cost of late, the average close plus the
// average open, each timed from its decision to its end, so scheduling
// counts. Waiting that long before paying for a move, as one rents skis
// until their price is spent, costs the head at most about twice what
// the move alone would, while a key whose own connections come back
// sooner never pays one. Zero (strict order) with MoveAfter negative, and
// until a connection has been opened; and with free opens moves are free,
// so the line stays in order.
func (g *Group[K, T]) moveBoundLocked() time.Duration {
	if g.cfg.MoveAfter != 0 {
		return max(g.cfg.MoveAfter, 0)
	}
	return g.openCost + g.closeCost
}

// observeCost folds d into the running average avg, weighting the newest
// by 1/8: recent enough to follow a server that slows, steady enough that
// one slow connect does not flip the rule. The first sample sets it.
func observeCost(avg *time.Duration, d time.Duration) {
	if *avg == 0 {
		*avg = d
		return
	}
	*avg += (d - *avg) / 8
}

// opening reports whether a connection is being opened for one of r's
// keys.
func (r *request[K, T]) opening() bool {
	for i := range r.parts {
		if r.parts[i].s.opening > 0 {
			return true
		}
	}
	return false
}

// names reports whether r asks for s's key.
func (r *request[K, T]) names(s *shard[K, T]) bool {
	for i := range r.parts {
		if r.parts[i].s == s {
			return true
		}
	}
	return false
}

func (g *Group[K, T]) pushIdleLocked(s *shard[K, T], c *conn[T]) {
	s.idle.push(c)
	g.idle++
	if s.idle.len() == 1 {
		g.idleShards.pushBack(s)
	}
}

// popIdleLocked takes s's most recently used idle connection, or nil.
func (g *Group[K, T]) popIdleLocked(s *shard[K, T]) *conn[T] {
	c := s.idle.pop()
	if c != nil {
		g.idle--
		if s.idle.len() == 0 {
			g.idleShards.remove(s)
		}
	}
	return c
}

// popOldestIdleLocked takes s's least recently used idle connection; s has
// one.
func (g *Group[K, T]) popOldestIdleLocked(s *shard[K, T]) *conn[T] {
	cs := s.idle.conns
	c := cs[0]
	copy(cs, cs[1:])
	cs[len(cs)-1] = nil
	s.idle.conns = cs[:len(cs)-1]
	g.idle--
	if s.idle.len() == 0 {
		g.idleShards.remove(s)
	}
	return c
}
