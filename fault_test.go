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

// Faults: what the pool does when its user's code strays. Each test names
// what it proves; together they hold the contract's "faults do not break
// it" line: a callback that blocks, fails or panics cannot exceed MaxSize,
// lose a slot, stall a wait past its bound or crash the program.

// TestReleasedLeaseIsNeverReclaimedUnderGC: once Release or Discard has won
// the lease, its GC cleanup must not reclaim the connection, even when the
// collector runs between the win and the bookkeeping. Before the fix the
// cleanup closed a connection that release was putting back: double
// closes, more than MaxSize out, a negative Open gauge.
func TestReleasedLeaseIsNeverReclaimedUnderGC(t *testing.T) {
	const workers, maxSize = 4, 4
	perWorker := 20_000
	if testing.Short() {
		perWorker = 2_000
	}
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: maxSize, TrackLeases: true})
	stopGC := forceGC()
	var out atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				l, err := p.Acquire(bg())
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if n := out.Add(1); n > maxSize {
					t.Errorf("%d leases out at once, MaxSize %d", n, maxSize)
				}
				id := int64(w)<<32 | int64(i) + 1
				c := l.Value()
				c.use(t, id)
				c.done(id)
				out.Add(-1)
				if i%7 == 0 {
					l.Discard()
				} else {
					l.Release()
				}
				if err := p.checkInvariants(); err != nil {
					t.Errorf("invariant: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopGC()
	closesDone(t, p)
	if s := p.Stats(); s.Reclaims != 0 || s.ClosedReclaim != 0 || s.Open < 0 {
		t.Errorf("released leases were reclaimed: %+v", s)
	}
}

// TestStaleWithContextIsNotRead: a context that escaped an ended With
// still carries its lease; With on it, racing the connection's next
// holder, must take a fresh lease and read nothing of the old one's
// bookkeeping (the race detector catches a read of it).
func TestStaleWithContextIsNotRead(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, AcquireTimeout: -1})
	var stale context.Context
	p.With(bg(), func(ctx context.Context, _ *fakeConn) error { stale = ctx; return nil })
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2_000 {
			l, err := p.Acquire(bg())
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			l.Release()
		}
	})
	wg.Go(func() {
		for range 2_000 {
			if err := p.With(stale, func(context.Context, *fakeConn) error { return nil }); err != nil {
				t.Errorf("With on a stale context: %v", err)
				return
			}
		}
	})
	wg.Wait()
}

// TestCheckIsBoundedByAcquireTimeout: a Check that blocks, whether it
// ignores its context or heeds it, cannot hold Acquire past
// AcquireTimeout, and the error counts the Check's time as waiting.
func TestCheckIsBoundedByAcquireTimeout(t *testing.T) {
	for _, heeds := range []bool{false, true} {
		t.Run(map[bool]string{false: "ignores ctx", true: "heeds ctx"}[heeds], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				unblock := make(chan struct{})
				p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: 100 * time.Millisecond, CheckAfter: time.Millisecond,
					Check: func(ctx context.Context, _ *fakeConn) error {
						if heeds {
							<-ctx.Done()
							return ctx.Err()
						}
						<-unblock
						return nil
					}})
				l, _ := p.Acquire(bg())
				l.Release()
				time.Sleep(time.Second)
				start := time.Now()
				_, err := p.Acquire(bg())
				var te *TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || time.Since(start) != 100*time.Millisecond {
					t.Fatalf("Acquire with a blocking Check = %v after %v, want ErrTimeout after 100ms", err, time.Since(start))
				}
				if te.Waited != 100*time.Millisecond {
					t.Errorf("Waited = %v, want the whole 100ms", te.Waited)
				}
				close(unblock)
				synctest.Wait()
				// The connection was not at fault: it is back, not closed.
				if s := p.Stats(); s.Idle != 1 || s.ClosedCheck != 0 || s.Timeouts != 1 || s.Acquires != 1 {
					t.Errorf("after the check outlived the caller: %+v", s)
				}
				if c := f.counts(); c.closes != 0 {
					t.Errorf("closes %d, want 0", c.closes)
				}
			})
		})
	}
}

// TestRetryAfterFailedCheckKeepsTheDeadline: a caller whose connection
// failed a slow check waits for another within its first deadline, not a
// new one counted from the end of the check.
func TestRetryAfterFailedCheckKeepsTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Close is slow, so the failed connection's slot stays taken and
		// the caller can only wait.
		f := newFactory(t, 2)
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 2, AcquireTimeout: 100 * time.Millisecond, CheckAfter: time.Millisecond,
			Close: func(c *fakeConn) error { time.Sleep(time.Second); return f.Close(c) },
			Check: func(ctx context.Context, _ *fakeConn) error {
				time.Sleep(60 * time.Millisecond)
				return errors.New("ping: broken pipe")
			}})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		b.Release()
		time.Sleep(time.Second)
		before := p.Stats()
		start := time.Now()
		_, err := p.Acquire(bg()) // takes b's connection, fails its check, waits for a
		var te *TimeoutError
		if !errors.As(err, &te) || time.Since(start) != 100*time.Millisecond || te.Waited != 100*time.Millisecond {
			t.Fatalf("Acquire = %v after %v, want a timeout at the first deadline, 100ms", err, time.Since(start))
		}
		a.Release()
		if s := p.Stats(); s.Waits-before.Waits != 1 || s.Timeouts != 1 || s.ClosedCheck != 1 {
			t.Errorf("stats %+v, want one wait, one timeout, one check failure", s)
		}
	})
}

