package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// keepEmbedded acquires key and returns only the Lease embedded in the
// GroupLease: the GroupLease itself is dropped here, but the interior
// pointer keeps it alive, so it must not be reclaimed.
func keepEmbedded(t *testing.T, g *testGroup, key string) *Lease[*keyConn] {
	gl, err := g.Acquire(bg(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &gl.Lease
}

// TestAttack2_GroupEmbeddedLeaseKeepsItsGroupLease: a caller that keeps
// only the *Lease embedded in a GroupLease still holds the lease: GC
// must not reclaim it, and its Release must return the connection to
// its key.
func TestAttack2_GroupEmbeddedLeaseKeepsItsGroupLease(t *testing.T) {
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true, AcquireTimeout: time.Second})
	l := keepEmbedded(t, g, "a")
	for range 5 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
	runtime.GC()
	if s := g.Stats().Total; s.Reclaims != 0 {
		t.Fatalf("lease still held through its embedded Lease was reclaimed: %+v", s)
	}
	c := l.Value()
	l.Release()
	l2, err := g.TryAcquire(bg(), "a")
	if err != nil {
		t.Fatalf("TryAcquire after Release through the embedded Lease: %v", err)
	}
	if l2.Value() != c {
		t.Error("the released connection did not go back to its key")
	}
	l2.Release()
	if n := f.counts().closes; n != 0 {
		t.Errorf("%d closes", n)
	}
}

// TestAttack2_GroupLeaseGCStorm: workers over four keys take leases with
// Acquire, TryAcquire, AcquireAll and With, with random deadlines and
// cancels, and drop a tenth of them without Release while a goroutine
// forces GC without pause. Every dropped lease is reclaimed, exactly
// once; no released one ever is (Reclaims equals the drops exactly, and
// a reclaimed connection closed while held would trip the factory); the
// limits hold on every open (the factory) and step (invariants); and at
// the end everything has come back.
func TestAttack2_GroupLeaseGCStorm(t *testing.T) {
	const workers, keys, perKey, global = 16, 4, 2, 5
	rounds := 600
	if testing.Short() {
		rounds = 100
	}
	var ck dice
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{
		PerKeyMax: perKey, GlobalMax: global, TrackLeases: true, AcquireTimeout: 20 * time.Millisecond,
		CheckAfter: time.Microsecond,
		Check: func(ctx context.Context, c *keyConn) error {
			if ck.chance(30) {
				return errors.New("check: broken pipe")
			}
			return nil
		},
	})
	stopGC := forceGC()
	var dropped, handed atomic.Int64
	var tally stormTally
	key := func(k int) string { return fmt.Sprint("k", k) }
	drop := func(ls ...*GroupLease[string, *keyConn]) {
		for range ls {
			dropped.Add(1)
		}
	}
	// GC is forced above, all along: stormWorkers' own forcing is off.
	stormWorkers(t, workers, workers*rounds, 0x6c, false, func(r *rand.Rand, id int64) error {
		k := r.IntN(keys)
		ctx, cancel := context.WithCancel(bg())
		switch r.IntN(3) {
		case 0:
			ctx, cancel = context.WithTimeout(bg(), time.Duration(r.IntN(5000))*time.Microsecond)
		case 1:
			go func() { runtime.Gosched(); cancel() }()
		}
		sc := &stormCtx{Context: ctx}
		ctx = sc
		dropIt := r.IntN(10) == 0
		switch op := r.IntN(4); op {
		case 0, 1:
			var l *GroupLease[string, *keyConn]
			var err error
			if op == 0 {
				l, err = g.Acquire(ctx, key(k))
			} else {
				l, err = g.TryAcquire(ctx, key(k))
			}
			if errors.Is(err, ErrExhausted) {
				break
			}
			if !tally.acquired(t, err, 1, sc) {
				break
			}
			handed.Add(1)
			l.Value().use(t, id)
			runtime.Gosched()
			l.Value().done(id)
			if dropIt {
				drop(l)
				break
			}
			if r.IntN(5) == 0 {
				l.Discard()
			} else {
				l.Release()
			}
			l.Release() // late: does nothing
		case 2:
			k2 := (k + 1 + r.IntN(keys-1)) % keys
			ls, err := g.AcquireAll(ctx, key(k), key(k2))
			if !tally.acquired(t, err, 2, sc) {
				break
			}
			handed.Add(2)
			for _, kk := range []string{key(k), key(k2)} {
				ls.Value(kk).use(t, id)
				ls.Value(kk).done(id)
			}
			if dropIt {
				drop(ls.Lease(key(k)), ls.Lease(key(k2)))
				break
			}
			ls.Release()
		case 3:
			called := false
			err := g.With(ctx, key(k), func(_ context.Context, c *keyConn) error {
				called = true
				handed.Add(1)
				c.use(t, id)
				c.done(id)
				return nil
			})
			tally.withDone(t, called, err, 1, sc)
		}
		cancel()
		return g.checkInvariants()
	}, func() any { return g.Stats() })
	waitFor(t, "every dropped lease reclaimed", func() bool {
		runtime.GC()
		return g.Stats().Total.Reclaims >= dropped.Load()
	})
	stopGC()
	waitFor(t, "closes to finish", func() bool { s := g.Stats().Total; return s.Closing == 0 && s.Opening == 0 })
	s := g.Stats().Total
	if s.Reclaims != dropped.Load() || s.ClosedReclaim != dropped.Load() {
		t.Errorf("Reclaims %d, ClosedReclaim %d; %d leases dropped", s.Reclaims, s.ClosedReclaim, dropped.Load())
	}
	if s.InUse != 0 || s.Waiting != 0 {
		t.Errorf("not everything came back: %+v", s)
	}
	if s.Acquires != handed.Load() {
		t.Errorf("Acquires %d, hand-outs seen %d", s.Acquires, handed.Load())
	}
	for _, c := range []struct {
		name       string
		pool, seen int64
	}{{"Timeouts", s.Timeouts, tally.timeouts.Load()}, {"Cancels", s.Cancels, tally.cancels.Load()}, {"Sheds", s.Sheds, tally.sheds.Load()}} {
		if c.pool != c.seen {
			t.Errorf("%s: group %d, callers saw %d", c.name, c.pool, c.seen)
		}
	}
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("%d holders left", len(hs))
	}
	if err := g.checkTracking(); err != nil {
		t.Error(err)
	}
	t.Logf("dropped %d, handed %d, %+v", dropped.Load(), handed.Load(), s)
}
