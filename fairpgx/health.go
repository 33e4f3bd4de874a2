package fairpgx

import (
	"context"
	"errors"
	"time"

	"github.com/fairpool/fairpool"
)

// The health check is pgxpool's: one goroutine per pool that, every
// HealthCheckPeriod, closes idle connections past MaxConnLifetime or
// MaxConnIdleTime and opens connections up to MinConns and MinIdleConns.
// It also runs when the pool starts, and shortly after a release closed a
// connection, which may have left the pool below its minimums.

const (
	// healthDelay is how long after such a close the check runs: the
	// close happens on a pool goroutine, and counting before it is done
	// would see the connection still there.
	healthDelay = 500 * time.Millisecond
	// topUpTimeout bounds one round of opening connections, hooks
	// included, as pgxpool bounds its own.
	topUpTimeout = time.Minute
	// openPoll is how often a top-up looks whether the open it started has
	// landed; fairpool offers no signal for that.
	openPoll = 2 * time.Millisecond
)

func (p *Pool) healthCheck() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.HealthCheckPeriod)
	defer t.Stop()
	// A fleet's share is given back on release; connections that sit
	// idle are never released, so they are looked at here too.
	var idleFleet <-chan time.Time
	if p.fleet != nil {
		ft := time.NewTicker(fleetIdleEvery)
		defer ft.Stop()
		idleFleet = ft.C
	}
	p.checkHealth()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.checkHealth()
		case <-p.health:
			p.checkHealth()
		case <-idleFleet:
			p.giveBackIdle()
		}
	}
}

// fleetIdleEvery is how often idle connections are offered back to a
// fleet whose other processes wait.
const fleetIdleEvery = 250 * time.Millisecond

// giveBackIdle closes the idle connections whose fleet slots a process
// with fewer connections waits for, as a release would (see giveBack).
func (p *Pool) giveBackIdle() {
	for _, l := range p.takeIdle() {
		r := l.Value()
		if r.slot >= 0 && p.fleet.giveBack(r.conn) {
			r.givenBack = true
			l.Discard()
			continue
		}
		l.Release()
	}
}

// kickHealth runs the health check healthDelay from now, if the pool has
// minimums to keep. Kicks within that delay run it once.
func (p *Pool) kickHealth() {
	if p.cfg.MinConns == 0 && p.cfg.MinIdleConns == 0 {
		return
	}
	p.kickMu.Lock()
	defer p.kickMu.Unlock()
	select {
	case <-p.stop:
		return
	default:
	}
	if p.kickTimer == nil {
		p.kickTimer = time.AfterFunc(healthDelay, func() {
			select {
			case p.health <- struct{}{}:
			default: // already due
			}
		})
		return
	}
	p.kickTimer.Reset(healthDelay)
}

// checkHealth is one round of the health check.
func (p *Pool) checkHealth() {
	p.retire()
	ctx, cancel := context.WithTimeout(context.Background(), topUpTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	p.topUp(ctx)
}

// retire closes the idle connections whose lifetime or idle time is up.
// Idle time does not close a connection the pool needs for MinConns; the
// lifetime does, and topUp replaces it.
func (p *Pool) retire() {
	if p.cfg.MaxConnLifetime <= 0 && p.cfg.MaxConnIdleTime <= 0 {
		return
	}
	idle := p.takeIdle()
	total := int32(p.pool.Stats().Open)
	now := time.Now()
	for _, l := range idle {
		r := l.Value()
		switch {
		case p.expired(r, now) && total >= p.cfg.MinConns:
			p.lifetimeCloses.Add(1)
			l.Discard()
			total--
		case p.cfg.MaxConnIdleTime > 0 && r.idleFor(now) > p.cfg.MaxConnIdleTime && total > p.cfg.MinConns:
			p.idleCloses.Add(1)
			l.Discard()
			total--
		default:
			// Back unchanged: r.idleSince is only moved by a caller's
			// release, so the check does not make it look fresh.
			l.Release()
		}
	}
}

// topUp opens connections until MinConns exist and MinIdleConns are idle,
// or until someone waits (their own opens come first), an open fails, or
// ctx ends. fairpool opens a connection for the pool when TryAcquire finds
// none idle; to make it find none, topUp holds the idle ones meanwhile
// and gives them back at the end. A caller arriving meanwhile opens its
// own connection or waits in line, never for topUp.
func (p *Pool) topUp(ctx context.Context) {
	var held []*fairpool.Lease[*connRes]
	defer func() {
		for _, l := range held {
			l.Release()
		}
	}()
	for ctx.Err() == nil {
		st := p.pool.Stats()
		need := max(p.cfg.MinConns-int32(st.Open-st.Closing), p.cfg.MinIdleConns-int32(st.Idle+len(held)))
		if need <= 0 || st.Waiting > 0 {
			return
		}
		l, err := p.pool.TryAcquire(ctx)
		if err == nil {
			p.internalAcquires.Add(1)
			held = append(held, l)
			continue
		}
		if !errors.Is(err, fairpool.ErrExhausted) || !p.awaitOpen(ctx, st.Opens) {
			return
		}
	}
}

// awaitOpen waits until no open is under way and reports whether a
// connection was opened since fairpool counted opensBefore: if not, the
// open failed or none began, and the next round tries again.
func (p *Pool) awaitOpen(ctx context.Context, opensBefore int64) bool {
	t := time.NewTicker(openPoll)
	defer t.Stop()
	for {
		st := p.pool.Stats()
		if st.Opening == 0 {
			return st.Opens > opensBefore
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}
