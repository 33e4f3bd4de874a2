package fairpool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestCheckRunsOnlyAfterIdleAndReplacesBadConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var checks atomic.Int64
		var failing atomic.Pointer[fakeConn]
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 2, CheckAfter: time.Second,
			Check: func(ctx context.Context, c *fakeConn) error {
				checks.Add(1)
				if failing.Load() == c {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		l, _ := p.Acquire(bg())
		c1 := l.Value()
		l.Release()

		time.Sleep(500 * time.Millisecond)
		l, _ = p.Acquire(bg())
		if checks.Load() != 0 {
			t.Error("Check ran on a connection idle less than CheckAfter")
		}
		l.Release()

		time.Sleep(2 * time.Second)
		failing.Store(c1)
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatalf("Acquire after failed check: %v", err)
		}
		synctest.Wait()
		if checks.Load() != 1 || l.Value() == c1 || !c1.closed.Load() {
			t.Errorf("checks %d, got the bad conn %v, closed %v", checks.Load(), l.Value() == c1, c1.closed.Load())
		}
		l.Release()
		if s := p.Stats(); s.ClosedCheck != 1 || s.Acquires != 3 || s.Open != 1 {
			t.Errorf("stats %+v", s)
		}
		if c := f.counts(); c.opens != 2 {
			t.Errorf("opens %d", c.opens)
		}
	})
}

// TestFailedCheckKeepsCallersTurn: the caller that lost its connection to a
// failed check is served before a waiter that arrived after it.
func TestFailedCheckKeepsCallersTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, CheckAfter: time.Second,
			Check: func(ctx context.Context, c *fakeConn) error {
				if fail.Swap(false) {
					time.Sleep(time.Second) // a slow failing ping: the second caller queues meanwhile
					return errors.New("bad")
				}
				return nil
			}})
		l, _ := p.Acquire(bg())
		l.Release()
		time.Sleep(2 * time.Second)
		fail.Store(true)
		var order []int
		var mu sync.Mutex
		served := func(i int) {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}
		var wg sync.WaitGroup
		wg.Go(func() { // checks, fails, must get the replacement first
			l, err := p.Acquire(bg())
			if err != nil {
				t.Error(err)
				return
			}
			served(1)
			time.Sleep(time.Second)
			l.Release()
		})
		wg.Go(func() { // arrives while the first is reopening
			time.Sleep(time.Nanosecond)
			l, err := p.Acquire(bg())
			if err != nil {
				t.Error(err)
				return
			}
			served(2)
			l.Release()
		})
		wg.Wait()
		if !equal(order, []int{1, 2}) {
			t.Errorf("served %v: a later waiter went before the caller whose check failed", order)
		}
	})
}

func TestResetRunsOnReleaseAndFailureDiscards(t *testing.T) {
	var resets atomic.Int64
	var fail atomic.Bool
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1,
		Reset: func(ctx context.Context, c *fakeConn) error {
			resets.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				t.Error("Reset's context has no deadline")
			}
			if fail.Load() {
				return errors.New("reset failed")
			}
			return nil
		}})
	l, _ := p.Acquire(bg())
	c := l.Value()
	l.Release()
	l, _ = p.Acquire(bg())
	if l.Value() != c {
		t.Error("reset connection not reused")
	}
	fail.Store(true)
	l.Release()
	closesDone(t, p)
	if !c.closed.Load() || resets.Load() != 2 {
		t.Errorf("closed %v resets %d", c.closed.Load(), resets.Load())
	}
	if s := p.Stats(); s.ClosedReset != 1 || s.Open != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestMaxLifetimeNeverHandsOutExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, MaxLifetime: time.Minute})
		l, _ := p.Acquire(bg())
		c := l.Value()
		time.Sleep(61 * time.Second) // expires while held
		l.Release()
		synctest.Wait()
		if !c.closed.Load() {
			t.Error("expired connection went back to idle on release")
		}
		l, _ = p.Acquire(bg())
		c2 := l.Value()
		l.Release()
		time.Sleep(59 * time.Second)
		l, _ = p.Acquire(bg())
		if l.Value() != c2 {
			t.Error("connection retired before its lifetime")
		}
		l.Release()
		if s := p.Stats(); s.ClosedLifetime != 1 {
			t.Errorf("ClosedLifetime %d", s.ClosedLifetime)
		}
	})
}

