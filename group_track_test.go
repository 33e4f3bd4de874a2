package fairpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// checkTracking takes mu and reports the first record that does not match
// a lease out: every record is filed under a key that has a pool, no key
// has more records than places taken, and the group no more than leases.
func (g *Group[K, T]) checkTracking() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	perKey := map[*shard[K, T]]int{}
	for r, s := range g.tracking.held {
		if g.shards[s.key] != s || s.dropped {
			return fmt.Errorf("record of a lease on %v filed under a shard not in the group", s.key)
		}
		if r.gid <= 0 || r.caller == "" || r.caller == "unknown" {
			return fmt.Errorf("record of a lease on %v: goroutine %d, caller %q", s.key, r.gid, r.caller)
		}
		perKey[s]++
	}
	for s, n := range perKey {
		if n > s.places {
			return fmt.Errorf("key %v: %d leases recorded, %d places taken", s.key, n, s.places)
		}
	}
	if n := len(g.tracking.held); n > g.leases {
		return fmt.Errorf("%d leases recorded, %d taken under GlobalMax", n, g.leases)
	}
	return nil
}

func TestGroupLeakThresholdIsValidatedAndImpliesTracking(t *testing.T) {
	_, err := NewGroup(GroupConfig[string, *keyConn]{Open: newKeyFactory(t, 1, 0).Open, PerKeyMax: 1, LeakThreshold: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "GroupConfig.LeakThreshold") {
		t.Errorf("negative LeakThreshold: %v", err)
	}
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, LeakThreshold: time.Hour})
	l, _ := g.Acquire(bg(), "a")
	if hs := g.Holders(); len(hs) != 1 || hs[0].Key != "a" {
		t.Errorf("Holders() = %+v with only LeakThreshold set, want the lease on a", hs)
	}
	l.Release()
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("Holders() = %+v after Release", hs)
	}
}

// TestGroupHoldersNameCallSites: each way of taking a lease records the
// caller's own line, not one inside the Group, and the key.
func TestGroupHoldersNameCallSites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true})
		var sites []string
		sites = append(sites, here())
		l, _ := g.Acquire(bg(), "a")
		time.Sleep(time.Second)
		sites = append(sites, here())
		ls, _ := g.AcquireAll(bg(), "c", "b")
		time.Sleep(time.Second)
		sites = append(sites, here())
		g.With(bg(), "d", func(ctx context.Context, _ *keyConn) error {
			time.Sleep(time.Second)
			sites = append(sites, here())
			return g.WithAll(ctx, []string{"d", "e"}, func(context.Context, []*keyConn) error {
				hs := g.Holders()
				want := []struct {
					key, site string
					held      time.Duration
				}{{"a", sites[0], 3 * time.Second}, {"b", sites[1], 2 * time.Second}, {"c", sites[1], 2 * time.Second}, {"d", sites[2], time.Second}, {"e", sites[3], 0}}
				if len(hs) != len(want) {
					t.Fatalf("Holders() = %+v, want %d", hs, len(want))
				}
				for i, w := range want {
					if h := hs[i]; h.Key != w.key || h.Caller != w.site || h.HeldFor != w.held || !strings.Contains(h.Stack, "TestGroupHoldersNameCallSites") {
						t.Errorf("holder %d: key %q at %s for %v, want %q at %s for %v", i, h.Key, h.Caller, h.HeldFor, w.key, w.site, w.held)
					}
				}
				return nil
			})
		})
		ls.Release()
		l.Release()
	})
}

func TestGroupCallerOfSkipsGroupFrames(t *testing.T) {
	wantCallerOfHandler(t, []string{
		"github.com/fairpool/fairpool.(*Group[...]).acquire(0x1) /src/group_lease.go:20",
		"github.com/fairpool/fairpool.(*Group[...]).With(0x1) /src/group_lease.go:30",
	}, []string{
		"github.com/fairpool/fairpool.runLease[...](0x1) /src/group_lease.go:40",
		"github.com/fairpool/fairpool.(*Group[...]).WithAll.func1(0x1) /src/group_all.go:50",
	})
}

func groupLeakyHandler(g *testGroup) (*GroupLease[string, *keyConn], string) {
	site := here()
	l, _ := g.Acquire(bg(), "a")
	return l, site
}

