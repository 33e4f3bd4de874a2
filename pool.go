package fairpool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Pool shares at most MaxSize connections of type T among any number of
// goroutines, serving waiters in order. A Pool is safe for concurrent use;
// create one with New.
type Pool[T any] struct {
	life[struct{}, T] // opening, vetting, releasing and closing; see life.go
	cfg               Config[T]

	errClosed    error // ErrClosed and ErrExhausted wrapped with Name, built once
	errExhausted error

	waitNanos  atomic.Int64 // total wait, added by each waiter as it wakes
	hist       histogram
	waiterPool sync.Pool // *waiter[T], so a wait allocates nothing

	// mu guards the fields below. While it is not held:
	//
	//	numOpen <= MaxSize, where numOpen counts idle, leased, opening and closing
	//	waiters.len > 0  implies  idle is empty and (numOpen == MaxSize or opening >= waiters.len)
	//
	// That is: while anyone waits, no connection is idle and no slot is
	// unused. Whatever frees a connection or a slot hands it to the next
	// waiter (putLocked, refillLocked), and a newcomer takes from idle only
	// when no one waits, so nobody is passed over.
	mu      sync.Mutex
	idle    idleStack[T]
	waiters waitQueue[T]
	closed  bool
	numOpen int
	opening int
	closing int

	held map[*record[T]]struct{} // leases out, with TrackLeases; see track.go

	cnt   counters // Stats' counters, as a Group keeps them (countersStats)
	leaks int64    // leases held past LeakThreshold

	timer deadlineTimer // expires waiters at AcquireTimeout; see expireWaiters

	pace          pace    // how fast the line moves, while waiters have deadlines; see overload.go
	lastHandOff   mono    // the last hand-off to a waiter, while waiters have deadlines; 0: none since the line formed
	nonEmptySince mono    // WaitOrder Adaptive: when the line last went from empty to not; see standingLocked
	refused       refusal // slots held back while the server refuses opens; see refused.go

	keeperRunning bool
	kick          chan struct{} // wakes the keeper early; nil without a keeper
	stop          chan struct{} // closed by Close
	drained       chan struct{} // closed once closed and nothing is left
	drainedClosed bool
}

// New validates cfg and returns a pool. No connection is opened until one is
// needed, except the MinIdle ones the keeper opens in the background.
func New[T any](cfg Config[T]) (*Pool[T], error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool[T]{
		cfg:          cfg,
		errClosed:    ErrClosed,
		errExhausted: ErrExhausted,
		held:         map[*record[T]]struct{}{},
		stop:         make(chan struct{}),
		drained:      make(chan struct{}),
	}
	if cfg.Name != "" {
		p.errClosed = &poolError{pool: cfg.Name, err: ErrClosed}
		p.errExhausted = &poolError{pool: cfg.Name, err: ErrExhausted}
	}
	p.life.init(cfg.shared(), false)
	p.waiters.lifo = cfg.WaitOrder == LIFO
	p.waiterPool.New = func() any { return &waiter[T]{ready: make(chan grant[T], 1)} }
	p.timer.fire = p.expireWaiters
	p.startKeeper()
	return p, nil
}

// Acquire returns a lease on a connection, waiting in line if none is free.
// It gives up when Config.AcquireTimeout passes (a *TimeoutError wrapping
// ErrTimeout) or ctx ends (a *TimeoutError wrapping ctx's error), whichever
// comes first; after Close it returns ErrClosed. The caller must call
// Release or Discard on the lease exactly once; later calls do nothing.
//
// Acquire is not reentrant: a goroutine that holds a lease and calls Acquire
// again waits like anyone else. Use With for nested use.
func (p *Pool[T]) Acquire(ctx context.Context) (*Lease[T], error) {
	return p.acquire(ctx, true, false)
}

// TryAcquire is Acquire without waiting in line: it returns ErrExhausted
// when no connection is idle or when other goroutines are waiting (it never
// jumps the line). When the pool has room to grow, it starts opening a
// connection in the background for a later call. An idle connection due
// for Config.Check is checked before it is handed out, for no longer than
// Acquire would wait.
func (p *Pool[T]) TryAcquire(ctx context.Context) (*Lease[T], error) {
	return p.acquire(ctx, false, false)
}

// acquire gets a connection and wraps it in a new Lease. pinned says the
// lease is With's: held by the calling goroutine until With returns.
func (p *Pool[T]) acquire(ctx context.Context, wait, pinned bool) (*Lease[T], error) {
	var who *caller
	if p.cfg.TrackLeases {
		who = currentCaller()
	}
	c, err := p.get(ctx, wait, who)
	if err != nil {
		return nil, err
	}
	l := &Lease[T]{c: c}
	if who != nil {
		p.track(l, c, who, pinned)
	}
	c.holder.Store(l)
	return l, nil
}

// attempt is one caller's way through get: when it began waiting, and
// whether it has queued yet.
type attempt[T any] struct {
	since  mono   // when the caller first queued, or began if a check came first; 0: neither yet
	ticket uint64 // its place in line, kept when it comes back after a failed check; 0: none yet
	queued bool   // it has been in the line (once is one wait in Stats)
	held   int    // leases of this pool its goroutine holds, with TrackLeases

	pending *conn[T] // a connection it lost, to close once it is back in line (refuse)
}

