package fairpool

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// closeReason says why the pool closed a connection; Stats counts each.
type closeReason int

const (
	closeDiscarded   closeReason = iota // Lease.Discard, ErrBadConn or a panic in With
	closeResetFailed                    // Config.Reset failed
	closeCheckFailed                    // Config.Check failed
	closeLifetime                       // MaxLifetime passed
	closeIdleTime                       // MaxIdleTime passed
	closeOverIdle                       // released with MaxIdle already idle
	closePoolClosed                     // the pool was closed
	closeReclaimed                      // its Lease was dropped without Release
	closeEvicted                        // closed to make room for another key of a Group
	numCloseReasons

	// closeOpenFailed is the reason logged for a value that Open returned
	// along with an error: closed, but never a connection of the pool, so
	// Stats counts it in no Closed* field.
	closeOpenFailed = numCloseReasons
)

var closeReasonNames = [numCloseReasons + 1]string{"discarded", "reset failed", "check failed", "lifetime", "idle time", "over MaxIdle", "pool closed", "reclaimed", "evicted", "open failed"}

func (r closeReason) String() string { return closeReasonNames[r] }

// conn is one connection and the pool's bookkeeping for it.
type conn[T any] struct {
	home  home[T] // the Pool or Group key it goes back to; see Lease
	value T

	// holder is the Lease that holds the connection, nil while it is idle.
	// Release and Discard win it back with CompareAndSwap, so of all the
	// calls on all the Leases ever made for this connection, exactly one
	// returns each hand-out: a late call on an old Lease finds someone
	// else's Lease here and does nothing.
	holder atomic.Pointer[Lease[T]]

	// broken is written only by the holder: a nested With that saw
	// ErrBadConn or a panic marks it so the outermost With discards.
	broken atomic.Bool

	use       use         // the lease's, for observers; see observe.go
	rec       *record[T]  // the lease's record while leased, with TrackLeases
	reason    closeReason // why it is being closed, once it is
	expiresAt mono        // MaxLifetime plus jitter from the open; zero: never
	idleSince mono        // set on open and release, only when Check or MaxIdleTime read it
}

// mono is a reading of the monotonic clock: nanoseconds since the pool was
// made, plus one so that zero can mean "not set". It costs half of what
// time.Now does (one clock read, not two), which shows on every wait.
type mono int64

// expired reports whether c must be closed rather than handed out at now.
func (c *conn[T]) expired(now mono, maxIdleTime time.Duration) (closeReason, bool) {
	if c.expiresAt != 0 && now >= c.expiresAt {
		return closeLifetime, true
	}
	if maxIdleTime > 0 && time.Duration(now-c.idleSince) >= maxIdleTime {
		return closeIdleTime, true
	}
	return 0, false
}

// expiry is when a connection opened at now reaches its lifetime plus a
// random share of jitter, or zero (never) when lifetime is zero.
func expiry(now mono, lifetime, jitter time.Duration) mono {
	if lifetime <= 0 {
		return 0
	}
	at := now.add(lifetime)
	if jitter > 0 {
		at = at.add(rand.N(jitter))
	}
	return at
}

// startOpens opens one connection for each context, each in a goroutine of
// its own, so that the waiter it is for can give up without aborting it.
// The slots were counted (numOpen, opening) by the caller under mu.
func (p *Pool[T]) startOpens(ctxs []context.Context) {
	for _, ctx := range ctxs {
		go p.open(ctx)
	}
}

func (p *Pool[T]) open(ctx context.Context) { p.openOne(ctx) }

// openOne opens a connection for a slot already counted as opening (see
// life.open), and returns Open's error.
func (p *Pool[T]) openOne(ctx context.Context) error { return p.openAttempt(ctx, false) }

// openAttempt is openOne for the refusal probe too (probe set): see
// refused.go.
func (p *Pool[T]) openAttempt(ctx context.Context, probe bool) (err error) {
	p.life.open(ctx, struct{}{}, p.cfg.Open, func(v T, e error) {
		err = e
		p.opened(ctx, v, e, probe)
	})
	return err
}