func TestGroupLeakWarnedOnceWithAcquiringStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, LeakThreshold: time.Second, Logger: slog.New(rec), Name: "db"})
		l, site := groupLeakyHandler(g)
		short, _ := g.Acquire(bg(), "b")
		a := leakWarnedOnce(t, rec, site, short.Release, "groupLeakyHandler", "TestGroupLeakWarnedOnceWithAcquiringStack")
		if a["pool"].String() != "db" || a["key"].String() != "a" {
			t.Errorf("pool %v, key %v", a["pool"], a["key"])
		}
		s := g.Stats()
		if s.Total.Leaks != 1 || s.Keys["a"].Leaks != 1 || s.Keys["b"].Leaks != 0 {
			t.Errorf("Leaks: total %d, a %d, b %d; want 1, 1, 0", s.Total.Leaks, s.Keys["a"].Leaks, s.Keys["b"].Leaks)
		}
		if ks, _ := g.KeyStats("a"); ks.Leaks != 1 {
			t.Errorf("KeyStats(a).Leaks = %d", ks.Leaks)
		}
		l.Release()
	})
}

func dropGroupLease(g *testGroup, key string) *keyConn {
	l, _ := g.Acquire(bg(), key)
	return l.Value() // the GroupLease itself is dropped here
}

// TestGroupDroppedLeaseIsReclaimedByGC: a GroupLease that becomes
// unreachable without Release has its connection closed, and its key's
// place and its share of GlobalMax freed, once the garbage collector
// finds it: the next acquires, of that key and of another, do not wait
// out their timeout.
func TestGroupDroppedLeaseIsReclaimedByGC(t *testing.T) {
	rec := &recorder{}
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 1, TrackLeases: true, AcquireTimeout: time.Minute, Logger: slog.New(rec), Name: "g"})
	c := dropGroupLease(g, "a")
	waitFor(t, "reclaim", func() bool {
		runtime.GC()
		return g.Stats().Total.Reclaims == 1
	})
	if !c.closed.Load() {
		waitFor(t, "the reclaimed connection's close", func() bool { return c.closed.Load() })
	}
	ctx, cancel := context.WithTimeout(bg(), time.Second)
	defer cancel()
	lb, err := g.Acquire(ctx, "b") // needs the share of GlobalMax
	if err != nil {
		t.Fatalf("Acquire of another key after reclaim: %v", err)
	}
	lb.Release()
	la, err := g.Acquire(ctx, "a") // needs a's place
	if err != nil {
		t.Fatalf("Acquire of the same key after reclaim: %v", err)
	}
	if la.Value() == c {
		t.Error("reclaimed connection handed out again")
	}
	la.Release()
	s := g.Stats()
	if s.Keys["a"].Reclaims != 1 || s.Keys["a"].ClosedReclaim != 1 || s.Keys["b"].Reclaims != 0 || s.Total.ClosedReclaim != 1 {
		t.Errorf("stats %+v: want one reclaim, of a", s)
	}
	_, attrs := rec.find("fairpool: lease dropped without Release; connection closed")
	if len(attrs) != 1 || !strings.Contains(attrs[0]["stack"].String(), "dropGroupLease") || attrs[0]["key"].String() != "a" || attrs[0]["pool"].String() != "g" {
		t.Errorf("reclaim log: %v", attrs)
	}
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("Holders() after reclaim = %+v", hs)
	}
	if cnt := f.counts(); cnt.opens["a"] != 2 {
		t.Errorf("factory %+v: want a opened again", cnt)
	}
}

func dropLeaseSet(g *testGroup) {
	ls, _ := g.AcquireAll(bg(), "b", "a")
	_ = ls // dropped, and with it both leases
}

func TestGroupDroppedLeaseSetIsReclaimedByGC(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 2, TrackLeases: true, AcquireTimeout: time.Minute})
	dropLeaseSet(g)
	waitFor(t, "reclaim of both leases", func() bool {
		runtime.GC()
		return g.Stats().Total.Reclaims == 2
	})
	ctx, cancel := context.WithTimeout(bg(), time.Second)
	defer cancel()
	ls, err := g.AcquireAll(ctx, "a", "b")
	if err != nil {
		t.Fatalf("AcquireAll after reclaim: %v", err)
	}
	ls.Release()
	if s := g.Stats(); s.Keys["a"].Reclaims != 1 || s.Keys["b"].Reclaims != 1 {
		t.Errorf("reclaims a %d, b %d; want one each", s.Keys["a"].Reclaims, s.Keys["b"].Reclaims)
	}
}

