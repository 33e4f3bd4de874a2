package fairpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Regression tests for a Group whose callbacks block or fail, and for
// callers whose context ends: none of it may cost a slot, close a healthy
// connection or hold a caller past its deadline (callback.go). Panics are
// in group_panic_test.go, the limits in group_limits_test.go.

// idleConn leaves one connection of key idle for d and returns it.
func idleConn(t *testing.T, g *testGroup, key string, d time.Duration) *keyConn {
	t.Helper()
	l, err := g.Acquire(bg(), key)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Value()
	l.Release()
	time.Sleep(d)
	return c
}

// wantTimeout fails t unless err is a timeout of a whole wait of d.
func wantTimeout(t *testing.T, err error, d time.Duration) {
	t.Helper()
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.Waited != d {
		t.Fatalf("err = %v, want a timeout after waiting %v", err, d)
	}
}

// TestGroupCheckIsBoundedByTheDeadline: with context.Background and
// AcquireTimeout 100ms, an Acquire whose Check blocks, heeding its context
// or not, returns at 100ms with a timeout that counts the Check's time.
// The Check that outlives it decides the connection's fate when it
// returns: a pass sends it to the next waiter, unchecked; a failure with
// its context's error sends it back unvetted, to be checked again; any
// other failure, or a panic, closes it.
func TestGroupCheckIsBoundedByTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		name        string
		deaf        bool
		late        func() error // what a deaf Check returns after its caller left
		closed      bool
		checkedMore bool
	}{
		{name: "heeds its context", checkedMore: true},
		{name: "deaf, then passes", deaf: true, late: func() error { return nil }},
		{name: "deaf, then fails with its context's error", deaf: true, late: func() error { return fmt.Errorf("ping: %w", context.DeadlineExceeded) }, checkedMore: true},
		{name: "deaf, then fails on its own", deaf: true, late: func() error { return errors.New("ping: broken pipe") }, closed: true},
		{name: "deaf, then panics", deaf: true, late: func() error { panic("ping: nil map") }, closed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var calls atomic.Int64
				g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: 100 * time.Millisecond, CheckAfter: time.Second,
					Check: func(ctx context.Context, c *keyConn) error {
						if calls.Add(1) > 1 {
							return nil
						}
						if !tc.deaf {
							<-ctx.Done()
							return ctx.Err()
						}
						<-release
						return tc.late()
					}})
				c1 := idleConn(t, g, "a", 2*time.Second)
				start := time.Now()
				_, err := g.Acquire(bg(), "a")
				wantTimeout(t, err, 100*time.Millisecond)
				if d := time.Since(start); d != 100*time.Millisecond {
					t.Fatalf("Acquire returned after %v, want AcquireTimeout", d)
				}
				checkGroupInv(t, g)
				next := make(chan *GroupLease[string, *keyConn], 1)
				if tc.deaf {
					// The Check still holds the connection and its place;
					// the next caller waits for them.
					if s := g.Stats().Total; s.InUse != 1 || s.Timeouts != 1 {
						t.Errorf("while the Check outlives its caller: %+v", s)
					}
					go func() {
						l, err := g.Acquire(bg(), "a")
						if err != nil {
							t.Error(err)
						}
						next <- l
					}()
					synctest.Wait()
					close(release)
				} else {
					l, err := g.Acquire(bg(), "a")
					if err != nil {
						t.Fatal(err)
					}
					next <- l
				}
				l := <-next
				synctest.Wait()
				if got := l.Value() == c1; got == tc.closed || c1.closed.Load() != tc.closed {
					t.Errorf("next caller got the checked connection %v; it is closed %v; want closed %v", got, c1.closed.Load(), tc.closed)
				}
				if more := calls.Load() > 1; more != tc.checkedMore {
					t.Errorf("checked again %v, want %v", more, tc.checkedMore)
				}
				l.Release()
				checkGroupInv(t, g)
				s := g.Stats().Total
				if s.InUse != 0 || s.Waiting != 0 || (s.ClosedCheck == 1) != tc.closed {
					t.Errorf("stats %+v", s)
				}
				if c := f.counts(); c.total != 1 {
					t.Errorf("%d connections open, want 1", c.total)
				}
			})
		})
	}
}

// gate holds every Open of f from now until the returned func is called.
func gate(f *keyFactory) (open func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.gate = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(ch)
	}
}

