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

// TestGroupFIFOPerKey queues 20 goroutines one at a time on a key of
// PerKeyMax 1 and checks they are served in exactly that order.
func TestGroupFIFOPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: time.Hour})
		held, _ := g.Acquire(bg(), "k")
		other, err := g.Acquire(bg(), "other") // another key is not held up by k's line
		if err != nil {
			t.Fatal(err)
		}
		other.Release()
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				l, err := g.Acquire(bg(), "k")
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
			checkGroupInv(t, g)
		}
		if s := g.Stats(); s.WaitingForKey != 20 || s.Keys["k"].Waiting != 20 {
			t.Fatalf("waiting for key %d, want 20", s.WaitingForKey)
		}
		held.Release()
		wg.Wait()
		for i, got := range order {
			if got != i {
				t.Fatalf("served %v, want 0..19", order)
			}
		}
	})
}

// TestGroupGlobalFIFOAcrossKeys: with GlobalMax binding, waiters on
// different keys are served in arrival order, whatever their key, and a
// released connection whose place goes to another key is closed to open
// one for that key.
func TestGroupGlobalFIFOAcrossKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// PerKeyMax 3: every waiter below has its key's place, so all
		// wait in the global line.
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 2, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		keys := []string{"c", "a", "d", "a", "b", "c", "e", "b"}
		type served struct {
			i   int
			key string
		}
		got := make(chan served, len(keys))
		release := make([]chan struct{}, len(keys))
		var wg sync.WaitGroup
		for i, k := range keys {
			release[i] = make(chan struct{})
			wg.Go(func() {
				l, err := g.Acquire(bg(), k)
				if err != nil {
					t.Error(err)
					return
				}
				if l.Value().key != k {
					t.Errorf("waiter on %q got a connection of %q", k, l.Value().key)
				}
				got <- served{i, k}
				<-release[i]
				l.Release()
			})
			synctest.Wait()
			checkGroupInv(t, g)
		}
		if s := g.Stats(); s.WaitingForGlobal != len(keys) || s.Total.Waiting != len(keys) {
			t.Fatalf("waiting for global %d, want %d", s.WaitingForGlobal, len(keys))
		}
		// Free one place at a time: each goes to the oldest waiter, and
		// that waiter's lease is what frees the next.
		a.Release()
		for want := range keys {
			synctest.Wait()
			checkGroupInv(t, g)
			s := <-got
			if s.i != want {
				t.Fatalf("served waiter %d (%q), want %d (%q)", s.i, s.key, want, keys[want])
			}
			if want == 0 {
				b.Release()
				synctest.Wait()
				continue // c and a are both served now; take them in order
			}
			close(release[want-1])
		}
		close(release[len(keys)-1])
		wg.Wait()
		st := g.Stats()
		if st.Evictions == 0 {
			t.Error("no connection was evicted, yet keys took turns under GlobalMax 2")
		}
		c := f.counts()
		if int64(c.closes) != st.Evictions {
			t.Errorf("factory closed %d, evictions %d", c.closes, st.Evictions)
		}
		if st.Total.Acquires != int64(len(keys))+2 {
			t.Errorf("acquires %d", st.Total.Acquires)
		}
	})
}

// TestGroupEvictsIdleConnectionForAnotherKey: with GlobalMax connections
// open, a request on a new key closes the idle connection of another key
// to open its own, and a connection of key A released while the oldest
// waiter is on key B is closed and one opened for B.
func TestGroupEvictsIdleConnectionForAnotherKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 1, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		ca := a.Value()
		a.Release() // idle now

		b, err := g.Acquire(bg(), "b")
		if err != nil {
			t.Fatal(err)
		}
		if !ca.closed.Load() || b.Value().key != "b" {
			t.Fatalf("a's idle connection closed %v; got %q", ca.closed.Load(), b.Value().key)
		}
		checkGroupInv(t, g)

		got := make(chan *GroupLease[string, *keyConn])
		go func() {
			l, err := g.Acquire(bg(), "a")
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait()
		cb := b.Value()
		b.Release()
		l := <-got
		if !cb.closed.Load() || l.Value().key != "a" || l.Value() == ca {
			t.Errorf("b's connection closed %v; waiter on a got %q (old one: %v)", cb.closed.Load(), l.Value().key, l.Value() == ca)
		}
		l.Release()
		if s := g.Stats(); s.Evictions != 2 || s.Keys["a"].Opens != 2 || s.Keys["b"].Opens != 1 {
			t.Errorf("evictions %d, opens a %d b %d", s.Evictions, s.Keys["a"].Opens, s.Keys["b"].Opens)
		}
		if c := f.counts(); c.closes != 2 {
			t.Errorf("closes %d", c.closes)
		}
	})
}

