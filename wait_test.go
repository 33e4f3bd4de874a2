package fairpool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestTimeoutErrorSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2, AcquireTimeout: 2 * time.Second, Name: "orders"})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		defer a.Release()
		defer b.Release()
		go func() { // a second waiter, behind the first
			if _, err := p.Acquire(bg()); !errors.Is(err, ErrTimeout) {
				t.Errorf("second waiter: %v", err)
			}
		}()
		start := time.Now()
		_, err := p.Acquire(bg())
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("gave up after %v, want exactly 2s", waited)
		}
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want *TimeoutError wrapping ErrTimeout", err)
		}
		if te.Pool != "orders" || te.Waited != 2*time.Second || te.MaxSize != 2 || te.InUse != 2 || te.Idle != 0 || te.Open != 2 {
			t.Errorf("snapshot = %+v", te)
		}
		for _, want := range []string{`"orders"`, "2s", "MaxSize 2", "in use 2", "idle 0", "waiting", "opening 0"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
		}
		synctest.Wait()
		if s := p.Stats(); s.Timeouts != 2 || s.Waiting != 0 {
			t.Errorf("stats after timeouts: %+v", s)
		}
	})
}

func TestContextEndsWaitWithSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Minute})
		held, _ := p.Acquire(bg())
		defer held.Release()

		ctx, cancel := context.WithCancel(bg())
		go func() { time.Sleep(time.Second); cancel() }()
		_, err := p.Acquire(ctx)
		var te *TimeoutError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &te) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want *TimeoutError wrapping context.Canceled only", err)
		}
		if te.Waited != time.Second || te.InUse != 1 {
			t.Errorf("snapshot %+v", te)
		}

		// A context deadline before AcquireTimeout wins.
		ctx, cancel2 := context.WithTimeout(bg(), 3*time.Second)
		defer cancel2()
		start := time.Now()
		_, err = p.Acquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 3*time.Second {
			t.Errorf("err = %v after %v, want DeadlineExceeded after 3s", err, time.Since(start))
		}
		if s := p.Stats(); s.Cancels != 2 || s.Timeouts != 0 {
			t.Errorf("Cancels %d Timeouts %d, want 2 and 0", s.Cancels, s.Timeouts)
		}
	})
}

func TestNegativeAcquireTimeoutWaitsForContextOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: -1})
		held, _ := p.Acquire(bg())
		ctx, cancel := context.WithTimeout(bg(), 24*time.Hour)
		defer cancel()
		start := time.Now()
		_, err := p.Acquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 24*time.Hour {
			t.Errorf("err = %v after %v, want the context's deadline after 24h", err, time.Since(start))
		}
		held.Release()
	})
}

func TestAlreadyCancelledContextNeverGetsConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
		held, _ := p.Acquire(bg())
		ctx, cancel := context.WithCancel(bg())
		cancel()
		if _, err := p.Acquire(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
		held.Release()
	})
}

// TestCancelDuringHandoffLosesNothing races a release against the waiter's
// cancellation thousands of times: whichever wins, the connection ends up
// with the waiter or back in idle, never lost and never held by a waiter
// that was told it failed.
func TestCancelDuringHandoffLosesNothing(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	got, failed := 0, 0
	for i := range 3000 {
		held, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(bg())
		res := make(chan error, 1)
		go func() {
			l, err := p.Acquire(ctx)
			if err == nil {
				l.Value().use(t, int64(i+1))
				l.Value().done(int64(i + 1))
				l.Release()
			}
			res <- err
		}()
		waitFor(t, "waiter queued", func() bool { return p.Stats().Waiting == 1 })
		var wg sync.WaitGroup
		wg.Go(cancel)
		wg.Go(held.Release)
		wg.Wait()
		if err := <-res; err == nil {
			got++
		} else if errors.Is(err, context.Canceled) {
			failed++
		} else {
			t.Fatalf("unexpected error %v", err)
		}
		checkInv(t, p)
		if s := p.Stats(); s.Idle != 1 || s.InUse != 0 || s.Open != 1 || s.Waiting != 0 {
			t.Fatalf("iteration %d: connection lost: %+v", i, s)
		}
	}
	if c := f.counts(); c.opens != 1 {
		t.Errorf("opens = %d, want 1: the connection was thrown away somewhere", c.opens)
	}
	if s := p.Stats(); s.Acquires != int64(3000+got) || s.Cancels != int64(failed) {
		t.Errorf("Acquires %d Cancels %d, want %d and %d", s.Acquires, s.Cancels, 3000+got, failed)
	}
	t.Logf("granted %d, cancelled %d", got, failed)
}