// TestGroupReclaimCountsAsAClose: a connection closed because its lease
// was dropped counts under exactly one close reason, like every other
// close, and the group's count of connections comes back to zero.
func TestGroupReclaimCountsAsAClose(t *testing.T) {
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true})
	func() {
		l, _ := g.Acquire(bg(), "a")
		_ = l // dropped
	}()
	waitFor(t, "the dropped lease to be reclaimed", func() bool {
		runtime.GC()
		s := g.Stats().Total
		return s.Reclaims == 1 && s.Open == 0
	})
	s := g.Stats().Total
	closes := s.ClosedLifetime + s.ClosedIdleTime + s.ClosedCheck + s.ClosedReset + s.ClosedDiscard + s.ClosedOverIdle + s.ClosedByClose + s.ClosedEvicted + s.ClosedReclaim
	if s.ClosedReclaim != 1 || closes != 1 || int64(f.counts().closes) != closes || s.InUse != 0 {
		t.Errorf("stats %+v: want the reclaim counted as one close", s)
	}
}

// TestGroupReclaimClosesOffTheCleanupGoroutine: the runtime runs every
// cleanup in the program on a few goroutines of its own. A reclaimed
// lease's Close must not run there: one slow Close would hold up the
// reclaim of another group's dropped lease, whose place is then lost to
// its waiters for as long.
func TestGroupReclaimClosesOffTheCleanupGoroutine(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	// No sweeper (KeyIdleTime -1): each group's cleanup checks that no
	// goroutine of any group is left, and runs while the other is open.
	fa := newKeyFactory(t, 1, 0)
	closeA, closeStack := recordingClose(block, fa.Close)
	ga, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true, KeyIdleTime: -1, Open: fa.Open, Close: closeA})
	gb, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true, KeyIdleTime: -1})

	func() { l, _ := ga.Acquire(bg(), "a"); _ = l }() // dropped
	waitFor(t, "group A's reclaim to reach Close", func() bool {
		runtime.GC()
		return closeStack() != ""
	})
	if s := closeStack(); onCleanupGoroutine(s) {
		t.Errorf("Close of a reclaimed lease runs on the runtime's cleanup goroutine:\n%s", s)
	}

	func() { l, _ := gb.Acquire(bg(), "a"); _ = l }() // dropped too
	waitFor(t, "group B's reclaim while group A's Close blocks", func() bool {
		runtime.GC()
		return gb.Stats().Total.Reclaims == 1
	})
}

// TestGroupReleasedLeaseIsNotReclaimed: a released lease collected later
// must not touch the connection, now someone else's.
func TestGroupReleasedLeaseIsNotReclaimed(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true})
	func() {
		l, _ := g.Acquire(bg(), "a")
		l.Release()
		ls, _ := g.AcquireAll(bg(), "b", "c")
		ls.Lease("b").Discard()
		ls.Release()
	}()
	held, _ := g.Acquire(bg(), "a")
	for range 3 {
		runtime.GC()
	}
	if s := g.Stats().Total; s.Reclaims != 0 || held.Value().closed.Load() {
		t.Errorf("a released lease was reclaimed: %+v", s)
	}
	held.Release()
}

