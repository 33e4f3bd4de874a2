package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// a2Check is a Check that, at random, passes, fails, fails with a
// context's error, blocks past every deadline ignoring its context,
// blocks until its context ends, panics or calls runtime.Goexit.
type a2Check struct {
	d                              dice
	fails, blocks, panics, goexits atomic.Int64
}

func (k *a2Check) check(ctx context.Context, c *fakeConn) error {
	switch {
	case k.d.chance(150):
		k.fails.Add(1)
		return errors.New("check: broken pipe")
	case k.d.chance(60):
		k.blocks.Add(1)
		time.Sleep(80 * time.Millisecond) // past AcquireTimeout, ignoring ctx
		if k.d.chance(500) {
			return errors.New("check: late failure")
		}
		return nil
	case k.d.chance(60):
		k.blocks.Add(1)
		<-ctx.Done()
		return fmt.Errorf("check: %w", ctx.Err())
	case k.d.chance(20):
		k.panics.Add(1)
		panic("check: attack2")
	case k.d.chance(20):
		k.goexits.Add(1)
		runtime.Goexit()
	}
	return nil
}

// TestAttack2_PoolCheckChaosStorm: the deadline-mix storm with a Check
// that fails, blocks (heeding its context or not), panics or Goexits on
// most hand-outs, in every wait order, and for half the seeds Close in
// the middle of it. No conn held twice or closed while held (the
// factory), invariants on every step, MaxSize never exceeded counting
// opens and closes, no wait past its bound, only deadline callers shed,
// and Stats adds up: Acquires equals hand-outs seen, every TimeoutError
// counted once in Timeouts, Cancels or Sheds.
func TestAttack2_PoolCheckChaosStorm(t *testing.T) {
	for _, mode := range []WaitOrder{FIFO, LIFO, Adaptive} {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%v/%d", mode, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					const at = 30 * time.Millisecond
					var k a2Check
					k.d.rnd.Store(seed * 7919)
					p, f := newTestPool(t, Config[*fakeConn]{
						MaxSize: 3, AcquireTimeout: at, WaitOrder: mode,
						Check: k.check, CheckAfter: 5 * time.Microsecond,
					})
					f.failRate.Store(50)
					r := rand.New(rand.NewPCG(seed, 0xc4ec))
					cs := a2Callers(r, 300+int(seed%4)*100, 300*time.Millisecond, 50, 15)
					closeMid := seed%2 == 1
					if closeMid {
						go func() {
							time.Sleep(180 * time.Millisecond)
							ctx, cancel := context.WithTimeout(bg(), time.Second)
							defer cancel()
							if err := p.Close(ctx); err != nil {
								t.Errorf("Close: %v", err)
							}
						}()
					}
					var checkPanics, closed, openErrs atomic.Int64
					runA2Callers(t, cs, func(ctx context.Context) (*fakeConn, func(), error) {
						l, err := p.Acquire(ctx)
						if err != nil {
							return nil, nil, err
						}
						return l.Value(), l.Release, nil
					}, func() {
						if err := p.checkInvariants(); err != nil {
							t.Errorf("invariant: %v", err)
						}
					})
					var tl a2Tally
					for _, c := range cs {
						var pe *PanicError
						var oe *OpenError
						switch {
						case errors.As(c.err, &pe) && pe.Callback == "Check":
							checkPanics.Add(1)
						case errors.Is(c.err, ErrClosed):
							closed.Add(1)
							if !closeMid {
								t.Errorf("caller %d: ErrClosed without Close", c.n)
							}
						case errors.As(c.err, &oe):
							openErrs.Add(1)
						default:
							tl.classify(t, c)
						}
					}
					checkA2Bounds(t, cs, at)
					// Orphaned checks settle on their own; let them.
					time.Sleep(time.Second)
					synctest.Wait()
					s := p.Stats()
					checkA2Stats(t, s, &tl, len(cs))
					if closeMid {
						if s.Open != 0 {
							t.Errorf("closed pool still has %d open: %+v", s.Open, s)
						}
					}
					if seed < 2 {
						t.Logf("served %d timeouts %d cancels %d sheds %d checkPanics %d closed %d openErrs %d; check fails %d blocks %d panics %d goexits %d",
							tl.served.Load(), tl.timeouts.Load(), tl.cancels.Load(), tl.sheds.Load(), checkPanics.Load(), closed.Load(), openErrs.Load(),
							k.fails.Load(), k.blocks.Load(), k.panics.Load(), k.goexits.Load())
					}
				})
			})
		}
	}
}

