package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// a2Caller is one caller of a timed storm: when it arrives, what its
// context is, and what became of it.
type a2Caller struct {
	n        int
	arrive   time.Duration
	deadline time.Duration // of its context, from arrival; 0: none
	cancelAt time.Duration // cancels its context then, from arrival; 0: never
	hold     time.Duration

	served    bool
	doneAt    time.Duration // when Acquire returned, from the bubble's start
	err       error
	heldOnEnd bool
}

// a2Tally is what the callers of a storm saw, to hold Stats against.
type a2Tally struct {
	served, timeouts, cancels, sheds, other atomic.Int64
}

func (tl *a2Tally) classify(t *testing.T, c *a2Caller) {
	var te *TimeoutError
	switch err := c.err; {
	case err == nil:
		tl.served.Add(1)
	case errors.Is(err, ErrOverload):
		tl.sheds.Add(1)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &te) {
			t.Errorf("caller %d: shed %v is not a *TimeoutError that is a DeadlineExceeded", c.n, err)
		}
		if c.deadline == 0 {
			t.Errorf("caller %d without a deadline was shed: %v", c.n, err)
		}
	case errors.Is(err, ErrTimeout):
		tl.timeouts.Add(1)
	case errors.As(err, &te) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		tl.cancels.Add(1)
	default:
		tl.other.Add(1)
		t.Errorf("caller %d: unexpected error %v", c.n, err)
	}
}

// a2Callers draws n callers arriving over span, at distinct instants
// (one microsecond apart at least), so that their order in line is their
// order of arrival; deadlines, cancels and holds at random.
func a2Callers(r *rand.Rand, n int, span time.Duration, deadlinePct, cancelPct int) []*a2Caller {
	cs := make([]*a2Caller, n)
	used := map[time.Duration]bool{}
	for i := range cs {
		var at time.Duration
		for {
			at = time.Duration(r.Int64N(int64(span/time.Microsecond))) * time.Microsecond
			if !used[at] {
				used[at] = true
				break
			}
		}
		c := &a2Caller{arrive: at, hold: time.Duration(1+r.IntN(4000)) * time.Microsecond}
		if r.IntN(100) < deadlinePct {
			c.deadline = time.Duration(1+r.IntN(40_000)) * time.Microsecond
		}
		if r.IntN(100) < cancelPct {
			c.cancelAt = time.Duration(1+r.IntN(20_000)) * time.Microsecond
		}
		cs[i] = c
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].arrive < cs[j].arrive })
	for i, c := range cs {
		c.n = i
	}
	return cs
}

// runA2Callers runs cs against acquire in the current bubble, each caller
// checking the connection is held by no one else, and returns once all
// are done.
func runA2Callers(t *testing.T, cs []*a2Caller, acquire func(context.Context) (*fakeConn, func(), error), check func()) {
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			time.Sleep(c.arrive)
			ctx, cancel := context.WithCancel(bg())
			if c.deadline > 0 {
				ctx, cancel = context.WithTimeout(bg(), c.deadline)
			}
			defer cancel()
			if c.cancelAt > 0 {
				stop := context.AfterFunc(ctx, func() {})
				defer stop()
				tm := time.AfterFunc(c.cancelAt, cancel)
				defer tm.Stop()
			}
			began := time.Now()
			fc, release, err := acquire(ctx)
			c.doneAt = time.Since(start)
			c.err = err
			waited := time.Since(began)
			if err == nil {
				c.served = true
				id := int64(c.n + 1)
				fc.use(t, id)
				if c.deadline > 0 && waited > c.deadline {
					t.Errorf("caller %d served after %v, past its deadline %v", c.n, waited, c.deadline)
				}
				time.Sleep(c.hold)
				fc.done(id)
				release()
			}
			if check != nil {
				check()
			}
		})
	}
	wg.Wait()
}

// checkA2FIFO: among callers without a deadline (and never cancelled),
// a later arrival is never served while an earlier one still waits.
func checkA2FIFO(t *testing.T, cs []*a2Caller) {
	t.Helper()
	var plain []*a2Caller
	for _, c := range cs {
		if c.deadline == 0 && c.cancelAt == 0 {
			plain = append(plain, c)
		}
	}
	bad := 0
	for j, cj := range plain {
		if !cj.served {
			continue
		}
		for _, ci := range plain[:j] {
			if ci.doneAt > cj.doneAt && bad < 5 {
				bad++
				t.Errorf("FIFO: caller %d (arrived %v) served at %v while caller %d (arrived %v) still waited until %v (served %v, %v)",
					cj.n, cj.arrive, cj.doneAt, ci.n, ci.arrive, ci.doneAt, ci.served, ci.err)
			}
		}
	}
}

// checkA2Bounds: no wait outlasted AcquireTimeout or the context's
// deadline (or cancel).
func checkA2Bounds(t *testing.T, cs []*a2Caller, acquireTimeout time.Duration) {
	t.Helper()
	for _, c := range cs {
		limit := acquireTimeout
		if c.deadline > 0 {
			limit = min(limit, c.deadline)
		}
		if c.cancelAt > 0 {
			limit = min(limit, c.cancelAt)
		}
		if w := c.doneAt - c.arrive; w > limit {
			t.Errorf("caller %d waited %v, past its bound %v (err %v)", c.n, w, limit, c.err)
		}
	}
}

