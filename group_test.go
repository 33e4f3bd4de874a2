package fairpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestGroupConfigErrorsNameTheField(t *testing.T) {
	open := func(context.Context, string) (*keyConn, error) { return &keyConn{}, nil }
	for _, tc := range []struct {
		cfg  GroupConfig[string, *keyConn]
		want string
	}{
		{GroupConfig[string, *keyConn]{PerKeyMax: 1}, "GroupConfig.Open must not be nil"},
		{GroupConfig[string, *keyConn]{Open: open}, "GroupConfig.PerKeyMax must be >= 1, got 0"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, GlobalMax: -1}, "GroupConfig.GlobalMax must be >= 0, got -1"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, MinIdle: -1}, "GroupConfig.MinIdle must be >= 0, got -1"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, MinIdle: 2}, "GroupConfig.MinIdle must be <= PerKeyMax (1), got 2"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 3, MinIdle: 2, MaxIdle: 1}, "GroupConfig.MaxIdle must be >= MinIdle (2), got 1"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, WaitOrder: 7}, "GroupConfig.WaitOrder must be FIFO or LIFO, got WaitOrder(7)"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, MaxIdle: -1}, "GroupConfig.MaxIdle must be >= 0, got -1"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, MaxIdle: 2}, "GroupConfig.MaxIdle must be <= PerKeyMax (1), got 2"},
		{GroupConfig[string, *keyConn]{Open: open, PerKeyMax: 1, MaxLifetime: time.Second, MaxLifetimeJitter: time.Minute}, "GroupConfig.MaxLifetimeJitter must be <= MaxLifetime (1s), got 1m0s"},
	} {
		if _, err := NewGroup(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewGroup(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestGroupReusesConnectionsPerKey: each key has its own connections, and
// a released one is reused for the same key only.
func TestGroupReusesConnectionsPerKey(t *testing.T) {
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2})
	a, err := g.Acquire(bg(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ca := a.Value()
	b, _ := g.Acquire(bg(), "b")
	if ca.key != "a" || b.Value().key != "b" || a.Key() != "a" {
		t.Fatalf("got %q and %q", ca.key, b.Value().key)
	}
	a.Release()
	b.Release()
	a.Release() // a second call does nothing
	a2, _ := g.Acquire(bg(), "a")
	if a2.Value() != ca {
		t.Error("idle connection of a not reused")
	}
	a2.Release()
	if c := f.counts(); c.opens["a"] != 1 || c.opens["b"] != 1 {
		t.Errorf("opens %v, want one per key", c.opens)
	}
	s := g.Stats()
	if s.KeyPools != 2 || s.Keys["a"].Acquires != 2 || s.Keys["b"].Acquires != 1 || s.Total.Acquires != 3 || s.Total.Idle != 2 || s.Total.Open != 2 {
		t.Errorf("stats %+v", s)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "after Release") {
				t.Errorf("Value after Release: recover() = %v", r)
			}
		}()
		a.Value()
	}()
}

// placesOf returns how many of key's places are taken.
func (g *Group[K, T]) placesOf(key K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.shards[key]; s != nil {
		return s.places
	}
	return -1
}

// TestGroupWithDiscardsOnBadConnAndPanic: as Pool.With, for With and
// WithAll; a nested With's ErrBadConn is discarded by the outermost holder.
func TestGroupWithDiscardsOnBadConnAndPanic(t *testing.T) {
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1})
	bad := fmt.Errorf("read: %w", ErrBadConn)
	var c1 *keyConn
	err := g.With(bg(), "a", func(ctx context.Context, c *keyConn) error {
		c1 = c
		return g.With(ctx, "a", func(context.Context, *keyConn) error { return bad })
	})
	if err != bad {
		t.Errorf("With = %v", err)
	}
	// Closes run on goroutines of the group, off the caller's path.
	waitFor(t, "the discarded connection to close", c1.closed.Load)
	var conns []*keyConn
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recover() = %v", r)
			}
		}()
		g.WithAll(bg(), []string{"b", "c"}, func(_ context.Context, cs []*keyConn) error {
			conns = cs
			panic("boom")
		})
	}()
	waitFor(t, "WithAll to discard after a panic", func() bool { return conns[0].closed.Load() && conns[1].closed.Load() })
	err = g.WithAll(bg(), []string{"b", "c"}, func(ctx context.Context, cs []*keyConn) error {
		conns = cs
		return g.With(ctx, "b", func(context.Context, *keyConn) error { return bad })
	})
	if err != bad {
		t.Errorf("WithAll = %v", err)
	}
	waitFor(t, "b's connection to close", conns[0].closed.Load)
	if conns[1].closed.Load() {
		t.Error("c closed, though only b was reported bad")
	}
	if s := g.Stats(); s.Total.ClosedDiscard != 4 || s.Total.InUse != 0 {
		t.Errorf("discards %d", s.Total.ClosedDiscard)
	}
	waitFor(t, "four closes", func() bool { return f.counts().closes == 4 })
}

