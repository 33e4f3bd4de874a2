package fairpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestGroupTryAcquireNoBarging: as TestNoBarging for a pool. The key's only
// connection, released while a request waits in the key's line, goes to
// that request in the same instant: a newcomer's TryAcquire finds nothing
// and opens nothing (the key is at PerKeyMax). Once nobody waits it
// succeeds.
func TestGroupTryAcquireNoBarging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, Name: "g"})
		held, _ := g.Acquire(bg(), "a")
		got := waitInLine(t, func() (*GroupLease[string, *keyConn], error) { return g.Acquire(bg(), "a") })
		held.Release()
		if l, err := g.TryAcquire(bg(), "a"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("newcomer TryAcquire = %v, %v; want ErrExhausted", l, err)
		}
		(<-got).Release()
		l, err := g.TryAcquire(bg(), "a")
		if err != nil {
			t.Fatalf("TryAcquire with nobody waiting: %v", err)
		}
		if l.Key() != "a" || l.Value().key != "a" {
			t.Errorf("lease of key %q on a connection of %q", l.Key(), l.Value().key)
		}
		l.Release()
		synctest.Wait()
		if c := f.counts(); c.opens["a"] != 1 {
			t.Errorf("opens %v, want 1: no open at PerKeyMax", c.opens)
		}
		if s := g.Stats().Keys["a"]; s.Acquires != 3 || s.Waits != 2 {
			t.Errorf("stats %+v: want 3 acquires, 2 waits (a failed TryAcquire counts nothing)", s)
		}
	})
}

// TestGroupTryAcquireNeverJumpsTheGlobalLine: a key with an idle connection
// and room under both limits is still refused while a request waits in the
// global line (an AcquireAll whose two keys do not fit yet): that request
// would be passed. Once it is served and gone, TryAcquire works again.
func TestGroupTryAcquireNeverJumpsTheGlobalLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 3, KeyIdleTime: -1})
		a, _ := g.Acquire(bg(), "a")
		d, _ := g.Acquire(bg(), "d")
		c, _ := g.Acquire(bg(), "c")
		c.Release() // c idle; 2 of 3 leases out
		done := make(chan struct{})
		go func() {
			defer close(done)
			ls, err := g.AcquireAll(bg(), "x", "y") // needs 2 of GlobalMax at once: waits
			if err != nil {
				t.Error(err)
				return
			}
			ls.Release()
		}()
		synctest.Wait()
		if s := g.Stats(); s.WaitingForGlobal != 1 || s.Keys["c"].Idle != 1 {
			t.Fatalf("stats %+v: want one request in the global line and c idle", s)
		}
		if _, err := g.TryAcquire(bg(), "c"); !errors.Is(err, ErrExhausted) {
			t.Errorf("TryAcquire past the global line = %v, want ErrExhausted", err)
		}
		checkGroupInv(t, g)
		d.Release()
		<-done
		synctest.Wait()
		l, err := g.TryAcquire(bg(), "x")
		if err != nil {
			t.Fatalf("TryAcquire with nobody waiting: %v", err)
		}
		l.Release()
		a.Release()
	})
}

// TestGroupTryAcquireOpensInBackground: as Pool's. A TryAcquire that finds
// nothing idle fails naming the key's pool and opens one connection for a
// later call; a request that comes to wait while that open runs gets its
// connection, and no second open starts for it. It opens only with room
// under PerKeyMax and GlobalMax, never evicting another key's idle
// connection to make some.
func TestGroupTryAcquireOpensInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 2, Name: "bg", KeyIdleTime: -1})
		open := gate(f)
		_, err := g.TryAcquire(bg(), "d")
		if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), `"bg[d]"`) {
			t.Fatalf("first TryAcquire = %v, want ErrExhausted naming the key's pool", err)
		}
		got := waitInLine(t, func() (*GroupLease[string, *keyConn], error) { return g.Acquire(bg(), "d") })
		if s, _ := g.KeyStats("d"); s.Opening != 1 || s.Waiting != 1 {
			t.Errorf("key d %+v: want the one open and the one waiter", s)
		}
		checkGroupInv(t, g)
		open()
		l := <-got
		if l.Value().key != "d" {
			t.Errorf("got a connection of %q", l.Value().key)
		}
		l.Release()

		if _, err := g.TryAcquire(bg(), "a"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("TryAcquire of a = %v", err)
		}
		synctest.Wait()
		la, err := g.TryAcquire(bg(), "a")
		if err != nil {
			t.Fatalf("TryAcquire after background open: %v", err)
		}
		// a is at PerKeyMax: no open.
		if _, err := g.TryAcquire(bg(), "a"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("TryAcquire at PerKeyMax = %v", err)
		}
		// GlobalMax connections (a leased, d idle): no open, no eviction.
		if _, err := g.TryAcquire(bg(), "c"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("TryAcquire with GlobalMax connections = %v", err)
		}
		synctest.Wait()
		if s := g.Stats(); s.Evictions != 0 || s.Keys["d"].Idle != 1 {
			t.Errorf("stats %+v: want d's connection kept", s)
		}
		// GlobalMax leases: no open either.
		lb, _ := g.Acquire(bg(), "b") // evicts d's
		if _, err := g.TryAcquire(bg(), "c"); !errors.Is(err, ErrExhausted) {
			t.Fatalf("TryAcquire at GlobalMax = %v", err)
		}
		synctest.Wait()
		if c := f.counts(); c.opens["d"] != 1 || c.opens["a"] != 1 || c.opens["c"] != 0 {
			t.Errorf("opens %v, want one of d and a, none of c", c.opens)
		}
		checkGroupInv(t, g)
		la.Release()
		lb.Release()
	})
}

