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
	cfg       Config[T]
	base      time.Time // the zero of mono
	needClock bool      // Check, MaxLifetime or MaxIdleTime read the clock on hand-out and release

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

	acquires, waits, timeouts, cancels, opens, openErrors, leaks, reclaims int64
	closedBy                                                               [numCloseReasons]int64

	timer      *time.Timer // expires waiters at AcquireTimeout; see expireWaiters
	timerArmed bool
	timerAt    mono

	keeperRunning bool
	kick          chan struct{}   // wakes the keeper early; nil without a keeper
	stop          chan struct{}   // closed by Close
	keeperCtx     context.Context // cancelled by Close, ending opens under way
	stopOpens     context.CancelFunc
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
		base:         time.Now(),
		needClock:    cfg.Check != nil || cfg.MaxLifetime > 0 || cfg.MaxIdleTime > 0,
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
	p.waiters.lifo = cfg.WaitOrder == LIFO
	p.waiterPool.New = func() any { return &waiter[T]{ready: make(chan grant[T], 1)} }
	p.keeperCtx, p.stopOpens = context.WithCancel(context.Background())
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
	return p.acquire(ctx, true)
}

// TryAcquire is Acquire without waiting: it returns ErrExhausted when no
// connection is idle or when other goroutines are waiting (it never jumps
// the line). When the pool has room to grow, it starts opening a connection
// in the background for a later call.
func (p *Pool[T]) TryAcquire(ctx context.Context) (*Lease[T], error) {
	return p.acquire(ctx, false)
}

func (p *Pool[T]) acquire(ctx context.Context, wait bool) (*Lease[T], error) {
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
		p.track(l, c, who)
	}
	c.holder.Store(l)
	return l, nil
}

// get is the one path by which connections are handed out. If wait is
// false it returns ErrExhausted where Acquire would queue.
func (p *Pool[T]) get(ctx context.Context, wait bool, who *caller) (*conn[T], error) {
	// Once the caller has had its turn and lost the connection to a failed
	// check or expiry, since is set: it then keeps its place at the front
	// and its deadline.
	var since mono // when the caller first queued; 0 if it has not
	for {
		c, queued, err := p.take(ctx, wait, since, who)
		if err != nil {
			return nil, err
		}
		if since == 0 {
			since = queued
		}
		if !p.needClock || p.vet(ctx, c) {
			if since != 0 {
				waited := time.Duration(p.now() - since)
				p.hist.observe(waited)
				p.waitNanos.Add(int64(waited))
			}
			return c, nil
		}
		p.mu.Lock()
		p.acquires-- // that hand-out did not reach the caller
		p.mu.Unlock()
		if since == 0 {
			since = p.now()
		}
	}
}

// take hands out a connection without vetting it. If the caller queued, it
// also returns when. since is when a caller that was served already first
// queued, or 0.
func (p *Pool[T]) take(ctx context.Context, wait bool, since mono, who *caller) (*conn[T], mono, error) {
	p.lock()
	if p.closed {
		p.mu.Unlock()
		return nil, 0, p.errClosed
	}
	// Only when nobody waits may a newcomer take an idle connection.
	if p.waiters.len == 0 {
		if c := p.idle.pop(); c != nil {
			p.acquires++
			p.kickKeeperLocked()
			p.mu.Unlock()
			return c, 0, nil
		}
	}
	var w *waiter[T]
	var opens []context.Context
	if wait {
		held := 0
		if who != nil {
			var err error
			if held, err = p.chainHeldLocked(ctx, who.gid); err != nil {
				p.mu.Unlock()
				return nil, 0, err
			}
		}
		w = p.enqueueLocked(ctx, since)
		w.held = held
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
		return nil, 0, p.errExhausted
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

// vet reports whether c may be handed out now. If not, c has been closed
// and its slot freed.
func (p *Pool[T]) vet(ctx context.Context, c *conn[T]) bool {
	now := p.now()
	if r, ok := c.expired(now, p.cfg.MaxIdleTime); ok {
		p.discard(c, r)
		return false
	}
	if p.cfg.Check != nil && time.Duration(now-c.idleSince) > p.cfg.CheckAfter {
		if err := p.cfg.Check(ctx, c.value); err != nil {
			p.logCheckFailed(err)
			p.discard(c, closeCheckFailed)
			return false
		}
	}
	return true
}

// release takes back a connection whose lease was released.
func (p *Pool[T]) release(c *conn[T]) {
	if c.broken.Load() {
		p.discard(c, closeDiscarded)
		return
	}
	if p.cfg.Reset != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.OpenTimeout)
		err := p.cfg.Reset(ctx, c.value)
		cancel()
		if err != nil {
			p.logResetFailed(err)
			p.discard(c, closeResetFailed)
			return
		}
	}
	if p.needClock {
		now := p.now()
		if r, ok := c.expired(now, 0); ok {
			p.discard(c, r)
			return
		}
		c.idleSince = now
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
		// Stop even when not armed: a run re-scheduled while a fired one
		// waited for mu would otherwise come after Close returned.
		if p.timer != nil && p.timer.Stop() {
			p.timerArmed = false
		}
		close(p.stop)
		p.stopOpens()
		p.checkDrainedLocked()
	}
	p.mu.Unlock()
	for _, c := range idle {
		p.destroy(c)
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
	if p.closed && !p.drainedClosed && p.numOpen == 0 && !p.timerArmed && !p.keeperRunning {
		p.drainedClosed = true
		close(p.drained)
	}
}
