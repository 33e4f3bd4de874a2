package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stormOps is the number of operations TestStorm runs: 200,000 by default,
// FAIRPOOL_STORM_OPS for longer runs, 20,000 with -short.
func stormOps(t *testing.T) int { return envOps(t, "FAIRPOOL_STORM_OPS", 200_000) }

// envOps reads an operation count from the variable env, or returns def
// (a tenth of it with -short).
func envOps(t *testing.T, env string, def int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return n
	}
	if testing.Short() {
		return def / 10
	}
	return def
}

// stormTally counts what the workers saw, to hold Stats against.
type stormTally struct {
	handedOut, timeouts, cancels, sheds, openErrs, exhausted, panics, checkPanics atomic.Int64
}

// TestStorm runs dozens of goroutines mixing Acquire, With (nested, panicking,
// reporting bad connections), TryAcquire, random timeouts and cancels,
// against a pool whose opens, checks, resets and closes fail or panic at
// random, whose checks sometimes block past the caller's deadline, and
// whose connections expire. On every step it checks that no connection is
// held twice and that the pool's invariants hold (the factory separately
// checks MaxSize on every open and catches double closes); at the end,
// that everything came back and that Stats agrees with what the workers
// saw.
//
// The tracked run adds lease tracking and a goroutine that forces garbage
// collection without pause, so a cleanup can race every Release: no
// released lease may be reclaimed. FAIRPOOL_STORM_TRACKED_OPS sets its
// length (1,000,000 for the full proof; 20,000 by default).
func TestStorm(t *testing.T) {
	t.Run("plain", func(t *testing.T) { runStorm(t, stormOps(t), false) })
	// Tracking adds a stack capture per acquire: a tenth of the operations.
	t.Run("tracked", func(t *testing.T) { runStorm(t, envOps(t, "FAIRPOOL_STORM_TRACKED_OPS", stormOps(t)/10), true) })
}