// TestGroupReleasedLeaseIsNeverReclaimedUnderGC: once Release or Discard
// has won a GroupLease, its cleanup must not reclaim the connection, even
// when the collector runs between the win and the bookkeeping (the lease
// is unreachable from there on but for runtime.KeepAlive). A reclaim
// there would close a connection being put back: a double close, more
// than PerKeyMax or GlobalMax out at once, negative counts.
func TestGroupReleasedLeaseIsNeverReclaimedUnderGC(t *testing.T) {
	const workers, keys, perKey, global = 4, 3, 2, 4
	perWorker := 10_000
	if testing.Short() {
		perWorker = 1_000
	}
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: perKey, GlobalMax: global, TrackLeases: true, AcquireTimeout: -1})
	stopGC := forceGC()
	var outKey [keys]atomic.Int64
	var outAll atomic.Int64
	take := func(k int) {
		if n := outKey[k].Add(1); n > perKey {
			t.Errorf("key %d: %d leases out at once, PerKeyMax %d", k, n, perKey)
		}
		if n := outAll.Add(1); n > global {
			t.Errorf("%d leases out at once, GlobalMax %d", n, global)
		}
	}
	give := func(k int) { outKey[k].Add(-1); outAll.Add(-1) }
	key := func(k int) string { return fmt.Sprint("k", k) }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := int64(w)<<32 | int64(i) + 1
				k := (w + i) % keys
				switch i % 4 {
				case 0, 1:
					l, err := g.Acquire(bg(), key(k))
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					take(k)
					l.Value().use(t, id)
					l.Value().done(id)
					give(k)
					if i%7 == 0 {
						l.Discard()
					} else {
						l.Release()
					}
				case 2:
					err := g.With(bg(), key(k), func(_ context.Context, c *keyConn) error {
						take(k)
						defer give(k)
						c.use(t, id)
						c.done(id)
						return nil
					})
					if err != nil {
						t.Errorf("With: %v", err)
						return
					}
				case 3:
					k2 := (k + 1) % keys
					ls, err := g.AcquireAll(bg(), key(k), key(k2))
					if err != nil {
						t.Errorf("AcquireAll: %v", err)
						return
					}
					take(k)
					take(k2)
					for _, kk := range []string{key(k), key(k2)} {
						ls.Value(kk).use(t, id)
						ls.Value(kk).done(id)
					}
					give(k)
					give(k2)
					if i%5 == 0 {
						ls.Lease(key(k2)).Discard()
					}
					ls.Release()
				}
				if err := g.checkInvariants(); err != nil {
					t.Errorf("invariant: %v", err)
					return
				}
				if err := g.checkTracking(); err != nil {
					t.Errorf("tracking: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopGC()
	waitFor(t, "closes to finish", func() bool { return g.Stats().Total.Closing == 0 })
	if s := g.Stats().Total; s.Reclaims != 0 || s.ClosedReclaim != 0 || s.Open < 0 || s.InUse != 0 {
		t.Errorf("released leases were reclaimed: %+v", s)
	}
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("%d holders listed after everything came back", len(hs))
	}
}

// TestGroupTimeoutNamesTheKeysHolders: a request that times out in its
// key's line is told who holds that key, oldest first, and how many of
// those leases its own goroutine holds; holders of other keys are not in
// its way and are not named.
func TestGroupTimeoutNamesTheKeysHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, TrackLeases: true, AcquireTimeout: time.Second, Name: "g"})
		other := func() (string, func()) {
			site := here()
			l, _ := g.Acquire(bg(), "a")
			lb, _ := g.Acquire(bg(), "b")
			return site, func() { l.Release(); lb.Release() }
		}
		mine := func() (string, func()) {
			site := here()
			l, _ := g.Acquire(bg(), "a")
			return site, l.Release
		}
		wait := func() error { _, err := g.Acquire(bg(), "a"); return err }
		timeoutBehindHolders(t, other, mine, wait, func(te *TimeoutError, _, _ string) {
			if !te.Tracked || te.Pool != "g[a]" {
				t.Errorf("timeout %+v: want a's, tracked", te)
			}
			if hs := g.Holders(); len(hs) != 3 || hs[0].HeldFor != 2*time.Second {
				t.Errorf("Holders() = %+v", hs)
			}
		})
	})
}

// TestGroupTimeoutAtGlobalMaxNamesEveryKeysHolders: a request that times
// out waiting for GlobalMax waited for leases of every key: it is told of
// them all.
func TestGroupTimeoutAtGlobalMaxNamesEveryKeysHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 2, TrackLeases: true, AcquireTimeout: time.Second, Name: "g"})
		take := func(key string) func() (string, func()) {
			return func() (string, func()) {
				site := here()
				l, _ := g.Acquire(bg(), key)
				return site, l.Release
			}
		}
		wait := func() error { _, err := g.Acquire(bg(), "c"); return err }
		timeoutBehindHolders(t, take("a"), take("b"), wait, func(te *TimeoutError, _, _ string) {
			if te.Pool != "g" || te.MaxSize != 2 {
				t.Errorf("timeout %+v: want the group's, at GlobalMax 2", te)
			}
		})
	})
}

