package fairpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

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
