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
