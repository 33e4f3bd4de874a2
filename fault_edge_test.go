package fairpool

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Edge cases of the Pool's contract under faults, found by attacking it
// through the public API. Each test names the behaviour it holds; its
// comment says how the pool once broke it.

var errBrokenPipe = errors.New("ping: broken pipe")

// TestFarFutureContextDeadlineKeepsAcquireTimeout: a context
// whose deadline lies more than ~292 years past the pool's start (a
// deadline of year 3000, or context.WithTimeout(ctx, math.MaxInt64)) must
// not lift AcquireTimeout: the wait is bounded by min(AcquireTimeout, ctx).
//
// enqueueLocked compares mono(d.Sub(p.base))+1 with the waiter's deadline;
// d.Sub saturates at math.MaxInt64 and +1 wraps to math.MinInt64, which is
// "earlier" than any AcquireTimeout deadline, so the waiter gets no
// deadline and waits for a context that ends in centuries.
func TestFarFutureContextDeadlineKeepsAcquireTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"deadline year 3000", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(bg(), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"timeout MaxInt64", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(bg(), math.MaxInt64)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: 100 * time.Millisecond})
				held, err := p.Acquire(bg())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := tc.ctx()
				defer cancel()
				done := make(chan error, 1)
				go func() {
					l, err := p.Acquire(ctx)
					if err == nil {
						l.Release()
					}
					done <- err
				}()
				time.Sleep(time.Second) // ten times AcquireTimeout
				select {
				case err := <-done:
					if !errors.Is(err, ErrTimeout) {
						t.Errorf("Acquire = %v, want ErrTimeout", err)
					}
					held.Release()
				default:
					t.Errorf("Acquire with a far-future context deadline still waiting after 1s, AcquireTimeout 100ms (stats %+v)", p.Stats())
					held.Release()
					<-done // bounded: the release serves it
				}
			})
		})
	}
}

// TestAbandonedHandOffKeepsConnectionUnvetted: a connection whose Check failed
// after its caller gave up goes back "to be checked again at its next
// hand-out" (Config.Check). If it is handed to a waiter whose context ends
// at that instant, abandon puts it back with idleSince = now, as if it had
// just been vetted: the next caller gets it without any Check.
//
// abandon (waitq.go) calls putLocked(c, now); it should keep c.idleSince.
func TestAbandonedHandOffKeepsConnectionUnvetted(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // make the hand-off race likely
	hits := 0
	for run := 0; run < 100 && hits == 0; run++ {
		synctest.Test(t, func(t *testing.T) {
			var checks atomic.Int64
			unblock := make(chan struct{})
			var cancelW context.CancelFunc
			p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond, AcquireTimeout: -1,
				Check: func(ctx context.Context, _ *fakeConn) error {
					if checks.Add(1) == 1 {
						<-unblock
						cancelW() // the waiter gives up just as the connection comes back
					}
					return errBrokenPipe // the connection is broken for good
				}})
			l, err := p.Acquire(bg())
			if err != nil {
				t.Fatal(err)
			}
			bad := l.Value()
			l.Release()
			time.Sleep(time.Second)

			// First caller takes bad, its check blocks, it gives up.
			ctx0, cancel0 := context.WithTimeout(bg(), 10*time.Millisecond)
			defer cancel0()
			if _, err := p.Acquire(ctx0); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("first caller: %v", err)
			}
			// A waiter queues for it.
			ctxW, cancel := context.WithCancel(bg())
			cancelW = cancel
			var wg sync.WaitGroup
			wg.Go(func() {
				if l, err := p.Acquire(ctxW); err == nil {
					l.Release()
					t.Errorf("waiter got a connection after its context ended")
				}
			})
			synctest.Wait()
			close(unblock) // the check fails late; the waiter's context ends with it
			wg.Wait()
			synctest.Wait()

			l, err = p.Acquire(bg())
			if err != nil {
				t.Fatal(err)
			}
			if l.Value() == bad && checks.Load() == 1 {
				hits++
				t.Errorf("the connection that failed its check late was handed out again without a Check (stats %+v)", p.Stats())
			}
			l.Release()
		})
	}
}