// TestSlowOpenSurvivesCallerGivingUp: the caller's cancellation does not
// abort its open, and the connection then serves the next caller without a
// second open.
func TestSlowOpenSurvivesCallerGivingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 1)
		f.gate = make(chan struct{})
		type key struct{}
		var openCtx context.Context
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 1, OpenTimeout: time.Minute,
			Open: func(ctx context.Context) (*fakeConn, error) { openCtx = ctx; return f.Open(ctx) }})

		ctx, cancel := context.WithCancel(context.WithValue(bg(), key{}, "trace-7"))
		errc := make(chan error)
		go func() { _, err := p.Acquire(ctx); errc <- err }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller got %v", err)
		}
		if openCtx.Err() != nil {
			t.Fatal("the caller's cancel reached Open")
		}
		if openCtx.Value(key{}) != "trace-7" {
			t.Error("Open's context lost the caller's values")
		}
		if d, ok := openCtx.Deadline(); !ok || time.Until(d) != time.Minute {
			t.Errorf("Open's deadline = %v, %v; want OpenTimeout from now", d, ok)
		}
		f.gate <- struct{}{}
		synctest.Wait()
		if s := p.Stats(); s.Idle != 1 {
			t.Fatalf("finished open not kept: %+v", s)
		}
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		if c := f.counts(); c.opens != 1 {
			t.Errorf("opens = %d, want 1", c.opens)
		}
	})
}

func TestOpenErrorReachesCallerAndFreesSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, Name: "db"})
		f.setFail(errOpen)
		_, err := p.Acquire(bg())
		var oe *OpenError
		if !errors.Is(err, errOpen) || !errors.As(err, &oe) || oe.Pool != "db" {
			t.Fatalf("err = %v, want *OpenError wrapping errOpen", err)
		}
		f.setFail(nil)
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatalf("after a failed open the slot was not freed: %v", err)
		}
		l.Release()
		if s := p.Stats(); s.OpenErrors != 1 || s.Opens != 1 {
			t.Errorf("OpenErrors %d Opens %d", s.OpenErrors, s.Opens)
		}
	})
}

// TestDiscardGivesSlotToOldestWaiter: with every slot in use and a waiter
// queued, a discarded connection's slot turns into a new open for that
// waiter: no capacity is left unused while someone waits.
func TestDiscardGivesSlotToOldestWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		got := waitInLine(t, func() (*Lease[*fakeConn], error) { return p.Acquire(bg()) })
		old := a.Value()
		a.Discard()
		l := <-got
		if l.Value() == old || !old.closed.Load() {
			t.Error("discarded connection was reused or not closed")
		}
		l.Release()
		b.Release()
		if c := f.counts(); c.opens != 3 || c.closes != 1 {
			t.Errorf("opens %d closes %d, want 3 and 1", c.opens, c.closes)
		}
		if s := p.Stats(); s.ClosedDiscard != 1 {
			t.Errorf("ClosedDiscard = %d", s.ClosedDiscard)
		}
	})
}

// TestFailedOpensEndWaitsInsteadOfHanging: with the server down every
// waiter hears about it, in order, long before its timeout.
func TestFailedOpensEndWaitsInsteadOfHanging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
		f.setFail(errOpen)
		start := time.Now()
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if _, err := p.Acquire(bg()); !errors.Is(err, errOpen) {
					t.Errorf("err = %v, want the open error", err)
				}
			})
		}
		wg.Wait()
		if time.Since(start) != 0 {
			t.Errorf("took %v of fake time; the failures should not wait", time.Since(start))
		}
		if s := p.Stats(); s.Open != 0 || s.OpenErrors != 5 {
			t.Errorf("stats %+v", s)
		}
	})
}