// get is the one path by which connections are handed out. If wait is
// false it returns ErrExhausted where Acquire would queue.
func (p *Pool[T]) get(ctx context.Context, wait bool, who *caller) (*conn[T], error) {
	// A caller whose context has ended gets nothing, not even a check
	// run on its behalf that would fail and close a healthy connection.
	if err := ctx.Err(); err != nil {
		return nil, p.giveUp(&attempt[T]{}, err)
	}
	// A caller that loses its connection to a failed check or expiry
	// keeps a.since: its place at the front of the line and its deadline.
	var a attempt[T]
	for {
		c, err := p.take(ctx, wait, &a, who)
		if err != nil {
			return nil, p.withRefusal(err)
		}
		if p.needClock {
			ok, err := p.vet(ctx, c, &a)
			if err != nil {
				if a.pending != nil {
					go p.destroy(a.pending)
				}
				return nil, err
			}
			if !ok {
				continue
			}
		}
		var waited time.Duration
		if a.queued {
			waited = time.Duration(p.now() - a.since)
			p.hist.observe(waited)
			p.waitNanos.Add(int64(waited))
		}
		if p.obs.list.Load() != nil || c.use.since != 0 { // the common case makes no call
			handedOut(&p.obs, c, waited)
		}
		return c, nil
	}
}

// take hands out a connection without vetting it, queueing if wait is set
// and none is free.
func (p *Pool[T]) take(ctx context.Context, wait bool, a *attempt[T], who *caller) (*conn[T], error) {
	p.lock()
	if a.pending != nil {
		// The connection this caller lost: its close ends under mu, so
		// after this section has put the caller back in line.
		go p.destroy(a.pending)
		a.pending = nil
	}
	if p.closed {
		p.mu.Unlock()
		return nil, p.errClosed
	}
	// Only when nobody waits may a newcomer take an idle connection.
	if p.waiters.len == 0 {
		if c := p.idle.pop(); c != nil {
			p.cnt.n[cAcquires]++
			if p.needClock && a.ticket == 0 {
				// It may fail a check and come back: it keeps this turn.
				a.ticket = p.waiters.issue()
			}
			p.kickKeeperLocked()
			p.mu.Unlock()
			return c, nil
		}
	}
	var w *waiter[T]
	var opens []context.Context
	if wait {
		if who != nil {
			var err error
			if a.held, err = p.deadlockLocked(who.gid); err != nil {
				p.mu.Unlock()
				return nil, err
			}
		}
		dl := ctxDeadline(ctx, p.base) // read once: shedLocked and enqueueLocked both need it
		if dl != 0 && !p.cfg.IgnoreDeadlines {
			if err := p.shedLocked(dl, a); err != nil {
				p.mu.Unlock()
				return nil, err
			}
		}
		w = p.enqueueLocked(ctx, dl, a)
		opens = p.refillLocked()
	} else if p.waiters.len == 0 && p.opening == 0 && p.numOpen < p.cfg.MaxSize {
		// TryAcquire found nothing idle: open one for a later call.
		p.numOpen++
		p.opening++
		opens = []context.Context{ctx}
	}
	p.mu.Unlock()
	p.startOpens(opens)
	if !wait {
		return nil, p.errExhausted
	}
	return p.wait(ctx, w)
}

// lock takes mu, trying a few times before blocking. sync.Mutex parks a
// goroutine at once when others are runnable, and a goroutine parked in
// Release still holds its connection: with many goroutines that turns brief
// contention into a queue of waiters that never drains. The critical
// sections on the fast paths are a few dozen instructions, so a short spin
// almost always wins.
func (p *Pool[T]) lock() {
	for range 100 {
		if p.mu.TryLock() {
			return
		}
	}
	p.mu.Lock()
}

// release takes back a connection whose lease was released.
func (p *Pool[T]) release(c *conn[T]) {
	if c.broken.Load() || p.resetFn != nil || p.needClock { // the common case makes no call
		if _, ok := p.reusable(c, struct{}{}); !ok {
			return
		}
	}
	p.lock()
	to, destroy := p.putLocked(c, c.idleSince)
	p.mu.Unlock()
	p.finishPut(c, to, destroy)
}

// Close shuts the pool: from now on Acquire returns ErrClosed, every waiter
// gets ErrClosed at once, idle connections are closed, and leased ones are
// closed as they are released. Close waits until every connection is closed
// and the pool's goroutines have ended, or until ctx is done, in which case
// it returns ctx's error and the rest is still closed as leases come back.
// Calling Close again waits again.
func (p *Pool[T]) Close(ctx context.Context) error {
	p.mu.Lock()
	var idle []*conn[T]
	first := !p.closed
	if first {
		p.closed = true
		for w := p.waiters.pop(); w != nil; w = p.waiters.pop() {
			w.ready <- grant[T]{err: p.errClosed}
		}
		idle = p.idle.takeAll()
		for _, c := range idle {
			p.beginCloseLocked(c, closePoolClosed)
		}
		p.timer.stop()
		close(p.stop)
		p.end()
		p.checkDrainedLocked()
	}
	p.mu.Unlock()
	for _, c := range idle {
		go p.destroy(c) // a slow Close must not hold this one past ctx
	}
	// Drained wins over an ended ctx, so that the answer does not depend
	// on which case select happens to pick.
	select {
	case <-p.drained:
		if first {
			p.logPoolClosed(nil)
		}
		return nil
	default:
	}
	select {
	case <-p.drained:
		if first {
			p.logPoolClosed(nil)
		}
		return nil
	case <-ctx.Done():
		if first {
			p.logPoolClosed(ctx.Err())
		}
		return ctx.Err()
	}
}

func (p *Pool[T]) checkDrainedLocked() {
	if p.closed && !p.drainedClosed && p.numOpen == 0 && !p.timer.armed && !p.keeperRunning {
		p.drainedClosed = true
		close(p.drained)
	}
}
