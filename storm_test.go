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

// stormTally counts what the workers of a Pool's or a Group's storm saw,
// to hold Stats against: handedOut counts leases (an AcquireAll of n keys,
// n), checkPanics the Check panics that reached a caller.
type stormTally struct {
	handedOut, timeouts, cancels, sheds, openErrs, exhausted, panics, checkPanics atomic.Int64
}

// stormCtx tells an acquire whose context had ended before it began, and
// so is counted nowhere in Stats (it never waited), from one cancelled
// later, which counts as a cancel: the first Err call of an acquire is
// its check on entry.
type stormCtx struct {
	context.Context
	calls   atomic.Int32
	endedOn atomic.Bool
}

func (c *stormCtx) Err() error {
	err := c.Context.Err()
	if c.calls.Add(1) == 1 && err != nil {
		c.endedOn.Store(true)
	}
	return err
}

// stormWorkers runs a storm: workers goroutines, each with a random source
// of its own (from seed and its number), doing total steps between them,
// with garbage collection forced all along if gc. step does one, under a
// holder id no other step shares, and returns the first broken rule it
// sees in the pool's or group's state, which stops its worker. A storm
// not done in 5 minutes is stuck: stats says where.
func stormWorkers(t *testing.T, workers, total int, seed uint64, gc bool, step func(r *rand.Rand, id int64) error, stats func() any) {
	t.Helper()
	if gc {
		defer forceGC()()
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), seed))
			for i := 0; done.Add(1) <= int64(total); i++ {
				if err := step(r, int64(w)<<32|int64(i)+1); err != nil {
					t.Errorf("worker %d step %d: %v", w, i, err)
					return
				}
			}
		})
	}
	if !waitBounded(&wg, 5*time.Minute) {
		t.Fatalf("storm stuck after %d ops: %+v", done.Load(), stats())
	}
}

// stormWith runs a With (with: a Pool's, or a Group's for one key) that
// may nest, panic or report a bad connection.
func stormWith[C interface {
	comparable
	use(testing.TB, int64)
	done(int64)
}](t *testing.T, with func(context.Context, func(context.Context, C) error) error, r *rand.Rand, sc *stormCtx, id int64, tally *stormTally, hold func()) {
	mode := r.IntN(10)
	called := false
	defer tally.recoverPanic()
	err := with(sc, func(ctx context.Context, c C) error {
		called = true
		tally.handedOut.Add(1)
		c.use(t, id)
		defer c.done(id)
		hold()
		if mode == 0 {
			if err := with(ctx, func(_ context.Context, c2 C) error {
				if c2 != c {
					t.Error("nested With got another connection")
				}
				return nil
			}); err != nil {
				t.Errorf("nested With failed: %v", err)
			}
		}
		return stormOutcome(mode)
	})
	tally.withDone(t, called, err, 1, sc)
}

// stormContext draws an acquire's context: one in four ends after a
// random timeout, one in four is cancelled from another goroutine at once,
// racing the hand-off. The caller defers cancel.
func stormContext(r *rand.Rand) (sc *stormCtx, cancel context.CancelFunc) {
	inner := bg()
	cancel = func() {}
	switch r.IntN(4) {
	case 0:
		inner, cancel = context.WithTimeout(inner, time.Duration(r.IntN(2000))*time.Microsecond)
	case 1:
		inner, cancel = context.WithCancel(inner)
		go func() { runtime.Gosched(); cancel() }() // races the hand-off
	}
	return &stormCtx{Context: inner}, cancel
}

// stormHold is how a storm step holds its connections: mostly a few
// yields, now and then long, longer than AcquireTimeout, so that others
// may time out.
func stormHold(r *rand.Rand, long time.Duration) func() {
	return func() {
		if r.IntN(50) == 0 {
			time.Sleep(long)
		}
		for range r.IntN(3) {
			runtime.Gosched()
		}
	}
}

// stormOutcome ends a storm's callback as mode (drawn from ten) says: in
// one case a panic, which recoverPanic counts, in one a bad connection.
func stormOutcome(mode int) error {
	switch mode {
	case 1:
		panic("storm panic")
	case 2:
		return fmt.Errorf("io: %w", ErrBadConn)
	}
	return nil
}

// recoverPanic, deferred by a storm step, counts the panic stormOutcome
// threw and lets any other through.
func (tally *stormTally) recoverPanic() {
	if v := recover(); v != nil {
		if v != "storm panic" {
			panic(v)
		}
		tally.panics.Add(1)
	}
}

// withDone checks what a With returned (called: whether fn ran), and if
// fn never ran, classifies err as an acquire's of n leases.
func (tally *stormTally) withDone(t *testing.T, called bool, err error, n int, sc *stormCtx) {
	switch {
	case !called && err == nil:
		t.Error("With returned nil without calling fn")
	case !called:
		tally.acquired(t, err, n, sc)
	case err != nil && !errors.Is(err, ErrBadConn):
		t.Errorf("With returned %v after fn succeeded", err)
	}
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
	stormWorkers(t, workers, total, 0xfa1, track, func(r *rand.Rand, id int64) error {
		stormStep(t, p, r, id, &tally)
		return p.checkInvariants()
	}, func() any { return p.Stats() })
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
	sc, cancel := stormContext(r)
	defer cancel()
	ctx := context.Context(sc)
	hold := stormHold(r, 10*time.Millisecond)
	switch op := r.IntN(10); {
	case op < 4:
		l, err := p.Acquire(ctx)
		if !tally.acquired(t, err, 1, sc) {
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
		stormWith(t, p.With, r, sc, id, tally, hold)
	default:
		l, err := p.TryAcquire(ctx)
		if errors.Is(err, ErrExhausted) {
			tally.exhausted.Add(1)
			return
		}
		if !tally.acquired(t, err, 1, sc) {
			return
		}
		l.Value().use(t, id)
		l.Value().done(id)
		l.Release()
	}
}

// acquired classifies an acquire's error for n leases, failing t on any
// the storm cannot produce, and reports whether the leases were handed
// out. An acquire whose context had ended on entry counts as nothing in
// Stats; an open error, once, however many keys it was for.
func (tally *stormTally) acquired(t *testing.T, err error, n int, sc *stormCtx) bool {
	var te *TimeoutError
	var oe *OpenError
	var pe *PanicError
	switch {
	case err == nil:
		tally.handedOut.Add(int64(n))
		return true
	case errors.As(err, &pe) && pe.Callback == "Check":
		tally.checkPanics.Add(1)
	case errors.Is(err, ErrTimeout):
		tally.timeouts.Add(int64(n))
	case errors.Is(err, ErrOverload): // before DeadlineExceeded, which it also is
		tally.sheds.Add(int64(n))
	case errors.As(err, &te) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		if !sc.endedOn.Load() {
			tally.cancels.Add(int64(n))
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