// TestWaitsCountOnceAfterFailedCheck: a caller that queued, lost its
// connection to a failed check and queued again waited once. The
// connection reaches it unvetted: an earlier caller gave up while its
// check ran, which says nothing about the connection.
func TestWaitsCountOnceAfterFailedCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var checks atomic.Int64
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond,
			Check: func(ctx context.Context, _ *fakeConn) error {
				switch checks.Add(1) {
				case 1:
					<-ctx.Done()
					return ctx.Err()
				case 2:
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		l, _ := p.Acquire(bg())
		l.Release()
		time.Sleep(time.Second)
		before := p.Stats()
		var wg sync.WaitGroup
		wg.Go(func() { // takes the idle connection, gives up during its check
			ctx, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
			defer cancel()
			if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("first caller: %v, want DeadlineExceeded", err)
			}
		})
		synctest.Wait()
		wg.Go(func() { // queues; gets the unvetted connection, which fails; queues again
			l, err := p.Acquire(bg())
			if err != nil {
				t.Errorf("second caller: %v", err)
				return
			}
			l.Release()
		})
		wg.Wait()
		s := p.Stats()
		if waits := s.Waits - before.Waits; waits != 1 || s.ClosedCheck != 1 || s.Cancels != 1 || s.Acquires-before.Acquires != 1 {
			t.Errorf("waits %d, stats %+v: want one wait for one caller's one turn in line", waits, s)
		}
	})
}

// TestAcquireNeverRunsClose: a connection found expired, or failing its
// check, at hand-out is closed off the caller's path: a slow Close delays
// no Acquire.
func TestAcquireNeverRunsClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 2)
		var fail atomic.Bool
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 2, AcquireTimeout: 100 * time.Millisecond,
			MaxLifetime: time.Minute, CheckAfter: time.Millisecond,
			Close: func(c *fakeConn) error { time.Sleep(time.Second); return f.Close(c) },
			Check: func(context.Context, *fakeConn) error {
				if fail.Swap(false) {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		l, _ := p.Acquire(bg())
		l.Release()
		time.Sleep(2 * time.Minute) // expired
		start := time.Now()
		l, err := p.Acquire(bg())
		if err != nil || time.Since(start) != 0 {
			t.Fatalf("Acquire past an expired connection = %v after %v, want a new one at once", err, time.Since(start))
		}
		l.Release()
		time.Sleep(time.Second) // the first close finishes
		fail.Store(true)
		start = time.Now()
		l, err = p.Acquire(bg())
		if err != nil || time.Since(start) != 0 {
			t.Fatalf("Acquire past a failed check = %v after %v, want a new one at once", err, time.Since(start))
		}
		l.Release()
	})
}

// TestCloseIsBoundedByItsContext: Close returns when its context ends,
// however slow the Close callback, and the closes go on; a later Close
// waits for them.
func TestCloseIsBoundedByItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 5)
		p, _ := New(Config[*fakeConn]{MaxSize: 5, Open: f.Open,
			Close: func(c *fakeConn) error { time.Sleep(200 * time.Millisecond); return f.Close(c) }})
		var ls []*Lease[*fakeConn]
		for range 5 {
			l, _ := p.Acquire(bg())
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Release()
		}
		wantCloseBoundedThenDone(t, p.Close)
		if c := f.counts(); c.live != 0 || c.closes != 5 {
			t.Errorf("after Close: %+v", c)
		}
	})
}

// TestCloseOfDrainedPoolIgnoresEndedContext: a pool with nothing left to
// close reports success, whatever state the context is in.
func TestCloseOfDrainedPoolIgnoresEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(bg())
	cancel()
	for range 200 {
		p, _ := New(Config[*fakeConn]{MaxSize: 1, Open: func(context.Context) (*fakeConn, error) { return &fakeConn{}, nil }})
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close of an empty pool with an ended context = %v, want nil", err)
		}
	}
}

