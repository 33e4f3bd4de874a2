package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// a3Tally is what the callers of a refusal storm saw.
type a3Tally struct {
	served, timeouts, cancels, sheds, openErrs, exhausted, closed atomic.Int64
}

func (tl *a3Tally) classify(t *testing.T, err error) bool {
	var te *TimeoutError
	var oe *OpenError
	switch {
	case err == nil:
		tl.served.Add(1)
		return true
	case errors.Is(err, ErrExhausted):
		tl.exhausted.Add(1)
	case errors.Is(err, ErrClosed):
		tl.closed.Add(1)
	case errors.Is(err, ErrOverload):
		tl.sheds.Add(1)
	case errors.Is(err, ErrTimeout):
		tl.timeouts.Add(1)
	case errors.As(err, &te) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		tl.cancels.Add(1)
	case errors.As(err, &oe):
		tl.openErrs.Add(1)
		if errors.Is(err, errFull) {
			t.Errorf("a refusal failed a waiter: %v", err)
		}
	default:
		t.Errorf("unexpected error %v", err)
	}
	return false
}

// a3Chaos makes s answer at random: refusals, plain failures, successes,
// in proportions that change with mode (read at each open).
func a3Chaos(s *a3Server, seed uint64, mode *atomic.Int32) {
	r := rand.New(rand.NewPCG(seed, 3))
	s.decide = func(int) error { // under s.mu
		switch mode.Load() {
		case 0: // healthy
			return nil
		case 1: // mostly full
			switch x := r.IntN(100); {
			case x < 60:
				return errFull
			case x < 70:
				return errOpen
			}
		case 2: // full
			return errFull
		}
		return nil
	}
}

