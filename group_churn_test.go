package fairpool

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The hand-off rule of Group ("Connections"): a lease released with its
// connection, while GlobalMax connections exist, passes with it to the
// key's next request in the global line if that asks for the key alone,
// passing over the older head of the line, for at most the move bound from
// the first time the head is passed over; then the line is in order and a
// connection moves to the head.

// churnWaiter is a goroutine that acquires keys and holds them until told.
type churnWaiter struct {
	keys    []string
	got     chan []*keyConn // what it was given, once
	release chan struct{}
}

// startWaiter starts a waiter for keys (AcquireAll if more than one) and
// waits until it is served or blocked, so waiters reach the lines in the
// order they are started.
func startWaiter(t *testing.T, wg *sync.WaitGroup, g *testGroup, keys ...string) *churnWaiter {
	w := &churnWaiter{keys: keys, got: make(chan []*keyConn, 1), release: make(chan struct{})}
	wg.Go(func() {
		if len(keys) == 1 {
			l, err := g.Acquire(bg(), keys[0])
			if err != nil {
				t.Error(err)
				return
			}
			w.got <- []*keyConn{l.Value()}
			<-w.release
			l.Release()
			return
		}
		ls, err := g.AcquireAll(bg(), keys...)
		if err != nil {
			t.Error(err)
			return
		}
		var cs []*keyConn
		for _, k := range ls.Keys() { // ascending: the canonical order
			cs = append(cs, ls.Value(k))
		}
		w.got <- cs
		<-w.release
		ls.Release()
	})
	synctest.Wait()
	return w
}

// served reports what w was given, or nil if it still waits. Call after
// synctest.Wait.
func (w *churnWaiter) served() []*keyConn {
	select {
	case cs := <-w.got:
		w.got <- cs // keep it for the next look
		return cs
	default:
		return nil
	}
}

// TestGroupHandOnPassesHeadForBound: with a fixed MoveAfter, a released
// connection goes to the next waiter of its own key, past an older waiter
// of another key, for MoveAfter counted from the first pass; then a
// connection of a key that keeps another moves to the older waiter.
func TestGroupHandOnPassesHeadForBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 10 * time.Millisecond
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 3, MoveAfter: bound, AcquireTimeout: time.Hour})
		a1, _ := g.Acquire(bg(), "a")
		a2, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		ca := a1.Value()
		var wg sync.WaitGroup
		c := startWaiter(t, &wg, g, "c")  // head of the global line
		w1 := startWaiter(t, &wg, g, "a") // behind c: a's third place
		w2 := startWaiter(t, &wg, g, "a") // in a's line: its places are taken
		w3 := startWaiter(t, &wg, g, "a")
		if s := g.Stats(); s.WaitingForGlobal != 2 || s.WaitingForKey != 2 {
			t.Fatalf("waiting for global %d, for key %d; want 2 and 2", s.WaitingForGlobal, s.WaitingForKey)
		}

		a1.Release() // c is passed over from now; w2 joins the global line
		synctest.Wait()
		checkGroupInv(t, g)
		if got := w1.served(); got == nil || got[0] != ca {
			t.Fatalf("first waiter on a got %v, want a's released connection %d", got, ca.id)
		}
		if c.served() != nil || w2.served() != nil {
			t.Fatal("c or the second waiter on a served with nothing released for them")
		}

		time.Sleep(bound / 2)
		close(w1.release) // within the bound: w2 takes the same connection; w3 joins the line
		synctest.Wait()
		checkGroupInv(t, g)
		if got := w2.served(); got == nil || got[0] != ca {
			t.Fatalf("second waiter on a got %v, want connection %d again", got, ca.id)
		}
		if s := g.Stats(); s.Evictions != 0 || c.served() != nil {
			t.Fatalf("evictions %d, c served %v: nothing should have moved yet", s.Evictions, c.served() != nil)
		}

		time.Sleep(bound / 2)
		ca2 := a2.Value()
		a2.Release() // past the bound, and a keeps ca: in order, c is next, and ca2 moves
		synctest.Wait()
		checkGroupInv(t, g)
		if got := c.served(); got == nil || got[0].key != "c" {
			t.Fatalf("c got %v after waiting past the bound", got)
		}
		if !ca2.closed.Load() || w3.served() != nil {
			t.Fatalf("a's second connection closed %v, w3 served %v; want a move to c, w3 waiting", ca2.closed.Load(), w3.served() != nil)
		}
		close(w2.release) // w3 is a's next, and nobody passes it: it gets ca in order
		synctest.Wait()
		if got := w3.served(); got == nil || got[0] != ca {
			t.Fatalf("w3 got %v", got)
		}
		b.Release()
		close(c.release)
		close(w3.release)
		wg.Wait()
		if s, fc := g.Stats(), f.counts(); s.Evictions != 1 || fc.opens["a"] != 2 || fc.opens["c"] != 1 || s.Total.Acquires != 7 {
			t.Errorf("evictions %d, opens %v, acquires %d; want 1 eviction, a opened twice, c once, 7 acquires", s.Evictions, fc.opens, s.Total.Acquires)
		}
	})
}

