package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// groupStormOps is how many operations TestGroupStorm runs: a tenth of
// TestStorm's (20,000 by default; FAIRPOOL_STORM_OPS and -short scale it).
func groupStormOps(t *testing.T) int { return stormOps(t) / 10 }

type groupTally struct {
	stormTally
	preCancelled atomic.Int64
}

// stormFaults are the storm's callbacks around a keyFactory: each now and
// then panics, Open sometimes returns a connection with its error, and
// Check sometimes outlasts AcquireTimeout, heeding its context or not.
// The counts say what happened, to reconcile with Stats.
type stormFaults struct {
	f                                             *keyFactory
	failChecks                                    atomic.Bool
	openPanics, strays, closePanics, resetPanics  atomic.Int64
	checkPanics, slowChecks, lateChecks, slowDeaf atomic.Int64
}

var errHandshake = errors.New("storm: handshake failed")

func (sf *stormFaults) Open(ctx context.Context, key string) (*keyConn, error) {
	if sf.f.chance(10) {
		sf.openPanics.Add(1)
		panic("storm: open panicked")
	}
	c, err := sf.f.Open(ctx, key)
	if err == nil && sf.f.chance(10) {
		sf.strays.Add(1)
		return c, errHandshake // the group must close c
	}
	return c, err
}

func (sf *stormFaults) Close(c *keyConn) error {
	err := sf.f.Close(c)
	if sf.f.chance(20) {
		sf.closePanics.Add(1)
		panic("storm: close panicked")
	}
	return err
}

func (sf *stormFaults) Reset(ctx context.Context, c *keyConn) error {
	if sf.f.chance(10) {
		sf.resetPanics.Add(1)
		panic("storm: reset panicked")
	}
	return nil
}

func (sf *stormFaults) Check(ctx context.Context, c *keyConn) error {
	switch {
	case sf.f.chance(20):
		sf.checkPanics.Add(1)
		panic("storm: check panicked")
	case sf.f.chance(30):
		sf.slowChecks.Add(1)
		if sf.f.chance(500) {
			sf.slowDeaf.Add(1)
			time.Sleep(5 * time.Millisecond) // deaf to ctx: outlives its caller
		} else {
			select {
			case <-ctx.Done():
				sf.lateChecks.Add(1)
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			sf.lateChecks.Add(1)
		}
	}
	if sf.failChecks.Load() && c.id%7 == 0 {
		return errors.New("check: broken pipe")
	}
	return nil
}

// TestGroupStorm runs goroutines mixing Acquire, With (nested, panicking,
// reporting bad connections), AcquireAll and WithAll of one to three keys
// in any order, random timeouts and cancels, over keys whose opens and
// checks fail at random, whose connections expire and whose pools are
// dropped and made again, with callbacks that panic now and then (Open,
// Check, Reset, Close), an Open that returns a connection with its error,
// and a Check that outlasts AcquireTimeout. After every step no connection
// is held twice and the Group's invariants hold (the factory checks both
// limits on every open); at the end everything came back and Stats agrees
// with what the workers and the callbacks saw.
//
// The tracked run adds lease tracking and a goroutine that forces garbage
// collection without pause, so a cleanup can race every Release and
// Discard: no released lease may be reclaimed, no With may be refused as
// a deadlock (none of the storm's nestings is one), and after every step
// the records match the leases out. FAIRPOOL_GROUP_STORM_TRACKED_OPS
// sets its length (20,000 by default, 2,000 with -short).
func TestGroupStorm(t *testing.T) {
	t.Run("plain", func(t *testing.T) { runGroupStorm(t, groupStormOps(t), false) })
	t.Run("tracked", func(t *testing.T) { runGroupStorm(t, envOps(t, "FAIRPOOL_GROUP_STORM_TRACKED_OPS", 20_000), true) })
}

func runGroupStorm(t *testing.T, total int, track bool) {
	const workers, keys, perKey, global = 24, 8, 2, 5
	f := newKeyFactory(t, perKey, global)
	sf := &stormFaults{f: f}
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{
		Open:              sf.Open,
		Close:             sf.Close,
		Check:             sf.Check,
		Reset:             sf.Reset,
		PerKeyMax:         perKey,
		GlobalMax:         global,
		AcquireTimeout:    3 * time.Millisecond,
		CheckAfter:        time.Nanosecond,
		MaxLifetime:       2 * time.Millisecond,
		MaxLifetimeJitter: time.Millisecond,
		MaxIdleTime:       5 * time.Millisecond,
		KeyIdleTime:       4 * time.Millisecond,
		TrackLeases:       track,
	})
	f.failRate.Store(20)
	sf.failChecks.Store(true)
	var tally groupTally
	stormWorkers(t, workers, total, 0x6a0, track, func(r *rand.Rand, id int64) error {
		groupStormStep(t, g, r, id, keys, &tally)
		if err := g.checkInvariants(); err != nil {
			return err
		}
		if err := g.checkTracking(); err != nil {
			return fmt.Errorf("tracking: %w", err)
		}
		return nil
	}, func() any { return g.Stats() })
	if t.Failed() {
		return
	}
	// Opens started for callers that gave up finish on their own, and so
	// do Checks that outlived theirs, holding their connections till then.
	// The sweeper goes on closing expired connections meanwhile: take a
	// snapshot that the factory agrees with.
	var s GroupStats[string]
	var c keyCounts
	waitFor(t, "opens, checks and closes under way to finish", func() bool {
		s, c = g.Stats(), f.counts()
		tt := s.Total
		return tt.Opening == 0 && tt.Closing == 0 && tt.InUse == 0 && tt.Open == c.total
	})
	tt := s.Total
	if tt.InUse != 0 || tt.Waiting != 0 || tt.Opening != 0 || tt.Closing != 0 || tt.Open != tt.Idle || tt.Open != c.total {
		t.Errorf("not everything came back: %+v; factory has %d open", tt, c.total)
	}
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("%d holders listed after everything came back", len(hs))
	}
	if tt.Reclaims != 0 || tt.ClosedReclaim != 0 || tt.Leaks != 0 {
		t.Errorf("Reclaims %d (closed %d), Leaks %d: nothing was dropped or held long", tt.Reclaims, tt.ClosedReclaim, tt.Leaks)
	}
	closed := tt.ClosedLifetime + tt.ClosedIdleTime + tt.ClosedCheck + tt.ClosedReset + tt.ClosedDiscard + tt.ClosedOverIdle + tt.ClosedByClose + tt.ClosedEvicted + tt.ClosedReclaim
	strays := sf.strays.Load()
	for _, chk := range []struct {
		name       string
		got, wantN int64
	}{
		{"Acquires vs hand-outs seen", tt.Acquires, tally.handedOut.Load()},
		{"Timeouts", tt.Timeouts, tally.timeouts.Load()},
		{"Cancels", tt.Cancels, tally.cancels.Load()},
		{"Opens vs factory opens less those returned with an error", tt.Opens, int64(c.totalOpens) - strays},
		{"OpenErrors vs factory failures, Open panics and connections returned with an error", tt.OpenErrors, int64(c.fails) + sf.openPanics.Load() + strays},
		{"closed by all reasons and evictions, and strays, vs factory closes", closed + strays, int64(c.closes)},
		{"histogram count", tt.WaitHistogram.Count, tt.Acquires},
	} {
		if chk.got != chk.wantN {
			t.Errorf("%s: stats %d, seen %d", chk.name, chk.got, chk.wantN)
		}
	}
	for _, chk := range []struct {
		name string
		n    int64
	}{{"timeouts", tt.Timeouts}, {"cancels", tt.Cancels}, {"open errors", tt.OpenErrors}, {"panics in With", tally.panics.Load()},
		{"check failures", tt.ClosedCheck}, {"discards", tt.ClosedDiscard}, {"lifetime", tt.ClosedLifetime},
		{"evictions", s.Evictions}, {"dropped key pools", s.KeyPoolsDropped}, {"contexts ended on entry", tally.preCancelled.Load()},
		{"Open panics", sf.openPanics.Load()}, {"connections returned with an open error", strays},
		{"Close panics", sf.closePanics.Load()}, {"Reset panics", sf.resetPanics.Load()}, {"resets failed", tt.ClosedReset},
		{"Check panics", sf.checkPanics.Load()}, {"Check panics reaching a caller", tally.checkPanics.Load()},
		{"slow checks", sf.slowChecks.Load()}, {"checks outliving their deadline", sf.lateChecks.Load()},
		{"checks deaf to their context", sf.slowDeaf.Load()}} {
		if chk.n == 0 {
			t.Errorf("the storm never produced %s: it does not test what it claims", chk.name)
		}
	}
	t.Logf("%d ops: %+v; evictions %d, pools created %d, dropped %d; panics: open %d, check %d, reset %d, close %d; slow checks %d (late %d)",
		total, tt, s.Evictions, s.KeyPoolsCreated, s.KeyPoolsDropped, sf.openPanics.Load(), sf.checkPanics.Load(), sf.resetPanics.Load(), sf.closePanics.Load(), sf.slowChecks.Load(), sf.lateChecks.Load())
}