// TestGroupTryAcquireCheckIsBoundedLikeAcquire: as Pool's. A connection due
// for a check is checked; a Check that blocks ends TryAcquire at
// AcquireTimeout with a TimeoutError, and the connection is kept.
func TestGroupTryAcquireCheckIsBoundedLikeAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, CheckAfter: time.Millisecond, AcquireTimeout: time.Second,
			Check: func(ctx context.Context, _ *keyConn) error { <-ctx.Done(); return ctx.Err() }})
		idleConn(t, g, "a", time.Second)
		start := time.Now()
		l, err := g.TryAcquire(bg(), "a")
		if err == nil {
			l.Release()
		}
		if d := time.Since(start); !errors.Is(err, ErrTimeout) || d != time.Second {
			t.Errorf("TryAcquire = %v after %v, want ErrTimeout after AcquireTimeout (1s)", err, d)
		}
		synctest.Wait()
		if s, _ := g.KeyStats("a"); s.Idle != 1 || s.ClosedCheck != 0 || s.Timeouts != 1 || s.Acquires != 1 {
			t.Errorf("stats %+v: want the connection kept and one timeout", s)
		}
	})
}

// TestGroupTryAcquireFailedCheckTriesTheNextIdle: a connection that fails
// its check is closed and the next idle one is checked, all within one
// AcquireTimeout; with none left TryAcquire fails, counts no acquire, and
// opens a replacement for a later call, the key having room for one.
func TestGroupTryAcquireFailedCheckTriesTheNextIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bad sync.Map // *keyConn → its Check fails
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, CheckAfter: time.Millisecond, AcquireTimeout: time.Second,
			Check: func(_ context.Context, c *keyConn) error {
				time.Sleep(100 * time.Millisecond)
				if _, ok := bad.Load(c); ok {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		ls, _ := g.AcquireAll(bg(), "a")
		l2, _ := g.Acquire(bg(), "a")
		good := ls.Value("a")
		bad.Store(l2.Value(), true)
		ls.Release()
		l2.Release() // idle, most recent first: the bad one is tried first
		time.Sleep(time.Second)
		start := time.Now()
		l, err := g.TryAcquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if l.Value() != good || time.Since(start) != 200*time.Millisecond {
			t.Errorf("got conn %d after %v, want the good one after two checks", l.Value().id, time.Since(start))
		}
		bad.Store(good, true)
		l.Release()
		time.Sleep(time.Second)
		if _, err := g.TryAcquire(bg(), "a"); !errors.Is(err, ErrExhausted) {
			t.Errorf("TryAcquire with every idle connection failing = %v, want ErrExhausted", err)
		}
		synctest.Wait()
		checkGroupInv(t, g)
		if s, _ := g.KeyStats("a"); s.Acquires != 3 || s.ClosedCheck != 2 || s.Opens != 3 || s.Idle != 1 || s.InUse != 0 {
			t.Errorf("stats %+v: want 3 acquires, 2 closed by Check, 1 opened in the background", s)
		}
	})
}

// TestGroupTryAcquireEndedContextAndClose: a context that has ended gets
// its error and nothing is checked; after Close, ErrClosed.
func TestGroupTryAcquireEndedContextAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var checks atomic.Int64
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, CheckAfter: time.Millisecond, Name: "g",
			Check: func(context.Context, *keyConn) error { checks.Add(1); return nil }})
		idleConn(t, g, "a", time.Second)
		ctx, cancel := context.WithCancel(bg())
		cancel()
		var te *TimeoutError
		if _, err := g.TryAcquire(ctx, "a"); !errors.Is(err, context.Canceled) || !errors.As(err, &te) || te.Pool != "g[a]" {
			t.Errorf("TryAcquire with an ended context = %v", err)
		}
		if checks.Load() != 0 {
			t.Error("a Check ran for a caller that had given up")
		}
		if err := g.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if _, err := g.TryAcquire(bg(), "a"); !errors.Is(err, ErrClosed) {
			t.Errorf("TryAcquire after Close = %v, want ErrClosed", err)
		}
	})
}