// TestCloseEndsAcquireInCheck: Close fails "every waiter"
// with ErrClosed at once (ErrClosed: "and to every goroutine that was
// waiting when Close was called"); a caller whose wait is a Check (Check
// time counts as waiting) is not failed. It waits out AcquireTimeout, or,
// if the Check passes after Close, it receives a connection of the closed
// pool with a nil error.
//
// Pool.check (vet.go) selects only on done and cctx.Done(); nothing ties
// it to p.stop, and get returns a vetted connection without looking at
// p.closed.
func TestCloseEndsAcquireInCheck(t *testing.T) {
	for _, passes := range []bool{false, true} {
		t.Run(map[bool]string{false: "check heeds ctx", true: "check passes after Close"}[passes], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				unblock := make(chan struct{})
				p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond, AcquireTimeout: time.Second,
					Check: func(ctx context.Context, _ *fakeConn) error {
						if passes {
							<-unblock
							return nil
						}
						<-ctx.Done()
						return ctx.Err()
					}})
				l, err := p.Acquire(bg())
				if err != nil {
					t.Fatal(err)
				}
				l.Release()
				time.Sleep(time.Second)
				type result struct {
					err error
					at  time.Duration
				}
				res := make(chan result, 1)
				start := time.Now()
				go func() {
					l, err := p.Acquire(bg())
					if err == nil {
						l.Release()
					}
					res <- result{err, time.Since(start)}
				}()
				synctest.Wait() // the Acquire is in its Check
				ctx, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
				defer cancel()
				p.Close(ctx)
				close(unblock)
				r := <-res
				if !errors.Is(r.err, ErrClosed) || r.at > 10*time.Millisecond {
					t.Errorf("Acquire in a Check when Close was called: %v after %v, want ErrClosed at once", r.err, r.at)
				}
			})
		})
	}
}

// TestReclaimClosesOffTheCleanupGoroutine: Close callbacks run
// "on a goroutine of the pool ... so a slow Close delays no caller". A
// reclaimed lease's Close runs on the runtime's cleanup goroutine (reclaim
// calls p.destroy directly), of which there is max(GOMAXPROCS/4, 1): one
// slow Close stalls every runtime.AddCleanup in the program, here the
// reclaim of another pool's dropped lease, whose slot is then lost to its
// waiters for as long as the first Close blocks.
//
// reclaim (track.go) should end with go p.destroy(c), as refuse does.
func TestReclaimClosesOffTheCleanupGoroutine(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	fa := newFactory(t, 1)
	closeA, closeStack := recordingClose(block, fa.Close)
	pa := newTestPoolWith(t, fa, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, Close: closeA})
	pb, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true})

	func() { l, _ := pa.Acquire(bg()); _ = l }() // dropped
	waitFor(t, "pool A's reclaim to reach Close", func() bool {
		runtime.GC()
		return closeStack() != ""
	})
	if s := closeStack(); onCleanupGoroutine(s) {
		t.Logf("Close of a reclaimed lease runs on the runtime's cleanup goroutine:\n%s", s)
	}

	func() { l, _ := pb.Acquire(bg()); _ = l }() // dropped too
	deadline := time.Now().Add(2 * time.Second)
	for pb.Stats().Reclaims == 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if s := pb.Stats(); s.Reclaims == 0 {
		t.Errorf("pool B's dropped lease not reclaimed within 2s while pool A's Close blocks: the runtime's cleanup goroutine runs A's Close (B stats %+v)", s)
	}
}

// TestLateGenuineCheckFailureClosesConnection: "a check outlived by
// its caller returns the connection to the pool (or closes it on genuine
// failure/panic)" and callback.go: "a Check that outlives the caller
// decides the connection's fate when it returns". A Check that returns a
// real failure (not its context's error) after the caller left does not
// close the connection: settleCheck treats every late error like a
// context error and puts the broken connection back idle.
func TestLateGenuineCheckFailureClosesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unblock := make(chan struct{})
		var checks atomic.Int64
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond, AcquireTimeout: 10 * time.Millisecond,
			Check: func(ctx context.Context, _ *fakeConn) error {
				if checks.Add(1) == 1 {
					<-unblock // ignores ctx: a ping that takes its time
				}
				return errBrokenPipe
			}})
		l, _ := p.Acquire(bg())
		l.Release()
		time.Sleep(time.Second)
		if _, err := p.Acquire(bg()); !errors.Is(err, ErrTimeout) {
			t.Fatalf("Acquire = %v, want ErrTimeout", err)
		}
		close(unblock)
		synctest.Wait()
		if s := p.Stats(); s.ClosedCheck != 1 || s.Idle != 0 {
			t.Errorf("after a late genuine check failure: ClosedCheck %d, Idle %d; want the broken connection closed (stats %+v, closes %d)",
				s.ClosedCheck, s.Idle, s, f.counts().closes)
		}
	})
}