func runStorm(t *testing.T, total int, track bool) {
	const workers, maxSize = 32, 8
	f := newFactory(t, maxSize)
	f.failRate.Store(30)
	var checkFails, resetFails atomic.Bool
	var closePanics, openPanics atomic.Int64
	p := newTestPoolWith(t, f, Config[*fakeConn]{
		MaxSize:           maxSize,
		MinIdle:           2,
		MaxIdle:           6,
		AcquireTimeout:    3 * time.Millisecond,
		CheckAfter:        time.Nanosecond,
		MaxLifetime:       8 * time.Millisecond,
		MaxLifetimeJitter: 4 * time.Millisecond,
		MaxIdleTime:       time.Millisecond,
		TrackLeases:       track,
		Open: func(ctx context.Context) (*fakeConn, error) {
			if f.chance(10) {
				openPanics.Add(1)
				panic("open: storm")
			}
			return f.Open(ctx)
		},
		Check: func(ctx context.Context, c *fakeConn) error {
			if !checkFails.Load() {
				return nil
			}
			switch {
			case f.chance(50):
				return errors.New("check: broken pipe")
			case f.chance(5):
				panic("check: storm")
			case f.chance(5):
				time.Sleep(5 * time.Millisecond) // past AcquireTimeout, ignoring ctx
			}
			return nil
		},
		Reset: func(ctx context.Context, c *fakeConn) error {
			if !resetFails.Load() {
				return nil
			}
			switch {
			case f.chance(30):
				return errors.New("reset: broken pipe")
			case f.chance(3):
				panic("reset: storm")
			}
			return nil
		},
		Close: func(c *fakeConn) error {
			err := f.Close(c)
			if f.chance(5) {
				closePanics.Add(1)
				panic("close: storm")
			}
			return err
		},
	})
	checkFails.Store(true)
	resetFails.Store(true)

	var tally stormTally
	var done atomic.Int64
	var wg sync.WaitGroup
	if track {
		defer forceGC()()
	}
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0xfa1))
			for i := 0; ; i++ {
				if done.Add(1) > int64(total) {
					return
				}
				id := int64(w)<<32 | int64(i) + 1
				stormStep(t, p, r, id, &tally)
				if err := p.checkInvariants(); err != nil {
					t.Errorf("worker %d step %d: %v", w, i, err)
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		t.Fatalf("storm stuck after %d ops: %+v", done.Load(), p.Stats())
	}
	if t.Failed() {
		return
	}
	// An open started for a caller that gave up may still be finishing, a
	// close may be under way, and a check that outlived its caller may still
	// hold its connection; let them settle before reconciling.
	// The keeper goes on retiring connections meanwhile: take a snapshot
	// that the factory agrees with.
	var s Stats
	var fc factoryCounts
	waitFor(t, "opens, closes and checks to settle", func() bool {
		s, fc = p.Stats(), f.counts()
		return s.Opening == 0 && s.Closing == 0 && s.InUse == 0 && s.Open == fc.live
	})
	if s.InUse != 0 || s.Waiting != 0 || s.Opening != 0 || s.Closing != 0 || s.Open != s.Idle {
		t.Errorf("not everything came back: %+v", s)
	}
	if hs := p.Holders(); len(hs) != 0 {
		t.Errorf("%d holders listed after everything came back", len(hs))
	}
	if s.Reclaims != 0 || s.Leaks != 0 {
		t.Errorf("Reclaims %d Leaks %d: nothing was dropped or held long", s.Reclaims, s.Leaks)
	}
	if s.Open != fc.live {
		t.Errorf("pool says %d open, factory %d", s.Open, fc.live)
	}
	checks := []struct {
		name       string
		pool, seen int64
	}{
		{"Acquires vs hand-outs seen", s.Acquires, tally.handedOut.Load()},
		{"Timeouts", s.Timeouts, tally.timeouts.Load()},
		{"Cancels", s.Cancels, tally.cancels.Load()},
		{"Sheds", s.Sheds, tally.sheds.Load()},
		{"Opens", s.Opens, int64(fc.opens)},
		{"OpenErrors", s.OpenErrors, int64(fc.fails) + openPanics.Load()},
		{"closed by all reasons vs factory closes", s.ClosedLifetime + s.ClosedIdleTime + s.ClosedCheck + s.ClosedReset + s.ClosedDiscard + s.ClosedOverIdle + s.ClosedByClose + s.ClosedReclaim, int64(fc.closes)},
		{"histogram count", s.WaitHistogram.Count, s.Acquires},
	}
	for _, c := range checks {
		if c.pool != c.seen {
			t.Errorf("%s: pool %d, seen %d", c.name, c.pool, c.seen)
		}
	}
	if tally.openErrs.Load() > s.OpenErrors {
		t.Errorf("callers saw %d open errors, pool counted %d", tally.openErrs.Load(), s.OpenErrors)
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"timeouts", s.Timeouts}, {"cancels", s.Cancels}, {"sheds", s.Sheds}, {"open errors", s.OpenErrors}, {"exhausted", tally.exhausted.Load()},
		{"panics", tally.panics.Load()}, {"open panics", openPanics.Load()}, {"check panics", tally.checkPanics.Load()}, {"close panics", closePanics.Load()},
		{"check failures", s.ClosedCheck}, {"reset failures", s.ClosedReset},
		{"discards", s.ClosedDiscard}, {"lifetime", s.ClosedLifetime}, {"idle time", s.ClosedIdleTime}} {
		// A short run (-short, tracked) may by chance miss a rare event.
		if c.n == 0 && total >= 20_000 {
			t.Errorf("the storm never produced %s: it does not test what it claims", c.name)
		}
	}
	t.Logf("%d ops: %+v", total, s)
}