// TestGroupRetryAfterCheckKeepsTheDeadline: a Check that takes 60ms and
// fails sends the caller back to wait, with the deadline it had from the
// start: it gives up 100ms after it began, not 100ms after the Check, and
// its TimeoutError counts the Check's 60ms.
func TestGroupRetryAfterCheckKeepsTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: 100 * time.Millisecond, CheckAfter: time.Second,
			Check: func(ctx context.Context, c *keyConn) error {
				time.Sleep(60 * time.Millisecond)
				return errors.New("ping: broken pipe")
			}})
		for _, acquire := range []func() error{
			func() error { _, err := g.Acquire(bg(), "a"); return err },
			func() error { _, err := g.AcquireAll(bg(), "a"); return err },
		} {
			idleConn(t, g, "a", 2*time.Second)
			open := gate(f) // the replacement opens only after the caller gave up
			start := time.Now()
			err := acquire()
			wantTimeout(t, err, 100*time.Millisecond)
			if d := time.Since(start); d != 100*time.Millisecond {
				t.Errorf("gave up after %v, want 100ms from the start", d)
			}
			checkGroupInv(t, g)
			open()
			synctest.Wait()
		}
		if s := g.Stats().Keys["a"]; s.Timeouts != 2 || s.ClosedCheck != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestGroupClosesRunOffTheCallersPath: with a Close that takes a second,
// an Acquire that finds three connections failing their Check returns at
// once, and so do Discard and a Release that closes: the closes run on
// goroutines of the group.
func TestGroupClosesRunOffTheCallersPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f *keyFactory
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 5, AcquireTimeout: 100 * time.Millisecond,
			CheckAfter: time.Second, MaxLifetime: time.Minute,
			Check: func(context.Context, *keyConn) error { return errors.New("ping: broken pipe") },
			Close: func(c *keyConn) error {
				time.Sleep(time.Second)
				return f.Close(c)
			}})
		ls, err := g.AcquireAll(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l2, _ := g.Acquire(bg(), "a")
		l3, _ := g.Acquire(bg(), "a")
		ls.Release()
		l2.Release()
		l3.Release()
		time.Sleep(2 * time.Second)

		start := time.Now()
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Acquire took %v with three connections failing their check", d)
		}
		checkGroupInv(t, g)
		start = time.Now()
		l.Discard()
		if d := time.Since(start); d != 0 {
			t.Errorf("Discard took %v", d)
		}
		l, _ = g.Acquire(bg(), "a")
		time.Sleep(time.Minute)
		start = time.Now()
		l.Release() // past MaxLifetime: closed
		if d := time.Since(start); d != 0 {
			t.Errorf("Release took %v", d)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := g.Stats().Total; s.ClosedCheck != 3 || s.ClosedDiscard != 1 || s.ClosedLifetime != 1 || s.Closing != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestGroupExpiredAtHandOutClosesOffTheCallersPath: a connection that
// expired while its AcquireAll waited for another key's open is closed
// off the caller's path: with a Close of a second, AcquireAll returns
// when the open does, with a new connection for the expired one.
func TestGroupExpiredAtHandOutClosesOffTheCallersPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f *keyFactory
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, AcquireTimeout: 5 * time.Second, MaxLifetime: time.Second,
			Open: func(ctx context.Context, key string) (*keyConn, error) {
				if key == "b" {
					time.Sleep(2 * time.Second)
				}
				return f.Open(ctx, key)
			},
			Close: func(c *keyConn) error {
				time.Sleep(time.Second)
				return f.Close(c)
			}})
		ca := idleConn(t, g, "a", 0)
		start := time.Now()
		ls, err := g.AcquireAll(bg(), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 2*time.Second || ls.Value("a") == ca {
			t.Errorf("AcquireAll took %v, want the 2s of b's open; got a's expired connection %v", d, ls.Value("a") == ca)
		}
		ls.Release()
		if s := g.Stats().Keys["a"]; s.ClosedLifetime != 1 || s.Opens != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestGroupEndedContextGetsNothing: an acquire whose context has ended
// gets its error before anything is handed out or checked, so it cannot
// close healthy idle connections by failing their checks; and a Check
// that fails because the caller's context ended leaves the connection
// open, unvetted, for the next caller to check.
func TestGroupEndedContextGetsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, AcquireTimeout: time.Second, CheckAfter: time.Second,
			Check: func(ctx context.Context, c *keyConn) error {
				if calls.Add(1) == 1 {
					<-ctx.Done()
				}
				return ctx.Err() // a ping on an ended context fails
			}})
		ls, err := g.AcquireAll(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l2, _ := g.Acquire(bg(), "a")
		l3, _ := g.Acquire(bg(), "a")
		ls.Release()
		l2.Release()
		l3.Release()
		time.Sleep(2 * time.Second)

		for _, acquire := range []func(context.Context) error{
			func(ctx context.Context) error { _, err := g.Acquire(ctx, "a"); return err },
			func(ctx context.Context) error { _, err := g.AcquireAll(ctx, "a", "b"); return err },
			func(ctx context.Context) error {
				return g.With(ctx, "a", func(context.Context, *keyConn) error { return nil })
			},
		} {
			err := acquire(cancelled())
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || te.Waited != 0 {
				t.Errorf("with a cancelled context: %v, want a TimeoutError wrapping Canceled", err)
			}
		}
		synctest.Wait()
		if s := g.Stats().Total; calls.Load() != 0 || s.Idle != 3 || s.ClosedCheck != 0 || s.Cancels != 0 {
			t.Fatalf("cancelled callers ran %d checks; stats %+v", calls.Load(), s)
		}

		// The context ends while Check runs: the connection stays.
		ctx, cancel := context.WithCancel(bg())
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		_, err = g.Acquire(ctx, "a")
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || te.Waited != 10*time.Millisecond || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("Acquire = %v after %v, want canceled at 10ms", err, time.Since(start))
		}
		synctest.Wait()
		if s := g.Stats().Total; s.Idle != 3 || s.ClosedCheck != 0 || s.Cancels != 1 {
			t.Fatalf("stats %+v", s)
		}
		// Still unvetted: the next caller checks it, and gets it.
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		if c := f.counts(); calls.Load() != 2 || c.totalOpens != 3 || c.closes != 0 {
			t.Errorf("checks %d, factory %+v", calls.Load(), c)
		}
	})
}