// TestGoexitInCallbacksLosesNoSlot: a callback that ends its goroutine with
// runtime.Goexit (t.FailNow in a test double, a library calling Goexit) is
// neither a return nor a panic: callOpen's recover sees nil, p.open never
// reaches p.opened, and the slot stays counted as opening forever. The
// pool of one never serves again and Close never drains.
func TestGoexitInCallbacksLosesNoSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var first atomic.Bool
		first.Store(true)
		p, err := New(Config[*fakeConn]{MaxSize: 1, AcquireTimeout: 100 * time.Millisecond,
			Open: func(context.Context) (*fakeConn, error) {
				if first.Swap(false) {
					runtime.Goexit()
				}
				return &fakeConn{}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Acquire(bg())
		t.Logf("first Acquire: %v", err)
		l, err := p.Acquire(bg())
		if err != nil {
			t.Errorf("after an Open that called Goexit, the pool of one no longer serves: %v (stats %+v)", err, p.Stats())
		} else {
			l.Release()
		}
		ctx, cancel := context.WithTimeout(bg(), time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close = %v: the slot is never freed (stats %+v)", err, p.Stats())
		}
	})
}

// TestRetriesAfterFailedChecksKeepArrivalOrder: "waiters served
// strictly in arrival order"; a caller that loses its connection to a
// failed check keeps "its place at the front of the line". Two callers A
// (first) and B (second) both lose their connections to failed checks, A's
// failing first: waitQueue.pushNext puts each retry at the head, so B, the
// later retry, lands in front of A and is served first.
//
// pushNext should insert by arrival (a.since, or the original ticket), not
// unconditionally at the head.
func TestRetriesAfterFailedChecksKeepArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 2)
		var checks atomic.Int64
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 2, CheckAfter: time.Millisecond,
			// Slow closes keep both failed slots taken while both callers
			// queue again.
			Close: func(c *fakeConn) error { time.Sleep(100 * time.Millisecond); return f.Close(c) },
			Check: func(ctx context.Context, _ *fakeConn) error {
				switch checks.Add(1) {
				case 1:
					time.Sleep(5 * time.Millisecond) // A's fails first
					return errBrokenPipe
				case 2:
					time.Sleep(10 * time.Millisecond) // B's fails later
					return errBrokenPipe
				}
				return nil
			}})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		a.Release()
		b.Release()
		time.Sleep(time.Second)

		var mu sync.Mutex
		var served []string
		var wg sync.WaitGroup
		acquire := func(name string) {
			l, err := p.Acquire(bg())
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			served = append(served, name)
			mu.Unlock()
			time.Sleep(time.Second) // hold it, so the other must wait for the next slot
			l.Release()
		}
		wg.Go(func() { acquire("A") })
		time.Sleep(time.Millisecond)
		wg.Go(func() { acquire("B") })
		wg.Wait()
		if len(served) != 2 || served[0] != "A" {
			t.Errorf("served %v; A arrived first and both kept their turn, want [A B]", served)
		}
	})
}

// TestKeeperReservesOneSlotPerOpen: "a waiter never waits while
// a slot is free and no open is under way for it" (refillLocked), and
// maintain's own rule: "a keeper open must not take a slot a waiter could
// use". maintain reserves every MinIdle slot at once (numOpen++, opening++)
// but opens them one after another; callers that queue meanwhile see
// opening >= waiters, start no open of their own, and are served at the
// keeper's serial pace: with three free slots and a 40ms Open, the third
// caller times out at 100ms although parallel opens would serve all three
// at 40ms.
//
// maintain (maintain.go) should reserve one slot per open, right before
// it, or start the opens concurrently.
func TestKeeperReservesOneSlotPerOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 3)
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 3, MinIdle: 3, AcquireTimeout: 100 * time.Millisecond,
			Open: func(ctx context.Context) (*fakeConn, error) {
				time.Sleep(40 * time.Millisecond) // a slow handshake
				return f.Open(ctx)
			}})
		synctest.Wait() // the keeper is warming up
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() {
				l, err := p.Acquire(bg())
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Second)
				l.Release()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("3 callers, 3 free slots, 40ms opens: %v", err)
		}
	})
}