func stormStep(t *testing.T, p *Pool[*fakeConn], r *rand.Rand, id int64, tally *stormTally) {
	inner := context.Background()
	var cancel context.CancelFunc = func() {}
	switch r.IntN(4) {
	case 0:
		inner, cancel = context.WithTimeout(inner, time.Duration(r.IntN(2000))*time.Microsecond)
	case 1:
		inner, cancel = context.WithCancel(inner)
		go func() { runtime.Gosched(); cancel() }() // races the hand-off
	}
	defer cancel()
	sc := &stormCtx{Context: inner}
	ctx := context.Context(sc)
	hold := func() {
		if r.IntN(50) == 0 {
			time.Sleep(10 * time.Millisecond) // longer than AcquireTimeout: others may time out
		}
		for range r.IntN(3) {
			runtime.Gosched()
		}
	}
	switch op := r.IntN(10); {
	case op < 4:
		l, err := p.Acquire(ctx)
		if !stormErr(t, err, tally, sc) {
			return
		}
		c := l.Value()
		c.use(t, id)
		hold()
		c.done(id)
		if r.IntN(5) == 0 {
			l.Discard()
		} else {
			l.Release()
		}
		if r.IntN(4) == 0 {
			l.Release() // late second call: must do nothing
		}
	case op < 8:
		stormWith(t, p, r, sc, id, tally, hold)
	default:
		l, err := p.TryAcquire(ctx)
		if errors.Is(err, ErrExhausted) {
			tally.exhausted.Add(1)
			return
		}
		if !stormErr(t, err, tally, sc) {
			return
		}
		l.Value().use(t, id)
		l.Value().done(id)
		l.Release()
	}
}

// stormWith runs a With that may nest, panic or report a bad connection.
func stormWith(t *testing.T, p *Pool[*fakeConn], r *rand.Rand, sc *stormCtx, id int64, tally *stormTally, hold func()) {
	var ctx context.Context = sc
	mode := r.IntN(10)
	called := false
	defer func() {
		if v := recover(); v != nil {
			if v != "storm panic" {
				panic(v)
			}
			tally.panics.Add(1)
		}
	}()
	err := p.With(ctx, func(ctx context.Context, c *fakeConn) error {
		called = true
		tally.handedOut.Add(1)
		c.use(t, id)
		defer c.done(id)
		hold()
		if mode == 0 {
			inner := p.With(ctx, func(_ context.Context, c2 *fakeConn) error {
				if c2 != c {
					t.Error("nested With got another connection")
				}
				return nil
			})
			if inner != nil {
				t.Errorf("nested With failed: %v", inner)
			}
		}
		switch mode {
		case 1:
			panic("storm panic")
		case 2:
			return fmt.Errorf("io: %w", ErrBadConn)
		}
		return nil
	})
	switch {
	case !called && err == nil:
		t.Error("With returned nil without calling fn")
	case !called:
		stormErr(t, err, tally, sc)
	case err != nil && !errors.Is(err, ErrBadConn):
		t.Errorf("With returned %v after fn succeeded", err)
	}
}

// stormErr classifies an acquire's error, failing t on any the storm cannot
// produce, and reports whether a connection was handed out. An acquire
// whose context had ended on entry counts as nothing in Stats.
func stormErr(t *testing.T, err error, tally *stormTally, sc *stormCtx) bool {
	var te *TimeoutError
	var oe *OpenError
	var pe *PanicError
	switch {
	case err == nil:
		tally.handedOut.Add(1)
		return true
	case errors.As(err, &pe) && pe.Callback == "Check":
		tally.checkPanics.Add(1)
	case errors.Is(err, ErrTimeout):
		tally.timeouts.Add(1)
	case errors.Is(err, ErrOverload): // before DeadlineExceeded, which it also is
		tally.sheds.Add(1)
	case errors.As(err, &te) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		if !sc.endedOn.Load() {
			tally.cancels.Add(1)
		} else if te.Waited != 0 {
			t.Errorf("context ended on entry, yet waited %v", te.Waited)
		}
	case errors.As(err, &oe):
		tally.openErrs.Add(1)
	default:
		t.Errorf("unexpected error %v", err)
	}
	return false
}
