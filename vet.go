package fairpool

import (
	"context"
)

// Vetting a connection at hand-out: expiry and Config.Check. It runs in
// the acquiring goroutine, outside mu, on a connection already counted as
// handed out (Stats.Acquires); a connection that fails is taken back from
// that count.

// vet reports whether c may be handed out to the caller of attempt a. If
// not, c is no longer the caller's: it was closed, or went back to the
// pool; err, if set, ends the caller's acquire.
func (p *Pool[T]) vet(ctx context.Context, c *conn[T], a *attempt[T]) (bool, error) {
	now := p.now()
	if a.since == 0 {
		// Taken without queueing: the caller's wait, and its deadline for
		// a check and any retry, run from here.
		a.since = now
	}
	if r, expired := c.expired(now, p.cfg.MaxIdleTime); expired {
		p.refuse(c, r, a)
		return false, nil
	}
	if !p.checkDue(c, now) {
		return true, nil
	}
	return p.check(ctx, c, a)
}

// check runs Config.Check on c (see check.go) and waits for it no longer
// than the caller may wait: AcquireTimeout from a.since, ctx, or Close.
func (p *Pool[T]) check(ctx context.Context, c *conn[T], a *attempt[T]) (bool, error) {
	var deadline mono
	if p.cfg.AcquireTimeout > 0 {
		deadline = a.since.add(p.cfg.AcquireTimeout)
	}
	cctx, cancel := p.checkContext(ctx, deadline)
	defer cancel()
	run := startCheck(p.checkFn, cctx, c, func(err error) { p.settleCheck(c, err, cctx, nil) })
	var err error
	select {
	case err = <-run.done:
	case <-cctx.Done():
		var returned bool
		if err, returned = run.abandon(); !returned {
			return false, p.checkGaveUp(ctx, a)
		}
	}
	if cctx.Err() != nil || p.closedNow() {
		// The caller's time ran out, or the pool closed, as Check
		// returned: the caller gets nothing.
		p.settleCheck(c, err, cctx, nil)
		return false, p.checkGaveUp(ctx, a)
	}
	if err == nil {
		return true, nil
	}
	if p.settleCheck(c, err, cctx, a) == checkPanicked {
		return false, err
	}
	return false, nil
}

// checkGaveUp ends the acquire of a caller whose check outlasted it: the
// pool closed, its context ended, or AcquireTimeout passed.
func (p *Pool[T]) checkGaveUp(ctx context.Context, a *attempt[T]) error {
	if p.closedNow() {
		return p.errClosed // as to a waiter that Close woke
	}
	return p.giveUp(a, ctx.Err())
}

// closedNow reports whether Close has been called, without taking mu.
func (p *Pool[T]) closedNow() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// settleCheck decides the fate of c, which Check returned err for and
// which no caller will get (see judgeCheck): a pass puts it back as fresh;
// a context's error once cctx ended puts it back unvetted, to be checked
// again at its next hand-out; a failure closes it.
//
// a is the caller that lost c and will queue again, if any: see refuse.
func (p *Pool[T]) settleCheck(c *conn[T], err error, cctx context.Context, a *attempt[T]) checkVerdict {
	v := judgeCheck(err, cctx, p.events())
	switch v {
	case checkPassed:
		p.putBack(c, p.now())
	case checkUnsure:
		p.putBack(c, c.idleSince)
	case checkPanicked:
		p.refuse(c, closeCheckFailed, nil) // the caller fails: it will not queue again
	default:
		p.refuse(c, closeCheckFailed, a)
	}
	return v
}

// refuse closes c, which was handed out but did not reach the caller. If
// a is set, the caller queues again for another and the close starts only
// once it has (take starts it, holding mu): the slot c frees must not go
// to someone who arrived after it before it is back in line.
func (p *Pool[T]) refuse(c *conn[T], r closeReason, a *attempt[T]) {
	p.mu.Lock()
	p.cnt.n[cAcquires]--
	p.beginCloseLocked(c, r)
	p.mu.Unlock()
	if a != nil {
		a.pending = c
		return
	}
	go p.destroy(c)
}

// putBack returns c, handed out but not to reach the caller, as a
// release would, keeping idleSince as given.
func (p *Pool[T]) putBack(c *conn[T], idleSince mono) {
	c.idleSince = idleSince
	p.mu.Lock()
	p.cnt.n[cAcquires]--
	to, destroy := p.putLocked(c, idleSince)
	p.mu.Unlock()
	p.finishPut(c, to, destroy)
}

// giveUp ends the acquire of a caller that is in no line: its context
// ended (cause is ctx's error) or, with a nil cause, AcquireTimeout passed.
func (p *Pool[T]) giveUp(a *attempt[T], cause error) error {
	now := p.now()
	since := a.since
	if since == 0 {
		since = now
	}
	p.mu.Lock()
	switch {
	case cause == nil:
		cause = ErrTimeout
		p.cnt.n[cTimeouts]++
	case a.since != 0:
		p.cnt.n[cCancels]++
	default:
		// Its context had ended before it began: it never waited, and
		// no counter counts it.
	}
	err := p.waitErrorLocked(since, a.held, now, cause)
	p.mu.Unlock()
	if cause == ErrTimeout {
		logTimeout(p.cfg.Logger, err)
	}
	return err
}