// TestHugeLimitsMeanNever: a MaxLifetime (plus jitter) or AcquireTimeout
// near math.MaxInt64 saturates instead of wrapping into the past.
func TestHugeLimitsMeanNever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, cfg := range []Config[*fakeConn]{
			{MaxSize: 1, MaxLifetime: math.MaxInt64, AcquireTimeout: -1},
			{MaxSize: 1, MaxLifetime: math.MaxInt64 / 2, MaxLifetimeJitter: math.MaxInt64 / 2, AcquireTimeout: -1},
			{MaxSize: 1, AcquireTimeout: math.MaxInt64},
		} {
			p, f := newTestPool(t, cfg)
			for range 10 {
				l, err := p.Acquire(bg())
				if err != nil {
					t.Fatalf("%+v: Acquire = %v", cfg, err)
				}
				var wg sync.WaitGroup
				wg.Go(func() { // a waiter, so AcquireTimeout arms the timer
					l, err := p.Acquire(bg())
					if err != nil {
						t.Errorf("waiter: %v", err)
						return
					}
					l.Release()
				})
				synctest.Wait()
				time.Sleep(time.Hour)
				l.Release()
				wg.Wait()
			}
			if c := f.counts(); c.opens != 1 {
				t.Errorf("MaxLifetime %v + %v, AcquireTimeout %v: %d opens, want 1", cfg.MaxLifetime, cfg.MaxLifetimeJitter, cfg.AcquireTimeout, c.opens)
			}
		}
	})
}

// TestEndedContextGetsNothing: a caller whose context has already ended
// gets its error before anything is taken or checked, so it cannot close
// healthy connections by failing their checks.
func TestEndedContextGetsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var checks atomic.Int64
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 5, CheckAfter: time.Millisecond,
			Check: func(ctx context.Context, _ *fakeConn) error { checks.Add(1); return ctx.Err() }})
		var ls []*Lease[*fakeConn]
		for range 5 {
			l, _ := p.Acquire(bg())
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Release()
		}
		time.Sleep(time.Second)
		ctx, cancel := context.WithCancel(bg())
		cancel()
		_, err := p.Acquire(ctx)
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Acquire with an ended context = %v, want its error", err)
		}
		if s := p.Stats(); checks.Load() != 0 || s.Idle != 5 || s.ClosedCheck != 0 || s.Cancels != 0 {
			t.Errorf("checks %d, stats %+v: want no check, all 5 idle", checks.Load(), s)
		}
		if c := f.counts(); c.closes != 0 {
			t.Errorf("%d healthy connections closed", c.closes)
		}
	})
}

// TestCheckFailingForTheCallersContextKeepsTheConnection: a Check that
// fails because the caller's context ended while it ran says nothing
// about the connection, which goes back to be checked again.
func TestCheckFailingForTheCallersContextKeepsTheConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var checks atomic.Int64
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Millisecond,
			Check: func(ctx context.Context, _ *fakeConn) error {
				if checks.Add(1) == 1 {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}})
		l, _ := p.Acquire(bg())
		c := l.Value()
		l.Release()
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
		defer cancel()
		if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
		}
		synctest.Wait()
		l, err := p.Acquire(bg())
		if err != nil || l.Value() != c || checks.Load() != 2 {
			t.Fatalf("next Acquire = %v (same conn %v, checks %d), want the same connection checked again", err, err == nil && l.Value() == c, checks.Load())
		}
		l.Release()
		if s := p.Stats(); s.ClosedCheck != 0 || s.Cancels != 1 || s.Acquires != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestHalfOpenValueIsClosed: a value that Open returns together with an
// error is passed to Close rather than leaked.
func TestHalfOpenValueIsClosed(t *testing.T) {
	var closed atomic.Int64
	p, err := New(Config[*fakeConn]{MaxSize: 1,
		Open:  func(context.Context) (*fakeConn, error) { return &fakeConn{id: 7}, errors.New("handshake failed") },
		Close: func(c *fakeConn) error { closed.Add(int64(c.id)); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Acquire(bg()); err == nil {
		t.Fatal("Acquire succeeded with a failing Open")
	}
	if err := p.Close(bg()); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); closed.Load() != 7 || s.OpenErrors != 1 || s.Open != 0 {
		t.Errorf("closed %d, stats %+v: want the half-open value closed once", closed.Load(), s)
	}
}

// TestReclaimCountsAsAClose: a connection closed because its lease was
// dropped counts under exactly one close reason, like every other close.
func TestReclaimCountsAsAClose(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true})
	func() {
		l, _ := p.Acquire(bg())
		_ = l // dropped
	}()
	waitFor(t, "the dropped lease to be reclaimed", func() bool {
		runtime.GC()
		s := p.Stats()
		return s.Reclaims == 1 && s.Open == 0
	})
	s := p.Stats()
	closes := s.ClosedLifetime + s.ClosedIdleTime + s.ClosedCheck + s.ClosedReset + s.ClosedDiscard + s.ClosedOverIdle + s.ClosedByClose + s.ClosedEvicted + s.ClosedReclaim
	if s.ClosedReclaim != 1 || closes != 1 || int64(f.counts().closes) != closes {
		t.Errorf("stats %+v: want the reclaim counted as one close", s)
	}
}
