package fairpool

import (
	"context"
	"sync/atomic"
	"time"
)

// Overload: when more callers come than the connections can serve, a FIFO
// line serves every one of them late. Every waiter's context carries its
// deadline, so the pool can tell who it can still serve in time: a caller
// whose deadline the line cannot meet is turned away at once (shed) rather
// than at its deadline, and a connection never goes to a waiter that
// cannot finish with it before its deadline. The connections then serve
// callers that are still waiting for the answer, and those that cannot be
// served hear so while they can still do something else.
//
// The estimate comes from the line itself (pace): how long served waiters
// waited for each waiter ahead of them. It costs the hot path nothing:
// a waiter reads the clock when it wakes anyway, and callers without a
// deadline are never judged.

// ErrOverload is the cause (TimeoutError.Err) of an acquire that the pool
// turned away because its context's deadline could not be met: the line
// ahead of it, at the pace it moves, and the time a lease is held, would
// take it past that deadline; or its turn came too close to the deadline
// to use a connection. TimeoutError.Estimate says what the pool expected.
// errors.Is(err, context.DeadlineExceeded) reports true as well, since the
// deadline is what cannot be met: code that handles deadlines keeps
// working.
var ErrOverload error = overloadError{}

type overloadError struct{}

func (overloadError) Error() string {
	return "fairpool: overloaded: the context's deadline cannot be met"
}

func (overloadError) Is(target error) bool { return target == context.DeadlineExceeded }

// pace is how fast a line moves: a moving average of the time between two
// hand-offs to waiters while the line lasts. Under saturation a lease is
// held about size hand-offs long (Little's law), so it also estimates the
// hold. Atomic, so that a Group's keys can read it without their lock.
type pace struct {
	interval atomic.Int64 // nanoseconds; 0 until the first sample
}

// paceWeight is how little of the average one sample moves: a change of
// pace is followed within a hundred hand-offs or so, while one long gap
// (a goroutine descheduled, a stop of the world) cannot make the line
// look slow enough to shed callers it would serve in time. Samples are
// not clipped: gaps come in clusters of short ones and a few long ones,
// and clipping the long ones would make the line look faster than it is.
const paceWeight = 32

func (p *pace) observe(gap time.Duration) {
	sample := int64(gap)
	old := p.interval.Load()
	if old == 0 {
		p.interval.Store(max(sample, 1))
		return
	}
	p.interval.Store(max(old+(sample-old)/paceWeight, 1))
}

// estimate returns how long a waiter with ahead waiters in front of it is
// expected to wait, and how long a lease is expected to be held, in a pool
// of size connections, all in use. Both are zero before anything is known.
func (p *pace) estimate(ahead, size int) (wait, hold time.Duration) {
	iv := time.Duration(p.interval.Load())
	return iv * time.Duration(ahead+1), iv * time.Duration(size)
}

// ctxDeadline returns ctx's deadline on the clock whose zero is base, or 0
// without one. A deadline too far to fit saturates.
func ctxDeadline(ctx context.Context, base time.Time) mono {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(mono(1).add(d.Sub(base)), 1) // d.Sub saturates; a past deadline stays non-zero
}

// The Adaptive wait order ("Fail at Scale", Maurer, ACM Queue 2015): a
// line that has not been empty for adaptiveInterval is a standing line,
// not a burst that drains; while it stands, newcomers are served newest
// first and wait adaptiveTimeout at most, so that those served are served
// fast and the rest hear so at once.
const (
	adaptiveInterval = 100 * time.Millisecond
	adaptiveTimeout  = 5 * time.Millisecond
)

// standingLocked reports, as a waiter joins a line of waiting others at
// now, whether the line stands: it has not been empty for
// adaptiveInterval.
func (p *Pool[T]) standingLocked(waiting int, now mono) bool {
	if waiting == 0 {
		p.nonEmptySince = now
	}
	return time.Duration(now-p.nonEmptySince) >= adaptiveInterval
}

// shedLocked turns away a caller about to queue whose context's deadline,
// dl, the line cannot meet: with every connection in use, the
// waiters ahead at the line's pace, plus a lease's hold, end past it. It
// returns nil to let the caller queue. A caller first in line is always
// let in: its wait teaches the pace, which must not stop learning.
func (p *Pool[T]) shedLocked(dl mono, a *attempt[T]) error {
	// Slots held back by refusals (refused.go) count as open and opening
	// but serve nobody: the line moves at the pace of the others.
	heldBack := p.refused.heldBackLocked()
	if p.waiters.lifo || a.ticket != 0 || p.waiters.len == 0 ||
		p.numOpen < p.cfg.MaxSize || p.opening > heldBack {
		return nil
	}
	wait, hold := p.pace.estimate(p.waiters.len, p.servingLocked())
	now := p.now()
	if wait == 0 || now.add(wait+hold) <= dl {
		return nil
	}
	p.cnt.n[cSheds]++
	err := p.waitErrorLocked(now, a.held, now, ErrOverload)
	err.Estimate = wait + hold
	return err
}

// servingLocked is how many connections serve the line: open, neither
// being opened nor closed. Slots held back by refusals (refused.go) count
// as opening and serve nobody, so while a server refuses, the hold a
// hand-off interval stands for is that of the connections the pool has.
func (p *Pool[T]) servingLocked() int {
	return max(p.numOpen-p.opening-p.closing, 1)
}

// handOffLocked takes the waiter a freed connection goes to when some
// waiters have a deadline or the pool is Adaptive, or returns nil if none
// is left to take it. It learns the line's pace from the time between
// hand-offs, and sheds the waiters it would serve whose deadline comes
// before a lease's hold would end: they would use the connection for an
// answer nobody waits for.
func (p *Pool[T]) handOffLocked() *waiter[T] {
	now := p.now()
	if p.lastHandOff != 0 {
		p.pace.observe(time.Duration(now - p.lastHandOff))
	}
	p.lastHandOff = now
	_, hold := p.pace.estimate(0, p.servingLocked())
	for w := p.waiters.pop(); w != nil; w = p.waiters.pop() {
		if w.ctxDone == 0 || now.add(hold) <= w.ctxDone {
			if p.waiters.len == 0 {
				p.lastHandOff = 0 // the line is gone: the next gap is no hand-off interval
			}
			return w
		}
		p.cnt.n[cSheds]++
		err := p.waitErrorLocked(w.enqueued, w.held, now, ErrOverload)
		err.Estimate = hold
		w.ready <- grant[T]{err: err}
	}
	p.lastHandOff = 0
	return nil
}