// a3Storm runs workers doing random Acquire / With / TryAcquire, with and
// without deadlines, holding for a while and sometimes discarding, against
// a pool whose server refuses, fails and admits at random, with Check
// and Reset failures and MaxLifetime expiry, and checks the invariants
// every millisecond; then the server recovers, and the pool must grow
// back to MaxSize under load; then everything must add up.
func a3Storm(t *testing.T, seed uint64, order WaitOrder) {
	synctest.Test(t, func(t *testing.T) {
		const maxSize, workers = 6, 16
		var mode atomic.Int32
		mode.Store(1)
		s := &a3Server{room: 4}
		a3Chaos(s, seed, &mode)
		cr := rand.New(rand.NewPCG(seed, 7))
		var crMu sync.Mutex
		chance := func(pm int) bool { crMu.Lock(); defer crMu.Unlock(); return cr.IntN(1000) < pm }
		var failVet atomic.Bool
		failVet.Store(true)
		p := a3Pool(t, s, Config[*fakeConn]{
			MaxSize: maxSize, MinIdle: 2, AcquireTimeout: 150 * time.Millisecond,
			MaxLifetime: 40 * time.Millisecond, MaxLifetimeJitter: 10 * time.Millisecond,
			CheckAfter: time.Nanosecond, WaitOrder: order,
			Check: func(ctx context.Context, c *fakeConn) error {
				if failVet.Load() && chance(100) {
					return errors.New("check: broken")
				}
				return nil
			},
			Reset: func(ctx context.Context, c *fakeConn) error {
				if failVet.Load() && chance(300) {
					return errors.New("reset: broken")
				}
				return nil
			},
		})
		stopWatch := a3Watch(t, p)
		defer stopWatch()
		var tally a3Tally
		var ids atomic.Int64
		use := func(c *fakeConn, hold time.Duration) {
			id := ids.Add(1)
			c.use(t, id)
			time.Sleep(hold)
			c.done(id)
		}
		step := func(r *rand.Rand) {
			ctx := bg()
			if r.IntN(2) == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(1+r.IntN(300))*time.Millisecond)
				defer cancel()
			}
			hold := time.Duration(r.IntN(12)) * time.Millisecond
			switch op := r.IntN(10); {
			case op < 5:
				l, err := p.Acquire(ctx)
				if !tally.classify(t, err) {
					return
				}
				use(l.Value(), hold)
				if r.IntN(6) == 0 {
					l.Discard()
				} else {
					l.Release()
				}
			case op < 8:
				called := false
				err := p.With(ctx, func(ctx context.Context, c *fakeConn) error {
					called = true
					use(c, hold)
					if r.IntN(8) == 0 {
						return ErrBadConn
					}
					return nil
				})
				if called {
					tally.served.Add(1)
				} else {
					tally.classify(t, err)
				}
			default:
				l, err := p.TryAcquire(ctx)
				if tally.classify(t, err) {
					use(l.Value(), hold)
					l.Release()
				}
			}
		}
		run := func(d time.Duration, n int, salt uint64) {
			end := time.Now().Add(d)
			var wg sync.WaitGroup
			for w := range n {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(seed+salt, uint64(w)))
					time.Sleep(time.Duration(r.IntN(1000)) * time.Microsecond)
					for time.Now().Before(end) {
						step(r)
						time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
					}
				})
			}
			wg.Wait()
		}
		// Phase 1: chaos, with the server's room changing.
		go func() {
			for i := range 8 {
				time.Sleep(150 * time.Millisecond)
				s.setRoom([]int{0, 2, 6, 1, 3, 0, 5, 2}[i])
				mode.Store(int32([]int{1, 2, 1, 1, 2, 1, 1, 1}[i]))
			}
		}()
		run(1300*time.Millisecond, workers, 1)
		// Phase 2: refuse everything for a while, under load.
		mode.Store(2)
		run(400*time.Millisecond, workers, 2)
		// Phase 3: the server recovers; under load of 2×MaxSize holders
		// the pool must grow back to MaxSize.
		mode.Store(0)
		s.setRoom(-1)
		failVet.Store(false)
		t0 := time.Now()
		var full atomic.Int64 // when InUse first reached MaxSize, from t0
		full.Store(-1)
		var wg sync.WaitGroup
		end := t0.Add(1500 * time.Millisecond)
		for range 2 * maxSize {
			wg.Go(func() {
				for time.Now().Before(end) {
					l, err := p.Acquire(bg())
					if !tally.classify(t, err) {
						continue
					}
					if st := p.Stats(); st.InUse == maxSize {
						full.CompareAndSwap(-1, int64(time.Since(t0)))
					}
					use(l.Value(), 20*time.Millisecond)
					l.Release()
				}
			})
		}
		wg.Wait()
		if f := full.Load(); f < 0 || time.Duration(f) > time.Second {
			t.Errorf("after the server recovered, InUse reached MaxSize %d at %v (-1: never); stats %+v", maxSize, time.Duration(f), p.Stats())
		}
		// Settle: opens, probes and closes end.
		stopWatch() // before settling: its sleeps must not let the keeper run between the snapshots below
		time.Sleep(2 * refusedMaxBackoff)
		synctest.Wait()
		st := p.Stats()
		live, conns, opens, refusals, plain := s.snapshot()
		if st.EffectiveSize != maxSize || st.InUse != 0 || st.Opening != 0 || st.Closing != 0 || st.Waiting != 0 || st.Open != st.Idle || st.Open != conns || live != conns {
			t.Errorf("not everything came back: %+v (factory: %d live, %d conns)", st, live, conns)
		}
		checks := []struct {
			name       string
			pool, seen int64
		}{
			{"Acquires", st.Acquires, tally.served.Load()},
			{"Timeouts", st.Timeouts, tally.timeouts.Load()},
			{"Cancels", st.Cancels, tally.cancels.Load()},
			{"Sheds", st.Sheds, tally.sheds.Load()},
			{"Opens", st.Opens, int64(opens)},
			{"RefusedOpens", st.RefusedOpens, int64(refusals)},
			{"OpenErrors", st.OpenErrors, int64(refusals + plain)},
			{"histogram", st.WaitHistogram.Count, st.Acquires},
		}
		for _, c := range checks {
			if c.pool != c.seen {
				t.Errorf("%s: pool %d, seen %d", c.name, c.pool, c.seen)
			}
		}
		if tally.openErrs.Load() > int64(plain) {
			t.Errorf("callers saw %d open errors; only %d plain failures", tally.openErrs.Load(), plain)
		}
		if refusals == 0 || plain == 0 || st.ClosedReset == 0 || st.ClosedLifetime == 0 || tally.timeouts.Load() == 0 {
			t.Errorf("the storm did not produce what it claims: %+v, refusals %d, plain %d, tally timeouts %d", st, refusals, plain, tally.timeouts.Load())
		}
		t.Logf("%+v refusals %d plain %d; tally served %d timeouts %d cancels %d sheds %d openErrs %d exhausted %d",
			st, refusals, plain, tally.served.Load(), tally.timeouts.Load(), tally.cancels.Load(), tally.sheds.Load(), tally.openErrs.Load(), tally.exhausted.Load())
		// Close mid-probe: a waiter, the server full, Close at once.
		mode.Store(2)
		s.setRoom(0)
		for _, l := range func() (ls []*Lease[*fakeConn]) {
			for range maxSize {
				if l, err := p.TryAcquire(bg()); err == nil {
					ls = append(ls, l)
				}
			}
			return
		}() {
			l.Discard()
		}
		synctest.Wait()
		done := make(chan error)
		go func() { _, err := p.Acquire(bg()); done <- err }()
		time.Sleep(3 * time.Millisecond)
		t1 := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d := time.Since(t1); d != 0 {
			t.Errorf("Close took %v", d)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter at Close: %v", err)
		}
		if live, _, _, _, _ := s.snapshot(); live != 0 {
			t.Errorf("%d live after Close", live)
		}
	})
}

func TestAttack3_RefusalStorm(t *testing.T) {
	for i, order := range []WaitOrder{FIFO, FIFO, LIFO, Adaptive} {
		t.Run(fmt.Sprintf("%v-%d", order, i), func(t *testing.T) { a3Storm(t, uint64(1000+i), order) })
	}
}
