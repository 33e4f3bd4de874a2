package fairpool

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

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
		served := queueInTurn(t, 20, func() (*GroupLease[string, *keyConn], error) { return g.Acquire(bg(), "k") },
			func() { checkGroupInv(t, g) })
		if s := g.Stats(); s.WaitingForKey != 20 || s.Keys["k"].Waiting != 20 {
			t.Fatalf("waiting for key %d, want 20", s.WaitingForKey)
		}
		held.Release()
		wantFIFO(t, served())
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

		got := waitInLine(t, func() (*GroupLease[string, *keyConn], error) { return g.Acquire(bg(), "a") })
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
// PerKeyMax times (a key's first use is a race for its pool).
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

// TestGroupLIFOServesNewestOfKeyFirst: as TestLIFOServesNewestWaiterFirst,
// in a key's line for its places.
func TestGroupLIFOServesNewestOfKeyFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, WaitOrder: LIFO})
		held, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		served := queueInTurn(t, 5, func() (*GroupLease[string, *keyConn], error) { return g.Acquire(bg(), "a") }, func() {})
		held.Release()
		if order, want := served(), []int{4, 3, 2, 1, 0}; !equal(order, want) {
			t.Errorf("order %v, want %v", order, want)
		}
	})
}

// TestGroupLIFOServesNewestConnWaiterFirst: under LIFO, a connection
// opened for a key goes to the key's newest request waiting for one, even
// when the open was started for an older one.
func TestGroupLIFOServesNewestConnWaiterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, WaitOrder: LIFO})
		gate := make(chan struct{})
		f.mu.Lock()
		f.gate = gate
		f.mu.Unlock()
		got := make(chan int, 3)
		var wg sync.WaitGroup
		var ls [3]*GroupLease[string, *keyConn]
		for i := range 3 {
			wg.Go(func() {
				l, err := g.Acquire(bg(), "a")
				if err != nil {
					t.Error(err)
					return
				}
				ls[i] = l
				got <- i
			})
			synctest.Wait()
		}
		if w := g.KeyWaiters("a"); len(w) != 3 {
			t.Fatalf("KeyWaiters = %v, want 3 waiting for connections", w)
		}
		var order []int
		for range 3 {
			gate <- struct{}{} // one open ends
			synctest.Wait()
			order = append(order, <-got)
		}
		wg.Wait()
		if want := []int{2, 1, 0}; !equal(order, want) {
			t.Errorf("order %v, want %v", order, want)
		}
		for _, l := range ls {
			l.Release()
		}
	})
}

// TestGroupLIFOKeepsGlobalLineFIFO: WaitOrder orders each key's line only;
// requests of every key in the global line are served oldest first.
func TestGroupLIFOKeepsGlobalLineFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 1, MoveAfter: -1, WaitOrder: LIFO})
		held, err := g.Acquire(bg(), "x")
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, key := range []string{"a", "b", "a"} {
			wg.Go(func() {
				l, err := g.Acquire(bg(), key)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, fmt.Sprint(key, i))
				mu.Unlock()
				l.Release()
			})
			synctest.Wait()
		}
		held.Release()
		wg.Wait()
		checkGroupInv(t, g)
		if want := []string{"a0", "b1", "a2"}; !slices.Equal(order, want) {
			t.Errorf("order %v, want %v", order, want)
		}
	})
}
