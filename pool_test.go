package fairpool

import (
	"errors"
	"strings"
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
		served := queueInTurn(t, 100, func() (*Lease[*fakeConn], error) { return p.Acquire(bg()) }, func() { checkInv(t, p) })
		if s := p.Stats(); s.Waiting != 100 {
			t.Fatalf("Waiting = %d, want 100", s.Waiting)
		}
		held.Release()
		wantFIFO(t, served())
	})
}

func TestLIFOServesNewestWaiterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, WaitOrder: LIFO})
		held, _ := p.Acquire(bg())
		served := queueInTurn(t, 5, func() (*Lease[*fakeConn], error) { return p.Acquire(bg()) }, func() {})
		held.Release()
		if order, want := served(), []int{4, 3, 2, 1, 0}; !equal(order, want) {
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
		got := waitInLine(t, func() (*Lease[*fakeConn], error) { return p.Acquire(bg()) })
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