// TestGroupTryAcquireAllocatesOnlyTheLease pins the cost of TryAcquire's
// success, as Acquire's: one allocation, the lease.
func TestGroupTryAcquireAllocatesOnlyTheLease(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 10})
	l, _ := g.Acquire(bg(), "a")
	l.Release()
	allocs := testing.AllocsPerRun(1000, func() {
		l, err := g.TryAcquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
	if allocs != 1 {
		t.Errorf("%v allocations per TryAcquire and Release, want 1", allocs)
	}
}

// TestGroupRequireUsesTheBoundLeaseOrFails: as Pool's, per key: Require
// finds the connection With or WithAll bound to the context for that key,
// and otherwise fails with ErrNoLease naming the key's pool, without
// taking a connection.
func TestGroupRequireUsesTheBoundLeaseOrFails(t *testing.T) {
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, Name: "req"})
	called := false
	err := g.Require(bg(), "a", func(context.Context, *keyConn) error { called = true; return nil })
	if !errors.Is(err, ErrNoLease) || called || !strings.Contains(err.Error(), `"req[a]"`) {
		t.Errorf("Require without With = %v, called %v", err, called)
	}
	if s := g.Stats().Total; s.Open != 0 || s.Acquires != 0 {
		t.Errorf("Require took a connection: %+v", s)
	}
	var stale context.Context
	g.With(bg(), "a", func(ctx context.Context, c *keyConn) error {
		stale = ctx
		if err := g.Require(ctx, "b", func(context.Context, *keyConn) error { return nil }); !errors.Is(err, ErrNoLease) {
			t.Errorf("Require of another key = %v, want ErrNoLease", err)
		}
		return g.Require(ctx, "a", func(_ context.Context, c2 *keyConn) error {
			if c2 != c {
				t.Error("Require got another connection")
			}
			return nil
		})
	})
	if err := g.Require(stale, "a", func(context.Context, *keyConn) error { return nil }); !errors.Is(err, ErrNoLease) {
		t.Errorf("Require after the With returned = %v", err)
	}
	err = g.WithAll(bg(), []string{"b", "a"}, func(ctx context.Context, cs []*keyConn) error {
		for i, k := range []string{"b", "a"} {
			if err := g.Require(ctx, k, func(_ context.Context, c *keyConn) error {
				if c != cs[i] {
					t.Errorf("Require(%s) got another connection", k)
				}
				return nil
			}); err != nil {
				t.Errorf("Require(%s) in WithAll: %v", k, err)
			}
		}
		// A broken connection reported through Require is discarded by
		// WithAll, alone.
		return g.Require(ctx, "b", func(context.Context, *keyConn) error { return ErrBadConn })
	})
	if !errors.Is(err, ErrBadConn) {
		t.Errorf("WithAll = %v, want fn's ErrBadConn", err)
	}
	s := g.Stats()
	if s.Keys["b"].ClosedDiscard != 1 || s.Keys["a"].ClosedDiscard != 0 || s.Keys["a"].Idle != 1 {
		t.Errorf("after ErrBadConn from Require of b: a %+v, b %+v; want only b's discarded", s.Keys["a"], s.Keys["b"])
	}
	if c := f.counts(); c.opens["a"] != 1 {
		t.Errorf("opens %v", c.opens)
	}
}

// TestGroupWaitersInServingOrder: as Pool's, for one key through its
// three stages: the request past both lines waiting for its connection
// (opened, slowly) comes first, then the one holding the key's place in
// the global line, then the one in the key's line. An AcquireAll in the
// global line is listed under each of its keys; one in a key's line only
// under that key.
func TestGroupWaitersInServingOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 2, KeyIdleTime: -1, AcquireTimeout: time.Minute})
		lb, _ := g.Acquire(bg(), "b")
		open := gate(f)
		var wg sync.WaitGroup
		for _, keys := range [][]string{
			{"a"},      // t=0: a's place, GlobalMax's second lease, waits for the open
			{"a"},      // t=1: a's second place, waits in the global line
			{"a"},      // t=2: waits for a place on a
			{"b", "c"}, // t=3: places on b and c, waits in the global line
			{"a", "d"}, // t=4: waits for a place on a, has not reached d
		} {
			wg.Go(func() {
				ls, err := g.AcquireAll(bg(), keys...)
				if err != nil {
					t.Error(err)
					return
				}
				ls.Release()
			})
			time.Sleep(time.Second)
		}
		s := time.Second
		for key, want := range map[string][]time.Duration{
			"a": {5 * s, 4 * s, 3 * s, s},
			"b": {2 * s},
			"c": {2 * s},
			"d": {},
			"x": {}, // no pool
		} {
			got := g.KeyWaiters(key)
			if got == nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Waiters(%s) = %v, want %v", key, got, want)
			}
			if st, _ := g.KeyStats(key); st.Waiting != len(got) {
				t.Errorf("KeyStats(%s).Waiting = %d, Waiters lists %d", key, st.Waiting, len(got))
			}
		}
		// The whole group: every request once, longest wait first.
		all := g.Waiters()
		if n := g.Stats().Total.Waiting; len(all) != n || len(all) == 0 || all[0] != 5*s ||
			!slices.IsSortedFunc(all, func(a, b time.Duration) int { return cmp.Compare(b, a) }) {
			t.Errorf("Waiters() = %v, want every one of the %d waiting, longest first", all, n)
		}
		checkGroupInv(t, g)
		open()
		lb.Release()
		wg.Wait()
	})
}
