package fairpool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

// Regression tests for the bounds of a Group: Close within its context,
// limits of math.MaxInt64, and the timeout timer's list.

// TestGroupCloseIsBoundedByItsContext: with five idle connections whose
// Close takes 200ms, Close with a 50ms context returns its error at 50ms;
// the connections go on closing, and a second Close waits for them.
func TestGroupCloseIsBoundedByItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f *keyFactory
		g, f0 := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, Close: func(c *keyConn) error {
			time.Sleep(200 * time.Millisecond)
			return f.Close(c)
		}})
		f = f0
		for i := range 5 {
			idleConn(t, g, fmt.Sprint("k", i), 0)
		}
		wantCloseBoundedThenDone(t, g.Close)
		if c := f.counts(); c.total != 0 || c.closes != 5 {
			t.Errorf("factory: %+v", c)
		}
	})
}

// TestGroupCloseOfADrainedGroupIgnoresTheContext: once drained, Close
// returns nil whatever its context, every time.
func TestGroupCloseOfADrainedGroupIgnoresTheContext(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1})
	idleConn(t, g, "a", 0)
	if err := g.Close(bg()); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := g.Close(cancelled()); err != nil {
			t.Fatalf("Close %d of a drained group with a cancelled context = %v", i, err)
		}
	}
}

// TestGroupHugeLimitsDoNotOverflow: MaxLifetime and AcquireTimeout of
// math.MaxInt64 (and MaxLifetime plus jitter past it) mean never: the
// connection is reused, and a waiter waits.
func TestGroupHugeLimitsDoNotOverflow(t *testing.T) {
	for _, jitter := range []time.Duration{0, math.MaxInt64} {
		t.Run(fmt.Sprint("jitter ", jitter), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, KeyIdleTime: -1,
					MaxLifetime: math.MaxInt64, MaxLifetimeJitter: jitter, AcquireTimeout: math.MaxInt64})
				c1 := idleConn(t, g, "a", time.Hour)
				l, err := g.Acquire(bg(), "a")
				if err != nil || l.Value() != c1 {
					t.Fatalf("Acquire = %v; reused %v, want the first connection", err, err == nil && l.Value() == c1)
				}
				got := make(chan error, 2)
				go func() {
					l, err := g.Acquire(bg(), "a")
					if err == nil {
						l.Release()
					}
					got <- err
				}()
				ctx, cancel := context.WithTimeout(bg(), 2*time.Hour)
				defer cancel()
				go func() {
					l, err := g.Acquire(ctx, "a")
					if err == nil {
						l.Release()
					}
					got <- err
				}()
				time.Sleep(time.Hour)
				synctest.Wait()
				if s := g.Stats().Total; s.Waiting != 2 || s.Timeouts != 0 {
					t.Fatalf("after an hour: %+v", s)
				}
				checkGroupInv(t, g)
				l.Release()
				for range 2 {
					if err := <-got; err != nil {
						t.Error(err)
					}
				}
				if c1.closed.Load() {
					t.Error("the connection was closed for its lifetime")
				}
			})
		})
	}
}

// TestGroupTimerListStaysInDeadlineOrder: the timer's list stays in
// deadline order with requests that begin waiting in every way: in arrival
// order, with a context deadline earlier than AcquireTimeout (ended by the
// context, not in the list), and waiting again after a failed check with
// the deadline they had from the start (an AcquireAll that had waited
// before, and an Acquire whose first Check took 3s). Each ends at its own
// deadline, having waited AcquireTimeout in all.
func TestGroupTimerListStaysInDeadlineOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: 10 * time.Second, CheckAfter: time.Second, KeyIdleTime: -1,
			Check: func(ctx context.Context, c *keyConn) error {
				switch c.key {
				case "b":
					time.Sleep(3 * time.Second)
					return errors.New("ping: broken pipe")
				case "c":
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		idleConn(t, g, "b", 0)
		idleConn(t, g, "c", 2*time.Second)
		holdA, _ := g.Acquire(bg(), "a")
		defer holdA.Release()
		holdD, _ := g.Acquire(bg(), "d")
		defer gate(f)() // no replacement opens while they wait

		t0 := time.Now()
		m0 := g.now()
		type result struct {
			name string
			at   time.Duration
			err  error
		}
		results := make(chan result, 5)
		start := func(name string, ctx context.Context, keys ...string) {
			go func() {
				var err error
				if len(keys) == 1 {
					_, err = g.Acquire(ctx, keys[0])
				} else {
					_, err = g.AcquireAll(ctx, keys...)
				}
				results <- result{name, time.Since(t0), err}
			}()
			synctest.Wait()
			checkGroupInv(t, g)
		}
		start("c+d", bg(), "c", "d") // waits for d: deadline 10s
		time.Sleep(time.Second)
		start("a at 1s", bg(), "a") // 11s
		ctx, cancel := context.WithTimeout(bg(), 3*time.Second)
		defer cancel()
		start("a at 1s, context 3s", ctx, "a") // 4s, by its context
		time.Sleep(time.Second)
		start("b at 2s", bg(), "b") // checks until 5s, then waits again: 12s
		time.Sleep(time.Second)
		start("a at 3s", bg(), "a") // 13s
		time.Sleep(time.Second)
		holdD.Release() // c+d gets d, and c fails its check: it waits again, deadline 10s
		synctest.Wait()
		checkGroupInv(t, g)
		time.Sleep(time.Second)
		synctest.Wait()
		checkGroupInv(t, g)

		g.mu.Lock()
		var order []time.Duration
		for r := g.timed.head; r != nil; r = r.tlink.next {
			order = append(order, time.Duration(r.deadline-m0))
		}
		g.mu.Unlock()
		if fmt.Sprint(order) != "[10s 11s 12s 13s]" {
			t.Errorf("timer's list: %v, want [10s 11s 12s 13s]", order)
		}

		want := map[string]time.Duration{"a at 1s, context 3s": 4 * time.Second, "c+d": 10 * time.Second,
			"a at 1s": 11 * time.Second, "b at 2s": 12 * time.Second, "a at 3s": 13 * time.Second}
		for range want {
			r := <-results
			var te *TimeoutError
			if !errors.As(r.err, &te) || r.at != want[r.name] {
				t.Errorf("%s: %v at %v, want a TimeoutError at %v", r.name, r.err, r.at, want[r.name])
				continue
			}
			if r.name == "a at 1s, context 3s" {
				if !errors.Is(r.err, context.DeadlineExceeded) || te.Waited != 3*time.Second {
					t.Errorf("%s: %v, waited %v", r.name, r.err, te.Waited)
				}
			} else if !errors.Is(r.err, ErrTimeout) || te.Waited != 10*time.Second {
				t.Errorf("%s: %v, waited %v; want a timeout after 10s", r.name, r.err, te.Waited)
			}
			checkGroupInv(t, g)
		}
	})
}
