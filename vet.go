package fairpool

import (
	"context"
	"errors"
	"time"
)

// Vetting a connection at hand-out: expiry and Config.Check. It runs in
// the acquiring goroutine, outside mu, on a connection already counted as
// handed out (Stats.Acquires); a connection that fails is taken back from
// that count.

// vet reports whether c may be handed out to the caller of attempt a. If
// not, c is no longer the caller's: it was closed, or went back to the
// pool; err, if set, ends the caller's acquire.
func (p *Pool[T]) vet(ctx context.Context, c *conn[T], a *attempt) (bool, error) {
	now := p.now()
	if a.since == 0 {
		// Taken without queueing: the caller's wait, and its deadline for
		// a check and any retry, run from here.
		a.since = now
	}
	if r, expired := c.expired(now, p.cfg.MaxIdleTime); expired {
		p.refuse(c, r)
		return false, nil
	}
	if p.cfg.Check == nil || time.Duration(now-c.idleSince) <= p.cfg.CheckAfter {
		return true, nil
	}
	return p.check(ctx, c, a)
}

// check runs Config.Check on c in a goroutine of its own and waits for it
// no longer than the caller may wait: a Check that blocks, whether or not
// it heeds its context, cannot hold an Acquire past AcquireTimeout or ctx.
// A Check still running when the caller gives up settles c when it
// returns.
func (p *Pool[T]) check(ctx context.Context, c *conn[T], a *attempt) (bool, error) {
	var cctx context.Context
	var cancel context.CancelFunc
	if p.cfg.AcquireTimeout > 0 {
		cctx, cancel = context.WithDeadline(ctx, p.timeOf(a.since.add(p.cfg.AcquireTimeout)))
	} else {
		cctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- callVet("Check", p.cfg.Check, cctx, c.value) }()
	select {
	case err := <-done:
		if cctx.Err() == nil {
			if err == nil {
				return true, nil
			}
			p.settleCheck(c, err, false)
			var pe *PanicError
			if errors.As(err, &pe) {
				return false, err
			}
			return false, nil
		}
		// The caller's time ran out as Check returned: whatever Check
		// said, the caller gets nothing, and a failure is not the
		// connection's fault.
		p.settleCheck(c, err, true)
	case <-cctx.Done():
		go func() { p.settleCheck(c, <-done, true) }()
	}
	return false, p.giveUp(a, ctx.Err())
}

// settleCheck decides the fate of c, which Check returned err for and
// which no caller will get: a pass puts it back as fresh; a failure closes
// it, unless late says the check's context had ended, in which case the
// failure may be that and c goes back unvetted, to be checked again at its
// next hand-out. A panic always closes it.
func (p *Pool[T]) settleCheck(c *conn[T], err error, late bool) {
	var pe *PanicError
	switch {
	case errors.As(err, &pe):
		p.logPanic(err)
	case err == nil:
		p.putBack(c, p.now())
		return
	case late:
		p.putBack(c, c.idleSince)
		return
	default:
		p.logCheckFailed(err)
	}
	p.refuse(c, closeCheckFailed)
}

// refuse closes c, which was handed out but did not reach the caller.
func (p *Pool[T]) refuse(c *conn[T], r closeReason) {
	p.mu.Lock()
	p.acquires--
	p.beginCloseLocked(c, r)
	p.mu.Unlock()
	go p.destroy(c)
}

// putBack returns c, handed out but not to reach the caller, as a
// release would, keeping idleSince as given.
func (p *Pool[T]) putBack(c *conn[T], idleSince mono) {
	c.idleSince = idleSince
	p.mu.Lock()
	p.acquires--
	to, destroy := p.putLocked(c, idleSince)
	p.mu.Unlock()
	p.finishPut(c, to, destroy)
}

// giveUp ends the acquire of a caller that is in no line: its context
// ended (cause is ctx's error) or, with a nil cause, AcquireTimeout passed.
func (p *Pool[T]) giveUp(a *attempt, cause error) error {
	now := p.now()
	since := a.since
	if since == 0 {
		since = now
	}
	p.mu.Lock()
	if cause == nil {
		cause = ErrTimeout
		p.timeouts++
	} else {
		p.cancels++
	}
	err := p.waitErrorLocked(since, a.held, now, cause)
	p.mu.Unlock()
	if cause == ErrTimeout {
		p.logTimeout(err)
	}
	return err
}

// timeOf converts a reading of the pool's clock back to wall time.
func (p *Pool[T]) timeOf(m mono) time.Time { return p.base.Add(time.Duration(m - 1)) }