// TestGroupHandOnPassesHeadForTwiceBound: a key's last connection moves
// only once the head has been passed over for twice the bound, so a key
// with more is the one to give one up if it releases first.
func TestGroupHandOnPassesHeadForTwiceBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 10 * time.Millisecond
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 2, MoveAfter: bound, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		ca := a.Value()
		var wg sync.WaitGroup
		c := startWaiter(t, &wg, g, "c")
		w1 := startWaiter(t, &wg, g, "a")
		w2 := startWaiter(t, &wg, g, "a")
		w3 := startWaiter(t, &wg, g, "a") // in a's line
		a.Release()                       // the clock starts
		synctest.Wait()
		if w1.served() == nil {
			t.Fatal("a's connection did not go to a's waiter")
		}
		time.Sleep(bound)
		close(w1.release) // past the bound, but ca is a's only connection
		synctest.Wait()
		checkGroupInv(t, g)
		if got := w2.served(); got == nil || got[0] != ca || c.served() != nil {
			t.Fatalf("w2 got %v, c served %v; want ca to stay with a", got, c.served() != nil)
		}
		time.Sleep(bound)
		close(w2.release) // twice the bound: ca moves
		synctest.Wait()
		checkGroupInv(t, g)
		if got := c.served(); got == nil || got[0].key != "c" || !ca.closed.Load() || w3.served() != nil {
			t.Fatalf("c got %v, ca closed %v, w3 served %v; want ca moved to c", got, ca.closed.Load(), w3.served() != nil)
		}
		b.Release() // w3 is the head: b's connection moves to a
		synctest.Wait()
		if got := w3.served(); got == nil || got[0].key != "a" {
			t.Fatalf("w3 got %v", got)
		}
		close(c.release)
		close(w3.release)
		wg.Wait()
		if s := g.Stats(); s.Evictions != 2 {
			t.Errorf("evictions %d, want 2", s.Evictions)
		}
	})
}

// TestGroupMoveAfterNegativeKeepsStrictOrder: MoveAfter < 0 is the order
// without hand-on: the released connection moves to the oldest waiter's
// key at once.
func TestGroupMoveAfterNegativeKeepsStrictOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 2, MoveAfter: -1, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		ca := a.Value()
		var wg sync.WaitGroup
		c := startWaiter(t, &wg, g, "c")
		a1 := startWaiter(t, &wg, g, "a")
		a.Release()
		synctest.Wait()
		checkGroupInv(t, g)
		if c.served() == nil || a1.served() != nil || !ca.closed.Load() {
			t.Fatalf("c served %v, a1 served %v, a's connection closed %v; want c first, by a move", c.served() != nil, a1.served() != nil, ca.closed.Load())
		}
		b.Release()
		close(c.release)
		close(a1.release)
		wg.Wait()
	})
}