func TestKeeperRetiresIdleByLifetimeAndIdleTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 3, MaxIdleTime: 10 * time.Second, MaxLifetime: time.Hour})
		var ls []*Lease[*fakeConn]
		for range 3 {
			l, _ := p.Acquire(bg())
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Release()
		}
		time.Sleep(5 * time.Second)
		l, _ := p.Acquire(bg()) // keeps one busy
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if s := p.Stats(); s.Idle != 0 || s.ClosedIdleTime != 2 || s.Open != 1 {
			t.Errorf("idle connections not retired by the keeper within a quarter of MaxIdleTime: %+v", s)
		}
		l.Release()
		time.Sleep(time.Hour)
		synctest.Wait()
		if c := f.counts(); c.live != 0 {
			t.Errorf("%d still open after MaxIdleTime and MaxLifetime", c.live)
		}
	})
}

func TestMaxLifetimeJitterSpreadsExpiry(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 50, MaxLifetime: time.Hour, MaxLifetimeJitter: 10 * time.Minute})
	seen := map[mono]bool{}
	for range 50 {
		c := p.newConn(p, &fakeConn{}, 1)
		if d := time.Duration(c.expiresAt - 1); d < time.Hour || d >= time.Hour+10*time.Minute {
			t.Fatalf("expiry %v outside [1h, 1h10m)", d)
		}
		seen[c.expiresAt] = true
	}
	if len(seen) < 45 {
		t.Errorf("only %d distinct expiries of 50: no herd protection", len(seen))
	}
}

func TestMinIdleKeptWarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 4, MinIdle: 2})
		synctest.Wait()
		if s := p.Stats(); s.Idle != 2 {
			t.Fatalf("Idle = %d at start, want MinIdle 2: %+v %+v", s.Idle, s, f.counts())
		}
		l, _ := p.Acquire(bg())
		synctest.Wait() // the hand-out kicked the keeper
		if s := p.Stats(); s.Idle != 2 || s.Open != 3 {
			t.Errorf("after one acquire: %+v", s)
		}
		l.Discard()
		synctest.Wait()
		if s := p.Stats(); s.Idle != 2 || s.Open != 2 {
			t.Errorf("after discard: %+v", s)
		}
		if c := f.counts(); c.opens != 3 {
			t.Errorf("opens %d", c.opens)
		}
	})
}

func TestMinIdleOpenFailureIsLoggedNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 2)
		f.setFail(errOpen)
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 2, MinIdle: 1})
		synctest.Wait()
		if s := p.Stats(); s.OpenErrors == 0 || s.Open != 0 {
			t.Errorf("stats %+v", s)
		}
		f.setFail(nil)
		time.Sleep(time.Minute) // the keeper tries again on its next round
		synctest.Wait()
		if s := p.Stats(); s.Idle != 1 {
			t.Errorf("keeper did not recover: %+v", s)
		}
	})
}

func TestMaxIdleClosesExtras(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 4, MaxIdle: 1})
	var ls []*Lease[*fakeConn]
	for range 4 {
		l, _ := p.Acquire(bg())
		ls = append(ls, l)
	}
	for _, l := range ls {
		l.Release()
	}
	closesDone(t, p)
	if s := p.Stats(); s.Idle != 1 || s.Open != 1 || s.ClosedOverIdle != 3 {
		t.Errorf("stats %+v", s)
	}
	if c := f.counts(); c.live != 1 {
		t.Errorf("live %d", c.live)
	}
}

func TestCloseStopsKeeperAndCancelsItsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 1)
		f.gate = make(chan struct{}) // Open blocks until its context ends
		p, _ := New(Config[*fakeConn]{MaxSize: 1, MinIdle: 1, Open: f.Open, Close: f.Close})
		synctest.Wait()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if c := f.counts(); c.live != 0 || c.fails != 1 {
			t.Errorf("after Close: %+v", c)
		}
	})
}