func groupStormStep(t *testing.T, g *testGroup, r *rand.Rand, id int64, nkeys int, tally *groupTally) {
	sc, cancel := stormContext(r)
	defer cancel()
	ctx := context.Context(sc)
	defer func() {
		if sc.endedOn.Load() {
			tally.preCancelled.Add(1)
		}
	}()
	keys := make([]string, 1+r.IntN(3))
	for j, k := range r.Perm(nkeys)[:len(keys)] {
		keys[j] = fmt.Sprint("k", k)
	}
	if r.IntN(20) == 0 { // a rarely used key, whose pool is dropped between uses
		keys[0] = fmt.Sprint("rare", r.IntN(50))
	}
	hold := stormHold(r, 5*time.Millisecond)
	switch op := r.IntN(10); {
	case op < 3:
		ls, err := g.AcquireAll(ctx, keys...)
		if !tally.acquired(t, err, len(keys), sc) {
			return
		}
		for _, k := range keys {
			ls.Value(k).use(t, id)
		}
		hold()
		for _, k := range keys {
			ls.Value(k).done(id)
		}
		if r.IntN(5) == 0 {
			ls.Lease(keys[0]).Discard()
		}
		ls.Release()
	case op < 6:
		stormWith(t, func(ctx context.Context, fn func(context.Context, *keyConn) error) error {
			return g.With(ctx, keys[0], fn)
		}, r, sc, id, &tally.stormTally, hold)
	default:
		called := false
		defer tally.recoverPanic()
		mode := r.IntN(10)
		err := g.WithAll(ctx, keys, func(ctx context.Context, conns []*keyConn) error {
			called = true
			tally.handedOut.Add(int64(len(keys)))
			for _, c := range conns {
				c.use(t, id)
			}
			defer func() {
				for _, c := range conns {
					c.done(id)
				}
			}()
			hold()
			if mode == 0 {
				return g.With(ctx, keys[0], func(_ context.Context, c *keyConn) error {
					if c != conns[0] {
						t.Error("With inside WithAll got another connection")
					}
					return nil
				})
			}
			return stormOutcome(mode)
		})
		if !called {
			tally.acquired(t, err, len(keys), sc)
		}
	}
}