// TestKeeperStopsOpeningAtClose: the same serial loop keeps calling Open
// after Close, each with an already-cancelled context: an Open that does
// not look at its context at once opens (and the pool then closes) one
// new connection per reserved slot, each delaying Close by an Open.
func TestKeeperStopsOpeningAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var closed atomic.Bool
		var afterClose atomic.Int64
		f := newFactory(t, 3)
		p, err := New(Config[*fakeConn]{MaxSize: 3, MinIdle: 3, Close: f.Close,
			Open: func(ctx context.Context) (*fakeConn, error) {
				if closed.Load() {
					afterClose.Add(1)
				}
				time.Sleep(40 * time.Millisecond) // ignores ctx, as a blocking dial does
				return f.Open(ctx)
			}})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // first keeper open under way
		closed.Store(true)
		start := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if n := afterClose.Load(); n != 0 {
			t.Errorf("Open called %d times after Close; Close took %v", n, time.Since(start))
		}
	})
}

// TestTryAcquireCheckIsBoundedLikeAcquire: TryAcquire never waits
// in line, but a connection due for a check is checked first (the doc
// says so), for no longer than Acquire would wait: a Check that blocks
// ends it at AcquireTimeout with a TimeoutError, and the connection is
// kept.
func TestTryAcquireCheckIsBoundedLikeAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond, AcquireTimeout: time.Second,
			Check: func(ctx context.Context, _ *fakeConn) error { <-ctx.Done(); return ctx.Err() }})
		l, _ := p.Acquire(bg())
		l.Release()
		time.Sleep(time.Second)
		start := time.Now()
		l, err := p.TryAcquire(bg())
		if err == nil {
			l.Release()
		}
		if d := time.Since(start); !errors.Is(err, ErrTimeout) || d != time.Second {
			t.Errorf("TryAcquire = %v after %v, want ErrTimeout after AcquireTimeout (1s)", err, d)
		}
		synctest.Wait()
		if s := p.Stats(); s.Idle != 1 || s.ClosedCheck != 0 {
			t.Errorf("stats %+v: want the connection kept", s)
		}
	})
}

