package fairpool

import (
	"context"
	"time"
)

// A waiter is one goroutine blocked in Acquire.
type waiter[T any] struct {
	// In the queue's line, and, when deadline != 0, in its deadline list.
	// Only Pool.mu's holder reads or writes them.
	node[waiter[T]]
	tlink node[waiter[T]] // in waitQueue.timed, or
	slink node[waiter[T]] // in waitQueue.short

	// ready receives exactly one grant: a connection, or the error that ends
	// the wait. Its capacity of one means a granter never blocks, so grants
	// can be made while holding Pool.mu.
	ready chan grant[T]

	ctx      context.Context // for the values an Open on this waiter's behalf carries
	ticket   uint64          // arrival number; strictly increasing along the queue
	enqueued mono            // when the caller began waiting, counting earlier turns
	deadline mono            // AcquireTimeout's, or the short timeout of an Adaptive pool's standing line; zero when the context's deadline comes first
	short    bool            // deadline is the short timeout
	ctxDone  mono            // the context's deadline; zero without one

	held int // leases of this pool the caller itself holds, with TrackLeases
}

// The linkers of a waiter's two nodes.
type (
	waiterLine[T any]  struct{}
	waiterTimed[T any] struct{}
	waiterShort[T any] struct{}
)

func (waiterLine[T]) nodeOf(w *waiter[T]) *node[waiter[T]]  { return &w.node }
func (waiterTimed[T]) nodeOf(w *waiter[T]) *node[waiter[T]] { return &w.tlink }
func (waiterShort[T]) nodeOf(w *waiter[T]) *node[waiter[T]] { return &w.slink }

type grant[T any] struct {
	c   *conn[T]
	err error
}

// waitQueue is the line of waiters, oldest at the front. It is intrusive so
// that a cancelled waiter leaves in O(1). Guarded by Pool.mu.
//
// The waiters with an AcquireTimeout deadline are also linked in deadline
// order (timed.head first), so the timer finds who is due without walking
// the line: with one AcquireTimeout for all, deadlines grow with arrival
// and insertion is at the tail; only a waiter that keeps an older deadline
// (a retry after a failed check) walks back.
//
// Waiters given the short timeout of an Adaptive pool's standing line are
// linked in short instead, in arrival order, which for one timeout is
// deadline order: they never walk back past the longer deadlines.
type waitQueue[T any] struct {
	list[waiter[T], waiterLine[T]]
	timed      list[waiter[T], waiterTimed[T]]
	short      list[waiter[T], waiterShort[T]]
	lifo       bool
	nextTicket uint64
	deadlined  int // waiters whose context has a deadline (ctxDone != 0)
}

// addTimed links w, whose deadline is set, into the deadline list, behind
// every waiter whose deadline is not later.
func (q *waitQueue[T]) addTimed(w *waiter[T]) {
	after := q.timed.tail
	for after != nil && after.deadline > w.deadline {
		after = q.timed.prevOf(after)
	}
	q.timed.insertAfter(w, after)
}

// issue returns the next arrival number.
func (q *waitQueue[T]) issue() uint64 {
	q.nextTicket++
	return q.nextTicket
}

// push adds w behind everyone already waiting, with a new ticket.
func (q *waitQueue[T]) push(w *waiter[T]) {
	w.ticket = q.issue()
	q.insert(w, nil)
}

// pushBack puts back in line a caller that was served already and lost its
// connection to a failed check or expiry, under the ticket it first had:
// ahead of everyone who arrived after it, behind anyone who arrived before
// (another caller back from its own failed check). It walks from the head,
// where such a caller nearly always belongs. Under LIFO, where the newest
// is served first, it goes to the back with a new ticket.
func (q *waitQueue[T]) pushBack(w *waiter[T], ticket uint64) {
	if q.lifo {
		q.push(w)
		return
	}
	w.ticket = ticket
	at := q.head
	for at != nil && at.ticket < ticket {
		at = at.next
	}
	q.insert(w, at)
}

// insert links w in front of at, or at the tail if at is nil, and into the
// deadline list if it has a deadline.
func (q *waitQueue[T]) insert(w, at *waiter[T]) {
	q.insertBefore(w, at)
	switch {
	case w.short:
		q.short.pushBack(w)
	case w.deadline != 0:
		q.addTimed(w)
	}
	if w.ctxDone != 0 {
		q.deadlined++
	}
}