// TestGroupNoKeyStarves: a key with endless traffic, and more of it than
// GlobalMax, cannot keep another key waiting: the other key's request is
// served after the hot requests that were already waiting, no later.
func TestGroupNoKeyStarves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hot = 6
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 4, GlobalMax: 2, AcquireTimeout: time.Hour})
		ctx, stop := context.WithCancel(bg())
		var hotServed atomic.Int64
		var wg sync.WaitGroup
		for range hot {
			wg.Go(func() {
				for ctx.Err() == nil {
					err := g.With(ctx, "hot", func(context.Context, *keyConn) error {
						hotServed.Add(1)
						time.Sleep(time.Millisecond)
						return nil
					})
					if err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
			})
		}
		// Mid-hold: every hot goroutine is asleep in fn or waiting in a
		// line, so nothing moves until cold has joined the global line.
		time.Sleep(10*time.Millisecond + 500*time.Microsecond)
		synctest.Wait()
		before := hotServed.Load()
		var after int64
		err := g.With(bg(), "cold", func(context.Context, *keyConn) error {
			after = hotServed.Load()
			return nil
		})
		stop()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		// Only the hot requests already in the global line when cold
		// arrived (two: the others of hot's PerKeyMax 4 were leased) go
		// first, and one more may be served at the instant cold is.
		if n := after - before; n > 3 {
			t.Errorf("%d hot requests served while cold waited, want at most 3", n)
		}
	})
}

// TestGroupMakesANewKeysPoolOnce: 1,000 goroutines ask for a new key at
// the same instant; exactly one pool is made and Open is called at most
// PerKeyMax times (seed 001).
func TestGroupMakesANewKeysPoolOnce(t *testing.T) {
	const n, perKey = 1000, 4
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: perKey, AcquireTimeout: time.Minute})
	start := make(chan struct{})
	var wg sync.WaitGroup
	var inUse, most atomic.Int64
	for range n {
		wg.Go(func() {
			<-start
			err := g.With(bg(), "tenant-42", func(_ context.Context, c *keyConn) error {
				now := inUse.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				inUse.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	s := g.Stats()
	if s.KeyPoolsCreated != 1 || s.KeyPools != 1 {
		t.Errorf("pools created %d, alive %d; want 1", s.KeyPoolsCreated, s.KeyPools)
	}
	if c := f.counts(); c.opens["tenant-42"] > perKey || c.opens["tenant-42"] == 0 {
		t.Errorf("Open called %d times, want 1..%d", c.opens["tenant-42"], perKey)
	}
	if most.Load() > perKey || s.Keys["tenant-42"].Acquires != n {
		t.Errorf("at most %d at once (limit %d), %d acquires", most.Load(), perKey, s.Keys["tenant-42"].Acquires)
	}
}

// TestGroupDropsIdleKeyPools: keys unused for KeyIdleTime lose their pool
// and their idle connections; their counters stay in Total; a key in use
// is kept; a dropped key used again gets a new pool.
func TestGroupDropsIdleKeyPools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, KeyIdleTime: time.Minute})
		for i := range 100 {
			if err := g.With(bg(), fmt.Sprint("tenant-", i), func(context.Context, *keyConn) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		busy, _ := g.Acquire(bg(), "busy")
		if s := g.Stats(); s.KeyPools != 101 || s.Total.Idle != 100 {
			t.Fatalf("pools %d, idle %d", s.KeyPools, s.Total.Idle)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if s := g.Stats(); s.KeyPools != 101 {
			t.Fatalf("pools dropped before KeyIdleTime: %d left", s.KeyPools)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		s := g.Stats()
		if s.KeyPools != 1 || s.KeyPoolsDropped != 100 || s.Total.Open != 1 || s.Total.Acquires != 101 || s.Total.ClosedIdleTime != 100 {
			t.Fatalf("after KeyIdleTime: pools %d, dropped %d, open %d, acquires %d, closed idle %d",
				s.KeyPools, s.KeyPoolsDropped, s.Total.Open, s.Total.Acquires, s.Total.ClosedIdleTime)
		}
		if _, ok := s.Keys["busy"]; !ok {
			t.Error("the key in use was dropped")
		}
		if c := f.counts(); c.closes != 100 || c.total != 1 {
			t.Errorf("factory closes %d, open %d", c.closes, c.total)
		}
		busy.Release()
		if err := g.With(bg(), "tenant-7", func(context.Context, *keyConn) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if s := g.Stats(); s.KeyPoolsCreated != 102 || s.Keys["tenant-7"].Acquires != 1 {
			t.Errorf("created %d, tenant-7 %+v", s.KeyPoolsCreated, s.Keys["tenant-7"])
		}
	})
}

// TestGroupAcquireAllTakesKeysInOrder: AcquireAll("c", "a", "b") takes a,
// then waits for b; it holds a meanwhile and has not touched c.
func TestGroupAcquireAllTakesKeysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: time.Hour})
		b, _ := g.Acquire(bg(), "b")
		got := make(chan *LeaseSet[string, *keyConn])
		go func() {
			ls, err := g.AcquireAll(bg(), "c", "a", "b")
			if err != nil {
				t.Error(err)
			}
			got <- ls
		}()
		synctest.Wait()
		checkGroupInv(t, g)
		if pa, pb, pc := g.placesOf("a"), g.placesOf("b"), g.placesOf("c"); pa != 1 || pb != 1 || pc != 0 {
			t.Errorf("places a %d, b %d, c %d; want a taken, b held by another, c untouched", pa, pb, pc)
		}
		if s := g.Stats(); s.Keys["b"].Waiting != 1 || s.Keys["a"].Waiting != 0 || s.Keys["c"].Waiting != 0 {
			t.Errorf("waiting a %d, b %d, c %d; want it in b's line only", s.Keys["a"].Waiting, s.Keys["b"].Waiting, s.Keys["c"].Waiting)
		}
		if _, err := g.Acquire(cancelled(), "a"); !errors.Is(err, context.Canceled) {
			t.Errorf("a was free while AcquireAll waited for b: %v", err)
		}
		b.Release()
		ls := <-got
		if keys := ls.Keys(); fmt.Sprint(keys) != "[a b c]" {
			t.Errorf("Keys() = %v", keys)
		}
		for _, k := range []string{"a", "b", "c"} {
			if ls.Value(k).key != k || ls.Lease(k).Key() != k {
				t.Errorf("key %q: got %q", k, ls.Value(k).key)
			}
		}
		if ls.Lease("z") != nil {
			t.Error("Lease of a key not in the set")
		}
		ls.Release()
		ls.Release()
		if s := g.Stats(); s.Total.InUse != 0 || s.Total.Acquires != 4 {
			t.Errorf("in use %d, acquires %d", s.Total.InUse, s.Total.Acquires)
		}
	})
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

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(bg())
	cancel()
	return ctx
}

