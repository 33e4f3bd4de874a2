package fairpool

import "context"

// Vetting at hand-out: a request that has a connection for every part
// checks, outside mu, those not vetted yet (expiry, then Config.Check)
// before it returns them. Each Check runs in a goroutine of its own, and
// the caller waits for it no longer than the request's deadline: a Check
// that blocks, whether or not it heeds its context, cannot hold an
// Acquire past AcquireTimeout or ctx. A Check still running when the
// caller gives up keeps the connection, with its place and its share of
// GlobalMax, until it returns, and then settles it (settleOrphan).

// vetAll vets the parts' connections not vetted yet and reports whether
// all passed; those that failed are vetBad, for retry to close. An error
// ends the acquire, r having given back everything: the caller's time ran
// out (a *TimeoutError), or a Check panicked (the *PanicError).
func (g *Group[K, T]) vetAll(ctx context.Context, r *request[K, T]) (bool, error) {
	now := g.now()
	g.startLocked(r, now) // r is done: its goroutine owns its clock
	ok, checks := true, false
	for i := range r.parts {
		p := &r.parts[i]
		if p.vet != vetNone {
			continue
		}
		switch reason, expired := p.c.expired(now, g.cfg.MaxIdleTime); {
		case expired:
			p.vet, p.bad, ok = vetBad, reason, false
		case g.checkDue(p.c, now):
			checks = true
		default:
			p.vet = vetOK
		}
	}
	if !checks {
		return ok, nil
	}
	return g.checkAll(ctx, r)
}

// checkAll runs the Checks due, all at once, and waits for them until
// the request's deadline.
func (g *Group[K, T]) checkAll(ctx context.Context, r *request[K, T]) (bool, error) {
	cctx, cancel := g.checkContext(ctx, r.deadline)
	defer cancel()
	if cctx.Err() == nil {
		for i := range r.parts {
			if p := &r.parts[i]; p.vet == vetNone {
				p.vet = vetChecking
				s, c := p.s, p.c
				p.run = startCheck(g.checkFn, cctx, c, func(err error) { g.settleOrphan(s, c, cctx, err) })
			}
		}
	} // else out of time already: nothing is checked for a caller about to go
	var panicked error
	for i := range r.parts {
		p := &r.parts[i]
		if p.vet != vetChecking {
			continue
		}
		select {
		case err := <-p.run.done:
			if pe := g.settleCheck(p, err, cctx); pe != nil && panicked == nil {
				panicked = pe
			}
		case <-cctx.Done():
		}
	}
	if cctx.Err() != nil {
		return false, g.giveUpVetting(ctx, r, cctx)
	}
	if panicked != nil {
		g.dropVetting(r, nil)
		return false, panicked
	}
	for i := range r.parts {
		if r.parts[i].vet != vetOK {
			return false, nil
		}
	}
	return true, nil
}

// settleCheck records the result of p's Check, which returned err, and
// returns err if it is a panic's. cctx is the Check's context (see
// judgeCheck).
func (g *Group[K, T]) settleCheck(p *part[K, T], err error, cctx context.Context) error {
	p.run = nil
	switch judgeCheck(err, cctx, g.events(p.s.key)) {
	case checkPassed:
		p.vet = vetOK
		p.c.idleSince = g.now() // as fresh as a release: no Check again before CheckAfter
	case checkUnsure:
		p.vet = vetUnsure
	case checkPanicked:
		p.vet, p.bad = vetBad, closeCheckFailed
		return err
	default:
		p.vet, p.bad = vetBad, closeCheckFailed
	}
	return nil
}

// giveUpVetting ends a request whose time ran out while its connections
// were vetted: with ctx's error if ctx ended, else ErrTimeout. A Check
// that has returned is heard; one still running is left to settle its
// connection when it returns.
func (g *Group[K, T]) giveUpVetting(ctx context.Context, r *request[K, T], cctx context.Context) error {
	for i := range r.parts {
		p := &r.parts[i]
		if p.vet != vetChecking {
			continue
		}
		if err, returned := p.run.abandon(); returned {
			g.settleCheck(p, err, cctx)
		} else {
			p.vet, p.run = vetOrphan, nil
		}
	}
	if g.done.Err() != nil {
		g.dropVetting(r, nil)
		return g.errClosed // as to a waiter that Close woke
	}
	cause := ctx.Err()
	if cause == nil {
		cause = ErrTimeout
	}
	te := g.dropVetting(r, cause)
	if cause == ErrTimeout {
		logTimeout(g.cfg.Logger, te)
	}
	return te
}

// dropVetting gives back all that r, done and being vetted, holds, and
// with a cause, counts it as a timeout or a cancel and pictures it.
func (g *Group[K, T]) dropVetting(r *request[K, T], cause error) *TimeoutError {
	var t todo[K, T]
	var te *TimeoutError
	g.mu.Lock()
	if cause != nil {
		te = g.waitErrorLocked(r, cause)
		c := cCancels
		if cause == ErrTimeout {
			c = cTimeouts
		}
		for i := range r.parts {
			g.count(r.parts[i].s, c, 1)
		}
	}
	g.abandonLocked(r, &t)
	g.mu.Unlock()
	g.run(&t)
	return te
}

// settleOrphan decides the fate of c, of key s, whose Check returned err
// after its caller had given up, which it did only once the Check's
// context cctx had ended (see judgeCheck): a pass puts it back as a
// release would, to the next waiter or idle; a context's error puts it
// back unvetted, keeping its idleSince, to be checked at its next
// hand-out; a failure closes it. Then the place and the share of
// GlobalMax it kept go on.
func (g *Group[K, T]) settleOrphan(s *shard[K, T], c *conn[T], cctx context.Context, err error) {
	v := judgeCheck(err, cctx, g.events(s.key))
	if v == checkPassed {
		c.idleSince = g.now()
	}
	var t todo[K, T]
	g.lock()
	if v == checkFailed || v == checkPanicked {
		g.beginCloseLocked(s, c, closeCheckFailed, &t)
	} else {
		g.putLocked(s, c, 0, &t)
	}
	g.unplaceLocked(s, &t)
	g.unleaseLocked(1, &t)
	g.mu.Unlock()
	g.run(&t)
}

// retry closes the connections vetAll refused and puts their parts back at
// the front of their keys' connQs. It reports whether r must wait; a
// request that waits again keeps its start and deadline.
func (g *Group[K, T]) retry(r *request[K, T]) (bool, error) {
	var t todo[K, T]
	g.mu.Lock()
	for i := range r.parts {
		p := &r.parts[i]
		if p.vet != vetBad {
			continue
		}
		g.count(p.s, cAcquires, -1) // that hand-out did not reach the caller
		g.beginCloseLocked(p.s, p.c, p.bad, &t)
		p.c = nil
		p.vet = vetNone
		r.missing++
	}
	r.state = reqConns
	if g.closed {
		g.failLocked(r, g.errClosed, &t)
		g.mu.Unlock()
		g.run(&t)
		return false, g.errClosed
	}
	for i := range r.parts {
		p := &r.parts[i]
		if p.c != nil {
			continue
		}
		if s := p.s; s.connQ.len == 0 && s.idle.len() > 0 {
			g.giveLocked(p, g.popIdleLocked(s), &t)
			continue
		}
		p.s.connQ.pushFront(p, g.ticket())
		g.refillLocked(p.s, &t)
	}
	waiting := r.state != reqDone
	if waiting {
		g.beginWaitLocked(r)
	}
	g.mu.Unlock()
	g.run(&t)
	return waiting, nil
}