func TestGroupTimeoutWithoutTrackingNamesNoHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: time.Second})
		l, _ := g.Acquire(bg(), "a")
		_, err := g.Acquire(bg(), "a")
		var te *TimeoutError
		if !errors.As(err, &te) || te.Tracked || te.Holders != nil || te.HeldByCaller != 0 || strings.Contains(err.Error(), "holders") {
			t.Errorf("untracked timeout %+v: %v", te, err)
		}
		if hs := g.Holders(); len(hs) != 0 {
			t.Errorf("Holders() without tracking = %+v", hs)
		}
		l.Release()
	})
}

// TestGroupDeadlockNestedAcquireAtPerKeyMax1: inside a With on a key of
// PerKeyMax 1, an Acquire of the same key (Acquire is not reentrant)
// waits for the With's lease, which comes back only when the With
// returns: ErrDeadlock at once. The same for AcquireAll inside WithAll.
func TestGroupDeadlockNestedAcquireAtPerKeyMax1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true, Name: "g"})
		start := time.Now()
		site := here()
		err := g.With(bg(), "a", func(ctx context.Context, _ *keyConn) error {
			_, err := g.Acquire(ctx, "a")
			return err
		})
		var de *DeadlockError
		if !errors.Is(err, ErrDeadlock) || !errors.As(err, &de) || time.Since(start) != 0 {
			t.Fatalf("nested Acquire in With = %v after %v, want ErrDeadlock at once", err, time.Since(start))
		}
		if de.Pool != "g[a]" || len(de.Held) != 1 || de.Held[0].Caller != site || !strings.Contains(err.Error(), `"g[a]"`) {
			t.Errorf("DeadlockError %+v, want a's holder at %s", de, site)
		}
		err = g.WithAll(bg(), []string{"b", "a"}, func(ctx context.Context, _ []*keyConn) error {
			_, err := g.AcquireAll(ctx, "c", "b")
			return err
		})
		if !errors.As(err, &de) || de.Pool != "g[b]" || len(de.Held) != 1 || time.Since(start) != 0 {
			t.Errorf("AcquireAll of a held key inside WithAll = %v, want ErrDeadlock on b at once", err)
		}
		if s := g.Stats().Total; s.Acquires != 3 || s.Timeouts != 0 || s.InUse != 0 {
			t.Errorf("stats %+v: want the three acquires of With and WithAll only; a deadlock refused is none", s)
		}
		checkGroupInv(t, g)
	})
}

// TestGroupDeadlockAtGlobalMax: With calls on one goroutine that hold all
// of GlobalMax between them leave nothing for an acquire nested in them,
// whatever its key: ErrDeadlock at once, naming them oldest first. An
// AcquireAll whose share can never fit beside them is refused too.
func TestGroupDeadlockAtGlobalMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 3, TrackLeases: true, Name: "g"})
		var sites []string
		var errC, errAll error
		sites = append(sites, here())
		err := g.With(bg(), "a", func(ctx context.Context, _ *keyConn) error {
			time.Sleep(time.Millisecond) // so "oldest first" has an order to show
			sites = append(sites, here())
			return g.WithAll(ctx, []string{"b", "c"}, func(ctx context.Context, _ []*keyConn) error {
				start := time.Now()
				_, errAll = g.AcquireAll(ctx, "a", "d") // 3 held, 2 more: never
				_, errC = g.Acquire(ctx, "d")
				if time.Since(start) != 0 {
					t.Errorf("refused after %v, want at once", time.Since(start))
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		var de *DeadlockError
		if !errors.As(errC, &de) || de.Pool != "g" || len(de.Held) != 3 || !strings.Contains(errC.Error(), `"g"`) {
			t.Fatalf("Acquire inside With and WithAll holding GlobalMax = %v, want ErrDeadlock naming three holders", errC)
		}
		for i, want := range []string{sites[0], sites[1], sites[1]} {
			if de.Held[i].Caller != want {
				t.Errorf("holder %d at %s, want %s", i, de.Held[i].Caller, want)
			}
		}
		if !errors.Is(errAll, ErrDeadlock) {
			t.Errorf("AcquireAll of two keys beside three of GlobalMax 3 = %v, want ErrDeadlock", errAll)
		}
		// Two held, one free: an AcquireAll of one more fits, of two
		// more it never can.
		err = g.WithAll(bg(), []string{"a", "b"}, func(ctx context.Context, _ []*keyConn) error {
			ls, err := g.AcquireAll(ctx, "c")
			if err != nil {
				return fmt.Errorf("one more key: %w", err)
			}
			ls.Release()
			if _, err := g.AcquireAll(ctx, "c", "d"); !errors.Is(err, ErrDeadlock) {
				return fmt.Errorf("two more keys: %v, want ErrDeadlock", err)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		checkGroupInv(t, g)
	})
}

// TestGroupNoDeadlockWhenLeaseHandedToAnotherGoroutine: a dispatcher
// acquires and hands the lease to a worker that releases it later; the
// dispatcher's next acquire waits for it, on the key's line at PerKeyMax
// and on the global one at GlobalMax, even inside a With, rather than
// fail with ErrDeadlock.
func TestGroupNoDeadlockWhenLeaseHandedToAnotherGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 2, TrackLeases: true})
		work := make(chan *GroupLease[string, *keyConn], 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			for l := range work {
				time.Sleep(50 * time.Millisecond)
				l.Release()
			}
		})
		dispatch := func(ctx context.Context, first, next string) {
			l, err := g.Acquire(ctx, first)
			if err != nil {
				t.Errorf("dispatcher's acquire of %s = %v", first, err)
				return
			}
			work <- l
			start := time.Now()
			l2, err := g.Acquire(ctx, next)
			if err != nil {
				t.Errorf("dispatcher's acquire of %s after handing %s over = %v, want to wait for the worker", next, first, err)
				return
			}
			if waited := time.Since(start); waited != 50*time.Millisecond {
				t.Errorf("waited %v, want 50ms", waited)
			}
			l2.Release()
		}
		dispatch(bg(), "a", "a") // the key's line
		g.With(bg(), "b", func(ctx context.Context, _ *keyConn) error {
			dispatch(ctx, "a", "a") // the key's line, inside a With
			dispatch(ctx, "a", "c") // the global line: b and a hold GlobalMax
			return nil
		})
		close(work)
		wg.Wait()
	})
}