// TestGroupMoveBoundFromOpenCost: with MoveAfter zero the bound is what a
// move has cost, measured: here Open takes 2 ms and Close nothing, so the
// head is passed over for 2 ms, no more.
func TestGroupMoveBoundFromOpenCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const openCost = 2 * time.Millisecond
		f := newKeyFactory(t, 3, 3)
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{
			// Counted live by the factory from the start of the open.
			Open: func(ctx context.Context, key string) (*keyConn, error) {
				c, err := f.Open(ctx, key)
				time.Sleep(openCost)
				return c, err
			},
			Close:     f.Close,
			PerKeyMax: 3, GlobalMax: 3, AcquireTimeout: time.Hour,
		})
		g.mu.Lock()
		bound := g.moveBoundLocked()
		g.mu.Unlock()
		if bound != 0 {
			t.Fatalf("move bound %v before any open: want 0, the line in order", bound)
		}
		a1, _ := g.Acquire(bg(), "a")
		a2, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		g.mu.Lock()
		bound = g.moveBoundLocked()
		g.mu.Unlock()
		if bound != openCost {
			t.Fatalf("move bound %v after three opens of %v and no close", bound, openCost)
		}
		var wg sync.WaitGroup
		c := startWaiter(t, &wg, g, "c")
		w1 := startWaiter(t, &wg, g, "a")
		w2 := startWaiter(t, &wg, g, "a")
		a1.Release()
		synctest.Wait()
		if w1.served() == nil || c.served() != nil {
			t.Fatal("a's connection did not go to a's waiter")
		}
		time.Sleep(openCost - time.Microsecond)
		close(w1.release)
		synctest.Wait()
		if w2.served() == nil || c.served() != nil {
			t.Fatal("within the bound, a's connection did not go to a's next waiter")
		}
		time.Sleep(time.Microsecond)
		ca2 := a2.Value()
		a2.Release()
		synctest.Wait() // ca2 closes; c's opens
		if !ca2.closed.Load() {
			t.Fatal("at the bound, a's connection was not moved to c")
		}
		time.Sleep(openCost)
		synctest.Wait()
		if got := c.served(); got == nil || got[0].key != "c" {
			t.Fatalf("c got %v", got)
		}
		checkGroupInv(t, g)
		b.Release()
		close(c.release)
		close(w2.release)
		wg.Wait()
	})
}

// TestGroupHandOnKeepsKeyOrder: a request for a single key is never handed
// a connection ahead of an older request in the global line that names the
// same key among others: per-key order holds, so there is no hand-on and
// the line is served in order.
func TestGroupHandOnKeepsKeyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 2, MoveAfter: time.Hour, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		var wg sync.WaitGroup
		c := startWaiter(t, &wg, g, "c")
		ad := startWaiter(t, &wg, g, "d", "a") // taken as a, d
		a1 := startWaiter(t, &wg, g, "a")
		a.Release() // a's next in the global line is ad: in order, c goes first
		synctest.Wait()
		checkGroupInv(t, g)
		if c.served() == nil || a1.served() != nil || ad.served() != nil {
			t.Fatalf("served c %v, a1 %v, ad %v; want c only", c.served() != nil, a1.served() != nil, ad.served() != nil)
		}
		close(c.release)
		synctest.Wait()
		b.Release()
		synctest.Wait()
		checkGroupInv(t, g)
		if got := ad.served(); got == nil || got[0].key != "a" || got[1].key != "d" || a1.served() != nil {
			t.Fatalf("AcquireAll got %v, a1 served %v; want a then d, a1 after", got, a1.served() != nil)
		}
		close(ad.release)
		synctest.Wait()
		if a1.served() == nil {
			t.Fatal("a1 not served")
		}
		close(a1.release)
		wg.Wait()
	})
}

// TestGroupHandOnPassesAcquireAllForBound: an AcquireAll at the head is
// passed over like any head, for the bound (twice: the connection released
// is its key's only one), then served all or nothing.
func TestGroupHandOnPassesAcquireAllForBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 10 * time.Millisecond
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 2, MoveAfter: bound, AcquireTimeout: time.Hour})
		a, _ := g.Acquire(bg(), "a")
		b, _ := g.Acquire(bg(), "b")
		var wg sync.WaitGroup
		cd := startWaiter(t, &wg, g, "d", "c")
		a1 := startWaiter(t, &wg, g, "a")
		a2 := startWaiter(t, &wg, g, "a")
		a.Release()
		synctest.Wait()
		if a1.served() == nil || cd.served() != nil {
			t.Fatal("a's connection did not go to a's waiter past the AcquireAll")
		}
		time.Sleep(2 * bound) // a's connection is its only one: twice the bound
		close(a1.release)     // past it: the lease waits for the head, which needs two
		synctest.Wait()
		checkGroupInv(t, g)
		if a2.served() != nil || cd.served() != nil {
			t.Fatalf("a2 served %v, AcquireAll served %v with one lease free", a2.served() != nil, cd.served() != nil)
		}
		b.Release()
		synctest.Wait()
		checkGroupInv(t, g)
		if got := cd.served(); got == nil || got[0].key != "c" || got[1].key != "d" || a2.served() != nil {
			t.Fatalf("AcquireAll got %v, a2 served %v", got, a2.served() != nil)
		}
		close(cd.release)
		synctest.Wait()
		if a2.served() == nil {
			t.Fatal("a2 not served")
		}
		close(a2.release)
		wg.Wait()
	})
}