// TestAttack2_AdaptiveChurnWithFailingChecks: an Adaptive pool under
// bursts of overload (so its line stands, turns LIFO and hands out 5ms
// timeouts from the short list, then drains and turns back), while
// Checks fail (callers go back in line under LIFO with new tickets),
// block or panic, and callers with and without deadlines time out from
// both deadline lists. The line must have stood and drained at least
// once each; invariants on every step; no conn held twice; no wait past
// its bound (the short timeout included); Stats adds up.
func TestAttack2_AdaptiveChurnWithFailingChecks(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const at = 40 * time.Millisecond
				var k a2Check
				k.d.rnd.Store(seed*104729 + 1)
				p, _ := newTestPool(t, Config[*fakeConn]{
					MaxSize: 2, AcquireTimeout: at, WaitOrder: Adaptive,
					Check: k.check, CheckAfter: time.Microsecond,
					// Connections expire at hand-out now and then, and their
					// callers go back in line (under LIFO, with new tickets).
					MaxLifetime: 6 * time.Millisecond, MaxLifetimeJitter: 4 * time.Millisecond,
				})
				r := rand.New(rand.NewPCG(seed, 0xada))
				// Bursts: 300 callers in 150ms, a lull of 150ms, again.
				var cs []*a2Caller
				for b := range 3 {
					burst := a2Callers(r, 300, 150*time.Millisecond, 40, 10)
					for _, c := range burst {
						c.arrive += time.Duration(b) * 300 * time.Millisecond
					}
					cs = append(cs, burst...)
				}
				for i, c := range cs {
					c.n = i
				}
				var stood, drained atomic.Bool
				var shortTimeouts atomic.Int64
				runA2Callers(t, cs, func(ctx context.Context) (*fakeConn, func(), error) {
					l, err := p.Acquire(ctx)
					if err != nil {
						var te *TimeoutError
						if errors.As(err, &te) && errors.Is(err, ErrTimeout) && te.Waited < at {
							shortTimeouts.Add(1)
						}
						return nil, nil, err
					}
					return l.Value(), l.Release, nil
				}, func() {
					if err := p.checkInvariants(); err != nil {
						t.Errorf("invariant: %v", err)
					}
					p.mu.Lock()
					if p.waiters.lifo { // Adaptive serves newest first while the line stands
						stood.Store(true)
					} else if stood.Load() {
						drained.Store(true)
					}
					for w := p.waiters.short.head; w != nil; w = w.slink.next {
						if !w.short || !p.waiters.contains(w) {
							t.Errorf("short list holds a waiter short %v, in line %v", w.short, p.waiters.contains(w))
						}
						if nx := w.slink.next; nx != nil && nx.deadline < w.deadline {
							t.Errorf("short list out of order: %d after %d", nx.deadline, w.deadline)
						}
					}
					p.mu.Unlock()
				})
				var tl a2Tally
				for _, c := range cs {
					var pe *PanicError
					var oe *OpenError
					switch {
					case errors.As(c.err, &pe) && pe.Callback == "Check":
					case errors.As(c.err, &oe):
					default:
						tl.classify(t, c)
					}
				}
				checkA2Bounds(t, cs, at)
				time.Sleep(time.Second)
				synctest.Wait()
				checkA2Stats(t, p.Stats(), &tl, len(cs))
				if !stood.Load() || !drained.Load() || shortTimeouts.Load() == 0 {
					t.Errorf("the line stood %v, drained after %v, %d short timeouts: the test does not test what it claims", stood.Load(), drained.Load(), shortTimeouts.Load())
				}
				if s := p.Stats(); s.ClosedLifetime == 0 {
					t.Errorf("no connection expired: %+v", s)
				}
				if seed == 0 {
					t.Logf("lifetime closes %d; served %d timeouts %d (short %d) cancels %d sheds %d; check fails %d blocks %d panics %d goexits %d",
						p.Stats().ClosedLifetime, tl.served.Load(), tl.timeouts.Load(), shortTimeouts.Load(), tl.cancels.Load(), tl.sheds.Load(),
						k.fails.Load(), k.blocks.Load(), k.panics.Load(), k.goexits.Load())
				}
			})
		})
	}
}