// TestGroupResetEndsAtClose: Reset's context ends when the group closes,
// as Pool's does, and the connection is then closed for that reason, not
// as a failed reset.
func TestGroupResetEndsAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newKeyFactory(t, 1, 0)
		g, err := NewGroup(GroupConfig[string, *keyConn]{PerKeyMax: 1, Open: f.Open, Close: f.Close,
			Reset: func(ctx context.Context, _ *keyConn) error { <-ctx.Done(); return ctx.Err() }})
		if err != nil {
			t.Fatal(err)
		}
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		released := make(chan struct{})
		go func() { l.Release(); close(released) }()
		synctest.Wait() // Reset blocks until its context ends
		start := time.Now()
		if err := g.Close(bg()); err != nil {
			t.Fatal(err)
		}
		<-released
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v with a Reset under way, want at once", d)
		}
		if s := g.Stats().Total; s.ClosedReset != 0 || s.ClosedByClose != 1 || s.Open != 0 {
			t.Errorf("stats %+v: want the connection closed by Close, not as a failed reset", s)
		}
	})
}

// TestGroupCheckThatCallsGoexitLosesNoSlot: a Check that ends its
// goroutine with runtime.Goexit (t.FailNow in a test double) neither
// returns nor panics. The group's Check goroutine never reported it, so
// the caller waited out its deadline and the connection, still holding
// its key's place and its share of GlobalMax, was never settled: the
// group of one never served again and Close never drained.
func TestGroupCheckThatCallsGoexitLosesNoSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 1, AcquireTimeout: 100 * time.Millisecond, CheckAfter: time.Second,
			Check: func(context.Context, *keyConn) error {
				if calls.Add(1) == 1 {
					runtime.Goexit()
				}
				return nil
			}})
		idleConn(t, g, "a", 2*time.Second)
		start := time.Now()
		_, err := g.Acquire(bg(), "a")
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Callback != "Check" {
			t.Fatalf("Acquire whose Check called Goexit = %v; want the Check's *PanicError, as for a panic", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the caller waited %v for a Check that had ended; want no wait", d)
		}
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatalf("the next Acquire: %v; want a fresh connection in the slot the Check freed", err)
		}
		l.Release()
		if n := g.Stats().Total.ClosedCheck; n != 1 {
			t.Errorf("ClosedCheck = %d, want 1: the connection whose Check called Goexit is closed", n)
		}
	})
}

// TestGroupOpenThatCallsGoexitLosesNoSlot: an Open that ends its goroutine
// with runtime.Goexit never returned to the group's open, so its key's
// slot and its share of GlobalMax stayed counted as opening forever: a
// group of one never served again and Close never drained.
func TestGroupOpenThatCallsGoexitLosesNoSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		f := newKeyFactory(t, 1, 1)
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 1, AcquireTimeout: 100 * time.Millisecond,
			Open: func(ctx context.Context, key string) (*keyConn, error) {
				if calls.Add(1) == 1 {
					runtime.Goexit()
				}
				return f.Open(ctx, key)
			}, Close: f.Close})
		_, err := g.Acquire(bg(), "a")
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Callback != "Open" {
			t.Fatalf("Acquire whose Open called Goexit = %v; want the Open's *PanicError, at once", err)
		}
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatalf("the next Acquire: %v; want a connection in the slot the failed open freed", err)
		}
		l.Release()
	})
}