// TestGroupNoKeyStarvesWithCostlyOpens is TestGroupNoKeyStarves with
// opens that cost time, so hand-on applies: a key with endless traffic
// keeps its connections but cannot keep another key waiting longer than
// the requests ahead of it in the global line, the bound, and a move.
func TestGroupNoKeyStarvesWithCostlyOpens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hot, hold, openCost = 6, time.Millisecond, 2 * time.Millisecond
		f := newKeyFactory(t, 4, 2)
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{
			Open: func(ctx context.Context, key string) (*keyConn, error) {
				c, err := f.Open(ctx, key)
				time.Sleep(openCost)
				return c, err
			},
			Close:     f.Close,
			PerKeyMax: 4, GlobalMax: 2, AcquireTimeout: time.Hour,
		})
		ctx, stop := context.WithCancel(bg())
		var hotServed atomic.Int64
		var wg sync.WaitGroup
		for range hot {
			wg.Go(func() {
				for ctx.Err() == nil {
					err := g.With(ctx, "hot", func(context.Context, *keyConn) error {
						hotServed.Add(1)
						time.Sleep(hold)
						return nil
					})
					if err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
			})
		}
		time.Sleep(20*time.Millisecond + hold/2)
		synctest.Wait()
		if s := g.Stats(); s.Keys["hot"].Opens != 2 {
			t.Errorf("hot opened %d connections, want 2: it keeps them", s.Keys["hot"].Opens)
		}
		t0 := time.Now()
		err := g.With(bg(), "cold", func(context.Context, *keyConn) error { return nil })
		waited := time.Since(t0)
		stop()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		// Ahead of cold: two hot requests in the global line (a hold), then
		// cold is passed over for the bound (an open), then waits for a
		// release (a hold) and the move (an open).
		if limit := 2*hold + 2*openCost; waited > limit {
			t.Errorf("cold waited %v, want at most %v", waited, limit)
		}
		t.Logf("cold waited %v; hot served %d", waited, hotServed.Load())
	})
}

// The churn workload of bench/group_churn_test.go, in a bubble: churnKeys
// keys with churnPerKey goroutines each, holding for churnHold, Open
// costing churnOpen, a Group of PerKeyMax 2 under GlobalMax 3, and a Pool
// of 3 for the same goroutines.
const (
	churnKeys   = 3
	churnPerKey = 3
	churnGlobal = 3
	churnHold   = time.Millisecond
	churnOpen   = 2 * time.Millisecond
	churnRun    = 500 * time.Millisecond
)

type churnResult struct {
	uses    [churnKeys]int64
	opens   int64
	maxOpen int64
	waits   []time.Duration
}

func (r *churnResult) total() (n int64) {
	for _, u := range r.uses {
		n += u
	}
	return n
}

func (r *churnResult) p99() time.Duration {
	return r.waits[int(math.Ceil(0.99*float64(len(r.waits))))-1]
}

// churnLive counts connections from the start of Open to the end of Close,
// and the most at once.
type churnLive struct{ live, most atomic.Int64 }

func (c *churnLive) up() {
	n := c.live.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
}

