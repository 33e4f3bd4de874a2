package fairpool

import (
	"log/slog"
	"time"
)

// The keeper is one goroutine per pool, started only when MinIdle,
// MaxLifetime, MaxIdleTime or LeakThreshold is set. It closes idle
// connections whose time is up, opens connections until MinIdle are idle,
// and warns of leases held past LeakThreshold. Hand-out and release
// check expiry too, so the keeper only makes retirement timely; it is never
// what stops an expired connection from being handed out.

// keepInterval is how often the keeper looks when nothing kicks it: a
// quarter of the shortest limit, so a connection outlives its limit by at
// most that much while idle, and never more than a minute.
func (c *Config[T]) keepInterval() time.Duration {
	every := time.Minute
	for _, d := range []time.Duration{c.MaxLifetime, c.MaxIdleTime, c.LeakThreshold} {
		if d > 0 {
			every = min(every, d/4)
		}
	}
	return max(every, time.Millisecond)
}

func (p *Pool[T]) startKeeper() {
	if p.cfg.MinIdle == 0 && p.cfg.MaxLifetime == 0 && p.cfg.MaxIdleTime == 0 && p.cfg.LeakThreshold == 0 {
		return
	}
	p.keeperRunning = true
	p.kick = make(chan struct{}, 1)
	go p.keep()
}

// kickKeeperLocked wakes the keeper when the pool fell below MinIdle.
func (p *Pool[T]) kickKeeperLocked() {
	if p.kick != nil && p.idle.len() < p.cfg.MinIdle {
		select {
		case p.kick <- struct{}{}:
		default: // already kicked
		}
	}
}

func (p *Pool[T]) keep() {
	t := time.NewTicker(p.cfg.keepInterval())
	defer t.Stop()
	// However the keeper ends (a callback may call runtime.Goexit on it),
	// Close must not wait for it.
	defer func() {
		p.mu.Lock()
		p.keeperRunning = false
		p.checkDrainedLocked()
		p.mu.Unlock()
	}()
	for {
		p.maintain()
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

// maintain does one round of the keeper's work.
func (p *Pool[T]) maintain() {
	now := p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	leaks := p.findLeaksLocked(now)
	expired, reasons := p.idle.takeExpired(now, p.cfg.MaxIdleTime)
	for i, c := range expired {
		p.beginCloseLocked(c, reasons[i])
	}
	p.mu.Unlock()
	for _, h := range leaks {
		p.events().log(slog.LevelWarn, "fairpool: lease held too long",
			slog.Duration("held_for", h.HeldFor), slog.String("caller", h.Caller), slog.String("stack", h.Stack))
	}
	for _, c := range expired {
		p.destroy(c)
	}
	// One at a time, in this goroutine: warming up is not urgent, and
	// Close ends p.done so an open cannot hold Close up. Each slot is
	// taken just before its open, and only while no one waits: waiters get
	// their own opens, and a slot the keeper holds for a later open is one
	// a waiter could use now. A failed open waits for the next round.
	for p.reserveKeeperOpen() {
		if p.openOne(p.done) != nil {
			break
		}
	}
}

// reserveKeeperOpen counts a slot as opening for the keeper if the pool is
// below MinIdle, open, and no one waits.
func (p *Pool[T]) reserveKeeperOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.waiters.len > 0 || p.idle.len()+p.opening >= p.cfg.MinIdle || p.numOpen >= p.cfg.MaxSize {
		return false
	}
	p.numOpen++
	p.opening++
	return true
}

// findLeaksLocked marks the leases held past LeakThreshold, once each, and
// returns them to be logged.
func (p *Pool[T]) findLeaksLocked(now mono) []Holder {
	if p.cfg.LeakThreshold == 0 {
		return nil
	}
	fresh := func(r *record[T]) bool {
		return !r.warned && time.Duration(now-r.acquired) >= p.cfg.LeakThreshold
	}
	leaks := p.holdersLocked(now, fresh)
	for r := range p.held {
		if fresh(r) {
			r.warned = true
			p.leaks++
		}
	}
	return leaks
}