// TestTimeoutStormExactBoundsAndFIFO : a
// few thousand waiters queued at one instant, a quarter each ended by a
// context deadline before AcquireTimeout, by a cancel, by AcquireTimeout,
// and by AcquireTimeout before a later context deadline, while the two
// connections cycle among them. Every failed wait ends exactly at
// min(AcquireTimeout, ctx) with Waited equal to it; those served are
// served strictly in arrival order; Timeouts and Cancels equal the
// TimeoutErrors the callers got, and Waits counts each caller once.
func TestTimeoutStormExactBoundsAndFIFO(t *testing.T) {
	n := 4000 // -race allows 8128 live goroutines
	if testing.Short() {
		n = 400
	}
	synctest.Test(t, func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2, AcquireTimeout: timeout})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		before := p.Stats()
		start := time.Now()
		cancelAt30 := make(chan struct{})
		var mu sync.Mutex
		type grant struct {
			i  int
			at time.Duration
		}
		var served []grant
		var timeouts, cancels atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			var ctx context.Context
			var cancel context.CancelFunc
			var want time.Duration
			var wantErr error
			switch i % 4 {
			case 0:
				ctx, cancel = context.WithTimeout(bg(), 50*time.Millisecond)
				want, wantErr = 50*time.Millisecond, context.DeadlineExceeded
			case 1:
				ctx, cancel = context.WithCancel(bg())
				go func() { <-cancelAt30; cancel() }()
				want, wantErr = 30*time.Millisecond, context.Canceled
			case 2:
				ctx, cancel = context.WithCancel(bg())
				want, wantErr = timeout, ErrTimeout
			case 3:
				ctx, cancel = context.WithTimeout(bg(), 200*time.Millisecond)
				want, wantErr = timeout, ErrTimeout
			}
			wg.Go(func() {
				defer cancel()
				l, err := p.Acquire(ctx)
				if err == nil {
					mu.Lock()
					served = append(served, grant{i, time.Since(start)})
					mu.Unlock()
					time.Sleep(time.Millisecond)
					l.Release()
					return
				}
				var te *TimeoutError
				if !errors.As(err, &te) {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				if errors.Is(err, ErrTimeout) {
					timeouts.Add(1)
				} else {
					cancels.Add(1)
				}
				if !errors.Is(err, wantErr) || time.Since(start) != want || te.Waited != want {
					t.Errorf("waiter %d: %v after %v (Waited %v), want %v after %v", i, err, time.Since(start), te.Waited, wantErr, want)
				}
			})
			synctest.Wait() // queued, in this order
		}
		time.Sleep(20 * time.Millisecond)
		a.Release()
		b.Release()
		time.Sleep(10 * time.Millisecond)
		close(cancelAt30)
		wg.Wait()
		// Grants at one instant may return in any order; across instants
		// they must follow arrival.
		for _, x := range served {
			for _, y := range served {
				if x.i < y.i && x.at > y.at {
					t.Fatalf("served out of arrival order: waiter %d at %v, later waiter %d at %v", x.i, x.at, y.i, y.at)
				}
			}
		}
		s := p.Stats()
		// A waiter whose context ends at the instant its turn comes is shed
		// (ErrOverload, which is also DeadlineExceeded): a cancel here.
		if s.Timeouts-before.Timeouts != timeouts.Load() || s.Cancels+s.Sheds-before.Cancels-before.Sheds != cancels.Load() || s.Waits-before.Waits != int64(n) || s.Waiting != 0 {
			t.Errorf("stats %+v; callers saw %d timeouts, %d cancels, %d served of %d", s, timeouts.Load(), cancels.Load(), len(served), n)
		}
		if len(served) == 0 || timeouts.Load() == 0 || cancels.Load() == 0 {
			t.Errorf("storm did not exercise every path: %d served, %d timeouts, %d cancels", len(served), timeouts.Load(), cancels.Load())
		}
		t.Logf("%d waiters: %d served, %d timeouts, %d cancels", n, len(served), timeouts.Load(), cancels.Load())
	})
}