// TestGroupTimeoutErrorSaysWhichLine: a wait for a key reports the key's
// pool, a wait for GlobalMax the group.
func TestGroupTimeoutErrorSaysWhichLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{Name: "tenants", PerKeyMax: 1, GlobalMax: 2, AcquireTimeout: 2 * time.Second})
		a, _ := g.Acquire(bg(), "acme")
		defer a.Release()
		start := time.Now()
		_, err := g.Acquire(bg(), "acme")
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || time.Since(start) != 2*time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
		if te.Pool != "tenants[acme]" || te.MaxSize != 1 || te.InUse != 1 || te.Waited != 2*time.Second || te.Waiting != 0 {
			t.Errorf("key line: %+v", te)
		}
		b, _ := g.Acquire(bg(), "bolt")
		defer b.Release()
		_, err = g.Acquire(bg(), "cafe")
		if !errors.As(err, &te) || te.Pool != "tenants" || te.MaxSize != 2 || te.InUse != 2 || te.Open != 2 {
			t.Errorf("global line: %v", err)
		}
		if !strings.Contains(err.Error(), `pool "tenants"`) {
			t.Errorf("message %q", err)
		}
		if s := g.Stats(); s.Total.Timeouts != 2 || s.Keys["cafe"].Timeouts != 1 || s.Total.Waiting != 0 {
			t.Errorf("stats %+v", s.Total)
		}
	})
}