// next returns the waiter to serve next without removing it, or nil.
func (q *waitQueue[T]) next() *waiter[T] {
	if q.lifo {
		return q.tail
	}
	return q.head
}

// pop removes and returns the waiter to serve next, or nil.
func (q *waitQueue[T]) pop() *waiter[T] {
	w := q.next()
	if w != nil {
		q.remove(w)
	}
	return w
}

// remove takes w out of the line and out of the deadline list.
func (q *waitQueue[T]) remove(w *waiter[T]) {
	q.list.remove(w)
	switch { // under mu on every hand-off: no call where there is nothing to unlink
	case w.short:
		q.short.remove(w)
	case w.deadline != 0:
		q.timed.remove(w)
	}
	if w.ctxDone != 0 {
		q.deadlined--
	}
}

// shorten gives every waiter whose deadline (its own or its context's)
// is later than at the deadline at, in the short list, in line order.
func (q *waitQueue[T]) shorten(at mono) {
	for w := q.head; w != nil; w = w.next {
		if w.short || (w.deadline != 0 && w.deadline <= at) || (w.ctxDone != 0 && w.ctxDone <= at) {
			continue
		}
		q.timed.remove(w)
		w.deadline, w.short = at, true
		q.short.pushBack(w)
	}
}

// firstDue returns the waiter whose deadline comes first, or nil.
func (q *waitQueue[T]) firstDue() *waiter[T] {
	t, s := q.timed.head, q.short.head
	if t == nil || (s != nil && s.deadline < t.deadline) {
		return s
	}
	return t
}

// nth returns the waiter that is k-th in serving order (0 is next), or nil.
func (q *waitQueue[T]) nth(k int) *waiter[T] {
	w := q.next()
	for ; w != nil && k > 0; k-- {
		if q.lifo {
			w = w.prev
		} else {
			w = w.next
		}
	}
	return w
}

// enqueueLocked puts a waiter for ctx, whose deadline is dl, in line and
// arms the timeout for it.
// A caller served before (a.ticket != 0) goes back to its place, its
// timeout still counted from a.since.
func (p *Pool[T]) enqueueLocked(ctx context.Context, dl mono, a *attempt[T]) *waiter[T] {
	w := p.waiterPool.Get().(*waiter[T])
	w.ctx = ctx
	w.held = a.held
	now := p.now()
	if a.since == 0 {
		a.since = now
	}
	w.enqueued = a.since
	w.ctxDone = 0
	if !p.cfg.IgnoreDeadlines {
		w.ctxDone = dl // judged at hand-off: see overload.go
		if dl != 0 && p.waiters.deadlined == 0 {
			p.lastHandOff = 0 // hand-offs since are no measure of the pace
		}
	}
	w.deadline, w.short = 0, false
	if p.cfg.AcquireTimeout > 0 {
		w.deadline = w.enqueued.add(p.cfg.AcquireTimeout)
	}
	if p.cfg.WaitOrder == Adaptive { // serving newest first while the line stands
		stood := p.waiters.lifo
		p.waiters.lifo = p.standingLocked(p.waiters.len, now)
		short := now.add(adaptiveTimeout)
		if p.waiters.lifo && !stood {
			// The line has just been found standing: those already in it
			// wait no longer than newcomers, or, served newest first,
			// they would wait out their whole timeout at the bottom.
			p.waiters.shorten(short)
			p.timer.armSooner(short, now)
		}
		if p.waiters.lifo && a.ticket == 0 && (w.deadline == 0 || short < w.deadline) {
			w.deadline, w.short = short, true
		}
	}
	if dl != 0 && dl <= w.deadline {
		w.deadline, w.short = 0, false // ctx.Done will end this wait first
	}
	if a.ticket != 0 {
		p.waiters.pushBack(w, a.ticket)
	} else {
		p.waiters.push(w)
		a.ticket = w.ticket
	}
	if !a.queued {
		a.queued = true
		p.cnt.n[cWaits]++
	}
	if w.deadline != 0 {
		// A deadline already past (a served caller's) fires at once.
		p.timer.armSooner(w.deadline, now)
	}
	return w
}