// TestCloseStormMidRun : workers hammer a
// tracked pool whose Open, Check, Reset and Close fail, panic or block
// (Checks that outlive their callers included) under forced GC, and
// mid-run four goroutines call Close at once, with an ended context, a
// 1ms one and two unbounded ones. Holds: no connection held twice, MaxSize
// (the factory's oracle), no Close callback on a caller's goroutine, every
// failed wait within min(AcquireTimeout, ctx) plus scheduling slack and
// Waited likewise, Timeouts + Cancels equal to the TimeoutErrors seen, the
// bounded Closes bounded, the unbounded ones nil, and afterwards every
// close counted once and nothing left open.
func TestCloseStormMidRun(t *testing.T) {
	const workers, maxSize = 12, 4
	const acquireTimeout = 15 * time.Millisecond
	const slack = 500 * time.Millisecond // timers on a loaded 2-core machine under -race
	f := newFactory(t, maxSize)
	var rnd atomic.Uint64
	chance := func(perMille uint64) bool {
		x := rnd.Add(0x9E3779B97F4A7C15)
		x ^= x >> 31
		x *= 0xBF58476D1CE4E5B9
		x ^= x >> 29
		return x%1000 < perMille
	}
	var closeOnCaller atomic.Value
	p := newTestPoolWith(t, f, Config[*fakeConn]{
		MaxSize: maxSize, AcquireTimeout: acquireTimeout, CheckAfter: time.Nanosecond, TrackLeases: true,
		Open: func(ctx context.Context) (*fakeConn, error) {
			if chance(20) {
				panic("open: boom")
			}
			if chance(20) {
				return nil, errOpen
			}
			return f.Open(ctx)
		},
		Check: func(ctx context.Context, c *fakeConn) error {
			switch {
			case chance(20):
				panic("check: boom")
			case chance(50):
				return errBrokenPipe
			case chance(30):
				time.Sleep(2 * acquireTimeout) // outlives the caller
			case chance(30):
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		},
		Reset: func(ctx context.Context, c *fakeConn) error {
			switch {
			case chance(20):
				panic("reset: boom")
			case chance(30):
				return errors.New("reset: failed")
			}
			return nil
		},
		Close: func(c *fakeConn) error {
			buf := make([]byte, 16<<10)
			if s := string(buf[:runtime.Stack(buf, false)]); onCallersPath(s) {
				closeOnCaller.Store(s)
			}
			err := f.Close(c)
			if chance(30) {
				panic("close: boom")
			}
			if chance(50) {
				time.Sleep(time.Millisecond)
			}
			return err
		},
	})

	defer forceGC()()

	var timeoutErrs, closedSeen atomic.Int64
	// sc tells an acquire whose context had ended before it began: the
	// pool counts those nowhere.
	check := func(err error, start time.Time, bound time.Duration, sc *stormCtx) {
		var te *TimeoutError
		if !errors.As(err, &te) {
			return
		}
		if !sc.endedOn.Load() {
			timeoutErrs.Add(1)
		}
		if d := time.Since(start); d > bound+slack || te.Waited > bound+slack {
			t.Errorf("wait of %v (Waited %v) past its bound %v: %v", d, te.Waited, bound, err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := int64(w)<<32 | int64(i) + 1
				bound := acquireTimeout
				ctx, cancel := context.WithCancel(bg())
				switch i % 3 {
				case 0:
					bound = 5 * time.Millisecond
					ctx, cancel = context.WithTimeout(bg(), bound)
				case 1:
					time.AfterFunc(3*time.Millisecond, cancel)
				}
				sc := &stormCtx{Context: ctx}
				ctx = sc
				start := time.Now()
				var err error
				switch i % 4 {
				case 0, 1:
					var l *Lease[*fakeConn]
					if l, err = p.Acquire(ctx); err == nil {
						l.Value().use(t, id)
						l.Value().done(id)
						if chance(100) {
							l.Discard()
						} else {
							l.Release()
						}
					}
				case 2:
					err = p.With(ctx, func(ctx context.Context, c *fakeConn) error {
						c.use(t, id)
						defer c.done(id)
						if chance(100) {
							return ErrBadConn
						}
						return nil
					})
					if errors.Is(err, ErrBadConn) {
						err = nil
					}
				case 3:
					var l *Lease[*fakeConn]
					if l, err = p.TryAcquire(ctx); err == nil {
						l.Release()
					}
				}
				cancel()
				check(err, start, bound, sc)
				if errors.Is(err, ErrClosed) && closedSeen.Add(1) > workers*5 {
					return
				}
			}
		})
	}

	time.Sleep(400 * time.Millisecond)
	ended, cancelEnded := context.WithCancel(bg())
	cancelEnded()
	short, cancelShort := context.WithTimeout(bg(), time.Millisecond)
	defer cancelShort()
	var closers sync.WaitGroup
	for k, ctx := range []context.Context{ended, short, bg(), bg()} {
		closers.Go(func() {
			start := time.Now()
			err := p.Close(ctx)
			switch {
			case ctx.Done() == nil && err != nil:
				t.Errorf("Close(Background) = %v", err)
			case ctx.Done() != nil && err != nil && !errors.Is(err, ctx.Err()):
				t.Errorf("Close #%d = %v, want nil or its context's error", k, err)
			case ctx == short && time.Since(start) > time.Millisecond+slack:
				t.Errorf("Close with a 1ms context took %v", time.Since(start))
			}
		})
	}
	closers.Wait()
	wg.Wait()

	if s, ok := closeOnCaller.Load().(string); ok {
		t.Errorf("a Close callback ran on a caller's goroutine:\n%s", s)
	}
	s := p.Stats()
	fc := f.counts()
	closes := s.ClosedLifetime + s.ClosedIdleTime + s.ClosedCheck + s.ClosedReset + s.ClosedDiscard + s.ClosedOverIdle + s.ClosedByClose + s.ClosedEvicted + s.ClosedReclaim
	if s.Open != 0 || fc.live != 0 || closes != int64(fc.closes) || s.Reclaims != 0 {
		t.Errorf("after Close: stats %+v, factory %+v", s, fc)
	}
	if s.Timeouts+s.Cancels+s.Sheds != timeoutErrs.Load() {
		t.Errorf("Timeouts %d + Cancels %d + Sheds %d != %d TimeoutErrors seen", s.Timeouts, s.Cancels, s.Sheds, timeoutErrs.Load())
	}
	t.Logf("stats %+v, factory %+v", s, fc)
}
