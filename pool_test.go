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

func TestAcquireReleaseReusesConnection(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
	l, err := p.Acquire(bg())
	if err != nil {
		t.Fatal(err)
	}
	first := l.Value()
	l.Release()
	l2, err := p.Acquire(bg())
	if err != nil {
		t.Fatal(err)
	}
	if l2.Value() != first {
		t.Error("idle connection not reused")
	}
	l2.Release()
	if c := f.counts(); c.opens != 1 {
		t.Errorf("opens = %d, want 1", c.opens)
	}
}

// TestFIFOOrderOf100Waiters queues 100 goroutines one at a time behind a
// pool of one and checks they are served in exactly that order.
func TestFIFOOrderOf100Waiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Hour})
		held, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				l, err := p.Acquire(bg())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				l.Release()
			})
			synctest.Wait() // i is queued before i+1 starts
			checkInv(t, p)
		}
		if s := p.Stats(); s.Waiting != 100 {
			t.Fatalf("Waiting = %d, want 100", s.Waiting)
		}
		held.Release()
		wg.Wait()
		for i, got := range order {
			if got != i {
				t.Fatalf("served order %v, want 0..99", order)
			}
		}
	})
}

func TestLIFOServesNewestWaiterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, WaitOrder: LIFO})
		held, _ := p.Acquire(bg())
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				l, err := p.Acquire(bg())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				l.Release()
			})
			synctest.Wait()
		}
		held.Release()
		wg.Wait()
		if want := []int{4, 3, 2, 1, 0}; !equal(order, want) {
			t.Errorf("order %v, want %v", order, want)
		}
	})
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNoBarging releases the only connection while a waiter is queued, and
// checks that a newcomer arriving before the waiter has even run cannot
// take it: the release handed it straight to the waiter.
func TestNoBarging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
		held, _ := p.Acquire(bg())
		got := make(chan *Lease[*fakeConn])
		go func() {
			l, err := p.Acquire(bg())
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait()
		held.Release()
		if l, err := p.TryAcquire(bg()); !errors.Is(err, ErrExhausted) {
			t.Fatalf("newcomer TryAcquire = %v, %v; want ErrExhausted", l, err)
		}
		(<-got).Release()
		l, err := p.TryAcquire(bg())
		if err != nil {
			t.Fatalf("TryAcquire with nobody waiting: %v", err)
		}
		l.Release()
	})
}

func TestTryAcquireNeverJumpsTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l, err := p.Acquire(bg())
			if err == nil {
				l.Release()
			}
		}()
		synctest.Wait()
		if _, err := p.TryAcquire(bg()); !errors.Is(err, ErrExhausted) {
			t.Errorf("TryAcquire = %v, want ErrExhausted", err)
		}
		a.Release()
		<-done
		b.Release()
	})
}

func TestTryAcquireOpensInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2, Name: "bg"})
		_, err := p.TryAcquire(bg())
		if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), `"bg"`) {
			t.Fatalf("first TryAcquire = %v, want ErrExhausted naming the pool", err)
		}
		synctest.Wait()
		l, err := p.TryAcquire(bg())
		if err != nil {
			t.Fatalf("TryAcquire after background open: %v", err)
		}
		l.Release()
		if c := f.counts(); c.opens != 1 {
			t.Errorf("opens = %d, want 1", c.opens)
		}
	})
}

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
// waiter (seed 004: no capacity left unused).
func TestDiscardGivesSlotToOldestWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		got := make(chan *Lease[*fakeConn])
		go func() {
			l, err := p.Acquire(bg())
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait()
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

func TestReleaseAndDiscardAreIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
		old, _ := p.Acquire(bg())
		c := old.Value()
		old.Release()
		old.Release()

		cur, err := p.Acquire(bg())
		if err != nil || cur.Value() != c {
			t.Fatalf("Acquire = %v, %v", cur, err)
		}
		// Late calls on the old lease must not touch the current holder's connection.
		old.Release()
		old.Discard()
		if _, err := p.TryAcquire(bg()); !errors.Is(err, ErrExhausted) {
			t.Fatalf("a stale Release returned a held connection: TryAcquire = %v", err)
		}
		if c.closed.Load() {
			t.Fatal("a stale Discard closed a held connection")
		}
		cur.Discard()
		cur.Release()
		cur.Discard()
		if cnt := f.counts(); cnt.closes != 1 {
			t.Errorf("closes = %d, want 1", cnt.closes)
		}
		if s := p.Stats(); s.Open != 0 || s.InUse != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestValueAfterReleasePanics(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	l, _ := p.Acquire(bg())
	l.Release()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "after Release") {
			t.Errorf("recover() = %v", r)
		}
	}()
	l.Value()
}

func TestCloseWakesWaitersAndWaitsForLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 2)
		p, err := New(Config[*fakeConn]{MaxSize: 2, Open: f.Open, Close: f.Close, Name: "c"})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		waiterErr := make(chan error)
		go func() { _, err := p.Acquire(bg()); waiterErr <- err }()
		synctest.Wait()

		closed := make(chan error)
		go func() { closed <- p.Close(bg()) }()
		if err := <-waiterErr; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter got %v, want ErrClosed", err)
		}
		if _, err := p.Acquire(bg()); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), `"c"`) {
			t.Errorf("Acquire after Close = %v", err)
		}
		b.Release()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v while a lease was out", err)
		default:
		}
		if c := f.counts(); c.live != 1 {
			t.Errorf("released connection not closed: %d live", c.live)
		}
		a.Release()
		if err := <-closed; err != nil {
			t.Errorf("Close = %v", err)
		}
		if c := f.counts(); c.live != 0 {
			t.Errorf("%d connections left", c.live)
		}
		if err := p.Close(bg()); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if s := p.Stats(); s.ClosedByClose != 2 {
			t.Errorf("ClosedByClose = %d", s.ClosedByClose)
		}
	})
}

func TestCloseClosesIdleConnections(t *testing.T) {
	f := newFactory(t, 3)
	p, _ := New(Config[*fakeConn]{MaxSize: 3, Open: f.Open, Close: f.Close})
	var ls []*Lease[*fakeConn]
	for range 3 {
		l, _ := p.Acquire(bg())
		ls = append(ls, l)
	}
	for _, l := range ls {
		l.Release()
	}
	if err := p.Close(bg()); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(); c.live != 0 || c.closes != 3 {
		t.Errorf("after Close: %+v", c)
	}
}

func TestCloseGivesUpWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 1)
		p, _ := New(Config[*fakeConn]{MaxSize: 1, Open: f.Open, Close: f.Close})
		held, _ := p.Acquire(bg())
		ctx, cancel := context.WithTimeout(bg(), time.Second)
		defer cancel()
		if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want DeadlineExceeded", err)
		}
		held.Release() // closed now, since the pool is
		if c := f.counts(); c.live != 0 {
			t.Errorf("%d live after release into a closed pool", c.live)
		}
		if err := p.Close(bg()); err != nil {
			t.Error(err)
		}
	})
}

func TestStatsAddUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
		a, _ := p.Acquire(bg())
		b, _ := p.Acquire(bg())
		done := make(chan struct{})
		go func() {
			l, _ := p.Acquire(bg())
			l.Release()
			close(done)
		}()
		synctest.Wait()
		s := p.Stats()
		if s.MaxSize != 2 || s.Open != 2 || s.InUse != 2 || s.Waiting != 1 || s.Idle != 0 {
			t.Errorf("gauges %+v", s)
		}
		time.Sleep(300 * time.Millisecond)
		a.Release()
		<-done
		b.Release()
		s = p.Stats()
		if s.Acquires != 3 || s.Waits != 3 || s.WaitDuration != 300*time.Millisecond || s.Opens != 2 || s.Idle != 2 || s.InUse != 0 {
			t.Errorf("counters %+v", s)
		}
		h := s.WaitHistogram
		if h.Count != 3 {
			t.Errorf("histogram count %d", h.Count)
		}
		// 300ms lies in [2^18 µs, 2^19 µs) = [262ms, 524ms).
		if h.Counts[19] != 1 || h.Quantile(1) != BucketUpperBound(19) {
			t.Errorf("histogram %+v, p100 %v", h.Counts, h.Quantile(1))
		}
	})
}

func TestHistogramBucketsAndQuantile(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, 500 * time.Nanosecond, time.Microsecond, 3 * time.Microsecond, time.Millisecond, time.Hour} {
		h.observe(d)
	}
	s := h.snapshot()
	want := map[int]int64{0: 2, 1: 1, 2: 1, 10: 1, NumBuckets - 1: 1}
	for i, n := range s.Counts {
		if n != want[i] {
			t.Errorf("bucket %d = %d, want %d", i, n, want[i])
		}
	}
	if s.Quantile(0) != time.Microsecond || s.Quantile(0.5) != 2*time.Microsecond || s.Quantile(1) != BucketUpperBound(NumBuckets-1) {
		t.Errorf("quantiles %v %v %v", s.Quantile(0), s.Quantile(0.5), s.Quantile(1))
	}
	if (Histogram{}).Quantile(0.5) != 0 {
		t.Error("empty histogram quantile")
	}
}

func TestAcquireAllocatesOnlyTheLease(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
	l, _ := p.Acquire(bg())
	l.Release()
	allocs := testing.AllocsPerRun(1000, func() {
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
	if allocs > 1 {
		t.Errorf("Acquire+Release allocates %v times, want at most 1", allocs)
	}
}