// TestGroupCloseFailsWaitersAndWaitsForLeases: Close wakes every waiter,
// in any line, with ErrClosed, closes idle connections, and returns once
// the leases out are back and closed.
func TestGroupCloseFailsWaitersAndWaitsForLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newKeyFactory(t, 1, 2)
		g, err := NewGroup(GroupConfig[string, *keyConn]{Name: "g", Open: f.Open, Close: f.Close, PerKeyMax: 1, GlobalMax: 2, AcquireTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		idle, _ := g.Acquire(bg(), "idle")
		idle.Release()
		a, _ := g.Acquire(bg(), "a")
		var wg sync.WaitGroup
		for _, keys := range [][]string{{"a"}, {"b", "c"}, {"d"}} { // a key's line, then the global line twice
			wg.Go(func() {
				if _, err := g.AcquireAll(bg(), keys...); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), `"g"`) {
					t.Errorf("waiter on %v: %v", keys, err)
				}
			})
			synctest.Wait()
		}
		if s := g.Stats(); s.WaitingForKey != 1 || s.WaitingForGlobal != 2 {
			t.Fatalf("waiting for a key %d, for global %d", s.WaitingForKey, s.WaitingForGlobal)
		}
		closed := make(chan error)
		go func() { closed <- g.Close(bg()) }()
		wg.Wait()
		wantCloseWaiting(t, closed)
		if c := f.counts(); c.total != 1 {
			t.Errorf("%d connections open, want only the leased one", c.total)
		}
		if _, err := g.Acquire(bg(), "a"); !errors.Is(err, ErrClosed) {
			t.Errorf("Acquire after Close: %v", err)
		}
		a.Release()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if c := f.counts(); c.total != 0 {
			t.Errorf("%d connections open after Close", c.total)
		}
		if err := g.Close(bg()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// TestGroupCheckFailureReplacesConnection: a connection that fails Check
// is closed and the caller gets a new one of the same key.
func TestGroupCheckFailureReplacesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bad atomic.Pointer[keyConn]
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, CheckAfter: time.Second,
			Check: func(_ context.Context, c *keyConn) error {
				if bad.Load() == c {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		l, _ := g.Acquire(bg(), "a")
		c1 := l.Value()
		l.Release()
		time.Sleep(2 * time.Second)
		bad.Store(c1)
		ls, err := g.AcquireAll(bg(), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if ls.Value("a") == c1 || !c1.closed.Load() {
			t.Error("got the connection that failed its check")
		}
		ls.Release()
		if s := g.Stats(); s.Keys["a"].ClosedCheck != 1 || s.Keys["a"].Acquires != 2 || s.Total.Acquires != 3 {
			t.Errorf("stats %+v", s.Keys["a"])
		}
	})
}

// TestGroupAcquireAndReleaseAllocateOnlyTheLease pins the cost of the
// fast path: one allocation, the lease.
func TestGroupAcquireAndReleaseAllocateOnlyTheLease(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 10})
	l, _ := g.Acquire(bg(), "a")
	l.Release()
	allocs := testing.AllocsPerRun(1000, func() {
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
	if allocs != 1 {
		t.Errorf("%v allocations per acquire and release, want 1", allocs)
	}
}

// TestGroupFailedCheckOnTheFastPath: a connection taken without waiting
// that fails its check is replaced by the next idle one at once, or, if
// none, by a new one; the caller keeps its place meanwhile.
func TestGroupFailedCheckOnTheFastPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bad sync.Map
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, CheckAfter: time.Second, AcquireTimeout: time.Minute,
			Check: func(_ context.Context, c *keyConn) error {
				if _, ok := bad.Load(c); ok {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		ls, _ := g.AcquireAll(bg(), "a")
		l2, _ := g.Acquire(bg(), "a")
		c1, c2 := ls.Value("a"), l2.Value()
		l2.Release()
		ls.Release() // idle: c1 on top, then c2
		time.Sleep(2 * time.Second)

		bad.Store(c1, true)
		l, err := g.Acquire(bg(), "a")
		if err != nil || l.Value() != c2 {
			t.Fatalf("Acquire = %v, %v; want the other idle connection", l, err)
		}
		l.Release()
		time.Sleep(2 * time.Second)
		bad.Store(c2, true)
		l, err = g.Acquire(bg(), "a")
		if err != nil || l.Value() == c1 || l.Value() == c2 {
			t.Fatalf("Acquire = %v, %v; want a new connection", l, err)
		}
		l.Release()
		synctest.Wait() // the closes run on goroutines of their own
		checkGroupInv(t, g)
		s := g.Stats().Keys["a"]
		if s.ClosedCheck != 2 || s.Acquires != 4 || s.Open != 1 || s.Waits != 3 { // waits: the two first opens, and the last
			t.Errorf("stats %+v", s)
		}
		if c := f.counts(); c.opens["a"] != 3 {
			t.Errorf("opens %d", c.opens["a"])
		}
	})
}

// TestGroupRetryAfterFailedCheckIsOneWait: a request that waits again
// because a connection failed its check still counts as one wait.
func TestGroupRetryAfterFailedCheckIsOneWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 4, CheckAfter: time.Second,
			Check: func(ctx context.Context, c *keyConn) error {
				if fail.Swap(false) {
					return errors.New("ping failed")
				}
				return nil
			}})
		l, _ := g.Acquire(bg(), "a")
		l.Release()
		time.Sleep(2 * time.Second)
		fail.Store(true)
		ls, err := g.AcquireAll(bg(), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		ls.Release()
		for _, k := range []string{"a", "b"} {
			if s := g.Stats().Keys[k]; s.Waits > s.Acquires {
				t.Errorf("key %s: Waits %d > Acquires %d", k, s.Waits, s.Acquires)
			}
		}
	})
}