// checkA2Stats holds Stats against the callers' tally.
func checkA2Stats(t *testing.T, s Stats, tl *a2Tally, n int) {
	t.Helper()
	seen := map[string][2]int64{
		"Acquires": {s.Acquires, tl.served.Load()},
		"Timeouts": {s.Timeouts, tl.timeouts.Load()},
		"Cancels":  {s.Cancels, tl.cancels.Load()},
		"Sheds":    {s.Sheds, tl.sheds.Load()},
	}
	for name, c := range seen {
		if c[0] != c[1] {
			t.Errorf("%s: pool %d, callers saw %d (stats %+v)", name, c[0], c[1], s)
		}
	}
	if s.Waits > int64(n) {
		t.Errorf("Waits %d > %d callers", s.Waits, n)
	}
	if s.InUse != 0 || s.Waiting != 0 {
		t.Errorf("not everything came back: %+v", s)
	}
}

// TestAttack2_PoolDeadlineMixStorm: callers with and without deadlines,
// some cancelled, arriving at random over 200ms of fake time to a pool of
// 3 that serves them slower than they come. Per seed and per mode (FIFO,
// IgnoreDeadlines): no conn held twice, invariants on every step, no wait
// past its bound, callers without deadlines served exactly in arrival
// order, only deadline callers shed, and Stats adds up.
func TestAttack2_PoolDeadlineMixStorm(t *testing.T) {
	for _, mode := range []string{"FIFO", "IgnoreDeadlines", "LIFO", "Adaptive"} {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/%d", mode, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					const at = 30 * time.Millisecond
					cfg := Config[*fakeConn]{MaxSize: 3, AcquireTimeout: at}
					switch mode {
					case "IgnoreDeadlines":
						cfg.IgnoreDeadlines = true
					case "LIFO":
						cfg.WaitOrder = LIFO
					case "Adaptive":
						cfg.WaitOrder = Adaptive
					}
					p, _ := newTestPool(t, cfg)
					r := rand.New(rand.NewPCG(seed, 0xa77ac2))
					cs := a2Callers(r, 700, 200*time.Millisecond, 50, 15)
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
						tl.classify(t, c)
						if mode == "IgnoreDeadlines" && errors.Is(c.err, ErrOverload) {
							t.Errorf("caller %d shed with IgnoreDeadlines", c.n)
						}
					}
					if mode == "FIFO" || mode == "IgnoreDeadlines" {
						checkA2FIFO(t, cs)
					}
					checkA2Bounds(t, cs, at)
					synctest.Wait()
					checkA2Stats(t, p.Stats(), &tl, len(cs))
					if seed == 0 {
						t.Logf("served %d timeouts %d cancels %d sheds %d", tl.served.Load(), tl.timeouts.Load(), tl.cancels.Load(), tl.sheds.Load())
					}
				})
			})
		}
	}
}

// TestAttack2_GroupDeadlineMixStorm: the deadline-mix storm against a
// Group of three keys (PerKeyMax 2, GlobalMax 4), each caller on a key
// drawn at random. Per key, callers without deadlines are served in
// arrival order (FIFO and IgnoreDeadlines); only deadline callers are
// shed; no wait outlasts its bound; limits hold on every open (the
// factory) and every step (invariants); Stats adds up.
func TestAttack2_GroupDeadlineMixStorm(t *testing.T) {
	for _, mode := range []string{"FIFO", "IgnoreDeadlines", "LIFO"} {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/%d", mode, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					const at = 30 * time.Millisecond
					cfg := GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 4, AcquireTimeout: at}
					switch mode {
					case "IgnoreDeadlines":
						cfg.IgnoreDeadlines = true
					case "LIFO":
						cfg.WaitOrder = LIFO
					}
					g, _ := newTestGroup(t, cfg)
					r := rand.New(rand.NewPCG(seed, 0x9a0))
					cs := a2Callers(r, 700, 200*time.Millisecond, 50, 15)
					keyOf := make(map[*a2Caller]string, len(cs))
					for _, c := range cs {
						keyOf[c] = fmt.Sprint("k", r.IntN(3))
					}
					byKey := map[string][]*a2Caller{}
					for _, c := range cs {
						byKey[keyOf[c]] = append(byKey[keyOf[c]], c)
					}
					var mu sync.Mutex
					next := 0
					runA2Callers(t, cs, func(ctx context.Context) (*fakeConn, func(), error) {
						// Callers start in arrival order, one at a time (each
						// at its own instant): the n-th to call is cs[n].
						mu.Lock()
						c := cs[next]
						next++
						mu.Unlock()
						l, err := g.Acquire(ctx, keyOf[c])
						if err != nil {
							return nil, nil, err
						}
						return &l.Value().fakeConn, l.Release, nil
					}, func() {
						if err := g.checkInvariants(); err != nil {
							t.Errorf("invariant: %v", err)
						}
					})
					var tl a2Tally
					for _, c := range cs {
						tl.classify(t, c)
					}
					if mode != "LIFO" {
						for _, kcs := range byKey {
							checkA2FIFO(t, kcs)
						}
					}
					checkA2Bounds(t, cs, at)
					synctest.Wait()
					checkA2Stats(t, g.Stats().Total, &tl, len(cs))
					if seed == 0 {
						t.Logf("served %d timeouts %d cancels %d sheds %d", tl.served.Load(), tl.timeouts.Load(), tl.cancels.Load(), tl.sheds.Load())
					}
				})
			})
		}
	}
}