// runChurnWorkload runs the goroutines for churnRun of the bubble's time,
// starting those of each key once the previous key's have all blocked;
// acquire takes a connection for key k and returns its release. check, if
// set, runs every 100 µs meanwhile.
func runChurnWorkload(t *testing.T, acquire func(k int) (func(), error), check func()) *churnResult {
	r := &churnResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(churnRun)
	for k := range churnKeys {
		for range churnPerKey {
			wg.Go(func() {
				for time.Now().Before(stop) {
					t0 := time.Now()
					release, err := acquire(k)
					if err != nil {
						t.Error(err)
						return
					}
					waited := time.Since(t0)
					time.Sleep(churnHold)
					release()
					mu.Lock()
					r.uses[k]++
					r.waits = append(r.waits, waited)
					mu.Unlock()
				}
			})
		}
		// Key by key: the first key takes two of the three connections,
		// the second the third, and the last must have one moved to it.
		synctest.Wait()
	}
	if check != nil {
		for time.Now().Before(stop) {
			time.Sleep(100 * time.Microsecond)
			check()
		}
	}
	wg.Wait()
	slices.Sort(r.waits)
	return r
}

// TestGroupChurnAgainstPool is the churn experiment in a bubble, where time
// is exact: the Group keeps its connections (opens at most 5% of uses),
// serves at least 80% of what the Pool does, gives each key 25-42% of the
// uses, keeps p99 wait within 3x the Pool's, and never has more than
// GlobalMax connections, opening and closing ones included.
func TestGroupChurnAgainstPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gl churnLive
		f := newKeyFactory(t, 2, churnGlobal)
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{
			Open: func(ctx context.Context, key string) (*keyConn, error) {
				gl.up()
				c, err := f.Open(ctx, key)
				time.Sleep(churnOpen)
				return c, err
			},
			Close: func(c *keyConn) error {
				defer gl.live.Add(-1)
				return f.Close(c)
			},
			PerKeyMax: 2, GlobalMax: churnGlobal, AcquireTimeout: time.Minute,
		})
		keys := []string{"k0", "k1", "k2"}
		gr := runChurnWorkload(t, func(k int) (func(), error) {
			l, err := g.Acquire(bg(), keys[k])
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}, func() { checkGroupInv(t, g) })
		gs := g.Stats()
		gr.opens = gs.Total.Opens
		gr.maxOpen = gl.most.Load()

		var pl churnLive
		pf := newFactory(t, churnGlobal)
		p := newTestPoolWith(t, pf, Config[*fakeConn]{
			Open: func(ctx context.Context) (*fakeConn, error) {
				pl.up()
				c, err := pf.Open(ctx)
				time.Sleep(churnOpen)
				return c, err
			},
			Close: func(c *fakeConn) error {
				defer pl.live.Add(-1)
				return pf.Close(c)
			},
			MaxSize: churnGlobal, AcquireTimeout: time.Minute,
		})
		pr := runChurnWorkload(t, func(int) (func(), error) {
			l, err := p.Acquire(bg())
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}, nil)
		pr.opens = int64(pf.counts().opens)
		pr.maxOpen = pl.most.Load()

		t.Logf("group: uses %d %v, opens %d, evictions %d, p99 wait %v, max open %d", gr.total(), gr.uses, gr.opens, gs.Evictions, gr.p99(), gr.maxOpen)
		t.Logf("pool:  uses %d %v, opens %d, p99 wait %v, max open %d", pr.total(), pr.uses, pr.opens, pr.p99(), pr.maxOpen)
		if gr.opens*20 > gr.total() {
			t.Errorf("group opened %d connections for %d uses, want at most 5%%", gr.opens, gr.total())
		}
		if gr.total()*10 < pr.total()*8 {
			t.Errorf("group served %d, the pool %d: want at least 80%%", gr.total(), pr.total())
		}
		for k, u := range gr.uses {
			if share := float64(u) / float64(gr.total()); share < 0.25 || share > 0.42 {
				t.Errorf("key %d got %.1f%% of the uses, want 25-42%%", k, 100*share)
			}
		}
		if gr.p99() > 3*pr.p99() {
			t.Errorf("group p99 wait %v, more than 3x the pool's %v", gr.p99(), pr.p99())
		}
		if gr.maxOpen > churnGlobal || pr.maxOpen > churnGlobal {
			t.Errorf("connections at once: group %d, pool %d; limit %d", gr.maxOpen, pr.maxOpen, churnGlobal)
		}
	})
}