// opened settles the slot of a finished open: the new connection goes to the
// next waiter or to idle; a failure frees the slot and ends the wait of the
// next waiter with the error, so that no one waits on a server that refuses
// to connect at all. A refusal (Config.Refused: the server is full) fails
// no one: the waiters wait for the connections the pool holds, and for the
// probe (refused.go). probe says this open was the probe's.
func (p *Pool[T]) opened(ctx context.Context, v T, err error, probe bool) {
	var now mono
	if err == nil && p.needClock {
		now = p.now()
	}
	refused := p.isRefusal(err)
	p.mu.Lock()
	if probe {
		p.refused.probing = false
	}
	if refused {
		p.cnt.n[cOpenErrors]++
		probeIn := p.refusedLocked(err)
		waiting := p.waiters.len
		p.mu.Unlock()
		p.events().log(slog.LevelDebug, "fairpool: open refused", slog.Any("error", err), slog.Int("waiting", waiting))
		if probeIn > 0 {
			go p.probe(ctx, probeIn)
		}
		return
	}
	p.opening--
	var c *conn[T]
	var opens []context.Context
	if err != nil {
		p.cnt.n[cOpenErrors]++
		p.numOpen--
		// Not a refusal: slots held back for one are free again.
		p.releaseHeldBackLocked(0)
		err = &OpenError{Pool: p.cfg.Name, Err: err}
		if w := p.waiters.pop(); w != nil {
			w.ready <- grant[T]{err: err}
		}
		opens = p.refillLocked()
		p.checkDrainedLocked()
	} else {
		p.cnt.n[cOpens]++
		opens = p.regrowLocked(ctx)
		c = p.newConn(p, v, now)
		to, destroy := p.putLocked(c, now)
		p.mu.Unlock()
		p.finishPut(c, to, destroy)
		p.startOpens(opens)
		return
	}
	waiting := p.waiters.len
	p.mu.Unlock()
	p.events().openFailed(err, waiting)
	p.startOpens(opens)
}

// putLocked gives c, which nobody holds, to the next waiter, or else makes
// it idle, or else (pool closed, MaxIdle reached) marks it for closing. The
// caller finishes with finishPut after unlocking mu. Handing to the waiter
// first is what makes the pool fair: a released connection never passes
// through idle while someone waits, so a newcomer cannot take it.
func (p *Pool[T]) putLocked(c *conn[T], now mono) (to *waiter[T], destroy bool) {
	if p.closed {
		p.beginCloseLocked(c, closePoolClosed)
		return nil, true
	}
	if p.waiters.len > 0 { // checked here so that the common case makes no call
		var w *waiter[T]
		if p.waiters.deadlined == 0 {
			w = p.waiters.pop()
		} else {
			w = p.handOffLocked() // see overload.go
		}
		if w != nil {
			p.cnt.n[cAcquires]++
			return w, false
		}
	}
	if p.idle.len() >= p.cfg.MaxIdle {
		p.beginCloseLocked(c, closeOverIdle)
		return nil, true
	}
	c.idleSince = now
	p.idle.push(c)
	return nil, false
}

// finishPut does, without mu, what putLocked decided. A waiter that was
// taken off the queue and has not been sent its grant yet may already be
// cancelled; it then blocks on ready until this send, which cannot fail.
func (p *Pool[T]) finishPut(c *conn[T], to *waiter[T], destroy bool) {
	if to != nil {
		to.ready <- grant[T]{c: c}
	}
	if destroy {
		go p.destroy(c)
	}
}

// beginCloseLocked counts c as closing, for reason r; destroy finishes.
func (p *Pool[T]) beginCloseLocked(c *conn[T], r closeReason) {
	c.reason = r
	p.closing++
	p.cnt.closedBy[r]++
}

// discard closes a connection that was handed out and will not come back.
// The close runs on a goroutine of its own, off the caller's path.
func (p *Pool[T]) discard(c *conn[T], r closeReason) {
	p.mu.Lock()
	p.beginCloseLocked(c, r)
	p.mu.Unlock()
	go p.destroy(c)
}

// destroy closes c, already counted as closing, and then frees its slot.
// The slot stays counted until Close returns, so MaxSize bounds
// connections being closed too. Callers run it on a goroutine of the
// pool, never on one of Acquire, Release, Discard or Close.
func (p *Pool[T]) destroy(c *conn[T]) {
	defer p.destroyed() // even if Close calls runtime.Goexit
	p.closeConn(c, struct{}{})
}

// destroyed frees the slot of a connection whose close has ended.
func (p *Pool[T]) destroyed() {
	p.mu.Lock()
	p.closing--
	p.numOpen--
	opens := p.refillLocked()
	p.kickKeeperLocked()
	p.checkDrainedLocked()
	p.mu.Unlock()
	p.startOpens(opens)
}

// refillLocked starts no more opens than waiters need and slots allow, and
// returns the contexts to open with. It keeps the second half of the
// invariant on Pool.mu: a waiter never waits while a slot is free and no
// open is under way for it.
func (p *Pool[T]) refillLocked() []context.Context {
	var ctxs []context.Context
	for p.waiters.len > p.opening && p.numOpen < p.cfg.MaxSize && !p.closed {
		ctxs = append(ctxs, p.waiters.nth(p.opening).ctx)
		p.numOpen++
		p.opening++
	}
	return ctxs
}

// add returns m moved d later, saturating rather than wrapping: a limit of
// math.MaxInt64 (or a limit plus jitter past it) means "never", not "at
// once".
func (m mono) add(d time.Duration) mono {
	if d > 0 && m > math.MaxInt64-mono(d) {
		return math.MaxInt64
	}
	return m + mono(d)
}
