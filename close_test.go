package fairpool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

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
		synctest.Wait()
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
		wantCloseWaiting(t, closed)
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
		synctest.Wait()
		if c := f.counts(); c.live != 0 {
			t.Errorf("%d live after release into a closed pool", c.live)
		}
		if err := p.Close(bg()); err != nil {
			t.Error(err)
		}
	})
}

// TestCloseCancelsOpensUnderWay: an open started for a waiter is not
// cancelled by the waiter, but Close ends it rather than wait out
// OpenTimeout.
func TestCloseCancelsOpensUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 1)
		f.gate = make(chan struct{}) // Open blocks until its context ends
		p, _ := New(Config[*fakeConn]{MaxSize: 1, Open: f.Open, Close: f.Close, OpenTimeout: time.Hour})
		ctx, cancel := context.WithCancel(bg())
		go func() { p.Acquire(ctx) }()
		synctest.Wait()
		cancel()
		start := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Close waited %v for an open", time.Since(start))
		}
		if c := f.counts(); c.fails != 1 || c.live != 0 {
			t.Errorf("factory %+v", c)
		}
	})
}

// wantCloseWaiting fails t if the Close started on closed's goroutine has
// returned: a lease is still out, so it must wait for it.
func wantCloseWaiting(t *testing.T, closed <-chan error) {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a lease was out", err)
	default:
	}
}

// wantCloseBoundedThenDone checks close (a Pool's or a Group's) in a
// synctest bubble while slow Close callbacks run until 200ms from now: a
// Close bounded by a context of 50ms returns that context's error then,
// and an unbounded one after it returns nil when the last callback does.
func wantCloseBoundedThenDone(t *testing.T, close func(context.Context) error) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(bg(), 50*time.Millisecond)
	defer cancel()
	if err := close(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 50*time.Millisecond {
		t.Fatalf("Close = %v after %v, want DeadlineExceeded after 50ms", err, time.Since(start))
	}
	if err := close(bg()); err != nil || time.Since(start) != 200*time.Millisecond {
		t.Fatalf("second Close = %v after %v, want nil once the closes end at 200ms", err, time.Since(start))
	}
}