// TestGroupAcquireAllIsAllOrNothing: a timeout, a cancel and a failed open
// each give back everything taken so far.
func TestGroupAcquireAllIsAllOrNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 4, AcquireTimeout: time.Second})
		held, _ := g.Acquire(bg(), "c")

		_, err := g.AcquireAll(bg(), "a", "b", "c", "d")
		var te *TimeoutError
		if !errors.Is(err, ErrTimeout) || !errors.As(err, &te) || te.Pool != "[c]" || te.MaxSize != 1 || te.InUse != 1 {
			t.Fatalf("AcquireAll = %v, want a timeout on c's line", err)
		}
		checkGroupInv(t, g)
		if s := g.Stats(); s.Total.InUse != 1 || s.Keys["a"].Timeouts != 1 || s.Total.Timeouts != 4 {
			t.Errorf("after timeout: in use %d, a's timeouts %d, total %d", s.Total.InUse, s.Keys["a"].Timeouts, s.Total.Timeouts)
		}

		ctx, cancel := context.WithCancel(bg())
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		if _, err := g.AcquireAll(ctx, "d", "c", "a"); !errors.Is(err, context.Canceled) || !errors.As(err, &te) {
			t.Fatalf("AcquireAll = %v, want canceled", err)
		}
		held.Release()

		f.setFail("e", errOpen)
		_, err = g.AcquireAll(bg(), "a", "b", "e")
		var oe *OpenError
		if !errors.As(err, &oe) || !errors.Is(err, errOpen) || oe.Pool != "[e]" {
			t.Fatalf("AcquireAll = %v, want the open error of e", err)
		}
		synctest.Wait()
		checkGroupInv(t, g)
		s := g.Stats()
		if s.Total.InUse != 0 || s.Total.Waiting != 0 || s.Keys["a"].Idle != 1 || s.Keys["b"].Idle != 1 {
			t.Errorf("everything should be back: %+v", s.Total)
		}
		ls, err := g.AcquireAll(bg(), "a", "b", "c", "d")
		if err != nil {
			t.Fatalf("all four after the failures: %v", err)
		}
		ls.Release()
	})
}