// TestGroupNoDeadlockWhileAConnectionCloses: a connection being closed
// still counts against the limits, and its room comes back when its Close
// returns; an acquire nested in a With that waits for that room is not
// deadlocked.
func TestGroupNoDeadlockWhileAConnectionCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newKeyFactory(t, 2, 2)
		release := make(chan struct{})
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 2, TrackLeases: true, Open: f.Open,
			Close: func(c *keyConn) error { <-release; return f.Close(c) }})
		err := g.With(bg(), "a", func(ctx context.Context, _ *keyConn) error {
			// While a's discarded connection closes, a has 2 connections
			// and the group 2: b waits for GlobalMax's room.
			return acquireBehindAClose(t, release,
				func() (*GroupLease[string, *keyConn], error) { return g.Acquire(ctx, "a") },
				func() (*GroupLease[string, *keyConn], error) { return g.Acquire(ctx, "b") })
		})
		if err != nil {
			t.Fatalf("Acquire while a connection closes = %v, want the room it frees", err)
		}
	})
}

// TestGroupNoDeadlockWhenAnotherGoroutineHolds: goroutines sharing a
// context (as errgroup workers do) wait for each other normally: the
// With's lease is its goroutine's, not the context's.
func TestGroupNoDeadlockWhenAnotherGoroutineHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, GlobalMax: 1, TrackLeases: true})
		var wg sync.WaitGroup
		g.With(bg(), "a", func(ctx context.Context, _ *keyConn) error {
			for _, key := range []string{"a", "b"} {
				wg.Go(func() {
					l, err := g.Acquire(ctx, key)
					if err != nil {
						t.Errorf("waiter for %s in another goroutine: %v", key, err)
						return
					}
					l.Release()
				})
			}
			time.Sleep(time.Second)
			return nil
		})
		wg.Wait()
	})
}

// TestGroupTryAcquireIsTracked: a lease from TryAcquire is recorded like
// one from Acquire: listed among the holders at its call site.
func TestGroupTryAcquireIsTracked(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, TrackLeases: true})
	l, err := g.Acquire(bg(), "a")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	site := here()
	l, err = g.TryAcquire(bg(), "a")
	if err != nil {
		t.Fatalf("TryAcquire = %v", err)
	}
	if hs := g.Holders(); len(hs) != 1 || hs[0].Key != "a" || hs[0].Caller != site {
		t.Errorf("holders %+v, want the TryAcquire at %s", hs, site)
	}
	l.Release()
	if hs := g.Holders(); len(hs) != 0 {
		t.Errorf("holders after Release: %+v", hs)
	}
}