// expireWaiters is the timer's callback: it ends the waits whose
// AcquireTimeout has passed and logs them once mu is released. Once the
// pool is closed there is nobody left to expire, and this run may be what
// the pool waited for to count as drained.
func (p *Pool[T]) expireWaiters() {
	p.mu.Lock()
	p.timer.fired()
	var expired []*TimeoutError
	if !p.closed {
		expired = p.expireLocked(p.now())
	}
	p.checkDrainedLocked()
	p.mu.Unlock()
	for _, err := range expired {
		logTimeout(p.cfg.Logger, err)
	}
}

// expireLocked ends the wait of everyone whose deadline is past at now and
// re-arms the timer for the earliest deadline left. A waiter removed here
// under mu can no longer be granted a connection, so the timeout and a
// hand-off never both reach it.
func (p *Pool[T]) expireLocked(now mono) []*TimeoutError {
	var expired []*TimeoutError
	for w := p.waiters.firstDue(); w != nil && w.deadline <= now; w = p.waiters.firstDue() {
		p.waiters.remove(w)
		p.cnt.n[cTimeouts]++
		err := p.waitErrorLocked(w.enqueued, w.held, now, ErrTimeout)
		expired = append(expired, err)
		w.ready <- grant[T]{err: err}
	}
	if w := p.waiters.firstDue(); w != nil {
		p.timer.arm(w.deadline, now)
	}
	return expired
}

// wait blocks until w is granted a connection or an error, or ctx ends.
func (p *Pool[T]) wait(ctx context.Context, w *waiter[T]) (*conn[T], error) {
	var g grant[T]
	if done := ctx.Done(); done == nil {
		g = <-w.ready
	} else {
		select {
		case g = <-w.ready:
			if g.c != nil && ctx.Err() != nil {
				// Granted as the context ended: the context wins and the
				// connection goes on, so it is never given to an expired
				// waiter.
				return nil, p.abandon(w, g.c, ctx.Err())
			}
		case <-done:
			p.mu.Lock()
			if p.waiters.contains(w) {
				p.waiters.remove(w)
				p.cnt.n[cCancels]++
				err := p.waitErrorLocked(w.enqueued, w.held, p.now(), ctx.Err())
				p.mu.Unlock()
				p.putWaiter(w)
				return nil, err
			}
			p.mu.Unlock()
			// w left the queue under mu, so a grant is sent or about to be:
			// whoever took w off sends without blocking, at most just after
			// unlocking (finishPut). This receive waits for nothing else.
			g = <-w.ready
			if g.c != nil {
				return nil, p.abandon(w, g.c, ctx.Err())
			}
		}
	}
	if g.err != nil {
		p.putWaiter(w)
		return nil, g.err
	}
	p.putWaiter(w)
	return g.c, nil
}

// abandon passes on a connection granted to a waiter whose context ended at
// the same instant, and returns that waiter's error.
// c goes on as it came: if it came unvetted, the next caller checks it.
func (p *Pool[T]) abandon(w *waiter[T], c *conn[T], cause error) error {
	p.mu.Lock()
	p.cnt.n[cAcquires]--
	p.cnt.n[cCancels]++
	to, destroy := p.putLocked(c, c.idleSince)
	err := p.waitErrorLocked(w.enqueued, w.held, p.now(), cause)
	p.mu.Unlock()
	p.putWaiter(w)
	p.finishPut(c, to, destroy)
	return err
}

func (p *Pool[T]) putWaiter(w *waiter[T]) {
	w.ctx = nil
	p.waiterPool.Put(w)
}

// waitErrorLocked describes the pool as a caller that began waiting at
// since, holding held leases itself, gives up at now.
func (p *Pool[T]) waitErrorLocked(since mono, held int, now mono, cause error) *TimeoutError {
	var holders []Holder
	if p.cfg.TrackLeases {
		holders = p.holdersLocked(now, nil)
		holders = holders[:min(len(holders), 5)]
	}
	return &TimeoutError{
		Tracked:      p.cfg.TrackLeases,
		Holders:      holders,
		HeldByCaller: held,
		Pool:         p.cfg.Name,
		Waited:       time.Duration(now - since),
		MaxSize:      p.cfg.MaxSize,
		Open:         p.numOpen - p.refused.heldBackLocked(), // as Stats: held-back slots are no connections
		InUse:        p.inUseLocked(),
		Idle:         p.idle.len(),
		Waiting:      p.waiters.len,
		Opening:      p.opening - p.refused.heldBackLocked(),
		Err:          cause,
	}
}