func TestGroupAcquireAllRejectsDuplicatesAndTooManyKeys(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 2})
	if _, err := g.AcquireAll(bg(), "a", "b", "a"); !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), "a") {
		t.Errorf("duplicate: %v", err)
	}
	if err := g.WithAll(bg(), []string{"x", "x"}, func(context.Context, []*keyConn) error { return nil }); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("WithAll duplicate: %v", err)
	}
	if _, err := g.AcquireAll(bg(), "a", "b", "c"); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("three keys under GlobalMax 2: %v", err)
	}
	ls, err := g.AcquireAll(bg())
	if err != nil || len(ls.Keys()) != 0 {
		t.Errorf("no keys: %v, %v", ls, err)
	}
	ls.Release()
	if s := g.Stats(); s.KeyPools != 0 {
		t.Errorf("rejected calls made %d pools", s.KeyPools)
	}
}

// TestGroupWithAllIsReentrant: inside WithAll, With on any of its keys and
// a nested WithAll overlapping them reuse the connections, even with
// PerKeyMax 1; conns come in the caller's order.
func TestGroupWithAllIsReentrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 3, AcquireTimeout: time.Second})
		err := g.WithAll(bg(), []string{"s2", "s0"}, func(ctx context.Context, conns []*keyConn) error {
			if conns[0].key != "s2" || conns[1].key != "s0" {
				t.Errorf("conns in order %q, %q", conns[0].key, conns[1].key)
			}
			err := g.With(ctx, "s2", func(ctx context.Context, c *keyConn) error {
				if c != conns[0] {
					t.Error("nested With got another connection")
				}
				return g.WithAll(ctx, []string{"s0", "s1"}, func(ctx context.Context, inner []*keyConn) error {
					if inner[0] != conns[1] || inner[1].key != "s1" {
						t.Error("nested WithAll did not reuse s0")
					}
					return g.With(ctx, "s1", func(_ context.Context, c *keyConn) error {
						if c != inner[1] {
							t.Error("With inside the nested WithAll got another s1")
						}
						return nil
					})
				})
			})
			if s := g.Stats(); s.Total.InUse != 2 {
				t.Errorf("nested WithAll left %d in use", s.Total.InUse)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if s := g.Stats(); s.Total.Acquires != 3 || s.Total.InUse != 0 || s.Total.Timeouts != 0 {
			t.Errorf("stats %+v", s.Total)
		}
		if c := f.counts(); c.totalOpens != 3 {
			t.Errorf("opens %d, want 3", c.totalOpens)
		}
	})
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
	if err != bad || !c1.closed.Load() {
		t.Errorf("With = %v, closed %v", err, c1.closed.Load())
	}
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
	if !conns[0].closed.Load() || !conns[1].closed.Load() {
		t.Error("WithAll did not discard after a panic")
	}
	err = g.WithAll(bg(), []string{"b", "c"}, func(ctx context.Context, cs []*keyConn) error {
		conns = cs
		return g.With(ctx, "b", func(context.Context, *keyConn) error { return bad })
	})
	if err != bad || !conns[0].closed.Load() || conns[1].closed.Load() {
		t.Errorf("WithAll = %v; b closed %v (want true), c closed %v (want false)", err, conns[0].closed.Load(), conns[1].closed.Load())
	}
	if s := g.Stats(); s.Total.ClosedDiscard != 4 || s.Total.InUse != 0 {
		t.Errorf("discards %d", s.Total.ClosedDiscard)
	}
	if c := f.counts(); c.closes != 4 {
		t.Errorf("closes %d", c.closes)
	}
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
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v with a lease out", err)
		default:
		}
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

// TestGroupAcquireAllKeepsItsOwnIdleConnection: when one key of an
// AcquireAll needs room under GlobalMax, the connection evicted is another
// key's idle one, never the idle connection another key of the same call
// is about to take (found in review).
func TestGroupAcquireAllKeepsItsOwnIdleConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 3, AcquireTimeout: time.Hour})
		lb, _ := g.Acquire(bg(), "b")
		cb := lb.Value()
		lb.Release() // b idle, the oldest idle
		time.Sleep(time.Second)
		ld, _ := g.Acquire(bg(), "d")
		ld.Release()
		lc, _ := g.Acquire(bg(), "c")
		defer lc.Release()
		ls, err := g.AcquireAll(bg(), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if ls.Value("b") != cb || cb.closed.Load() {
			t.Errorf("b's idle connection was evicted by its own AcquireAll (closed %v)", cb.closed.Load())
		}
		ls.Release()
		if s := g.Stats(); s.Evictions != 1 || s.Keys["b"].Opens != 1 {
			t.Errorf("evictions %d, opens of b %d; want 1 and 1", s.Evictions, s.Keys["b"].Opens)
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
