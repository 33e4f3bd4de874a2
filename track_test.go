package fairpool

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func leakyHandler(p *Pool[*fakeConn]) (*Lease[*fakeConn], string) {
	site := here()
	l, _ := p.Acquire(bg())
	return l, site
}

func TestLeakWarnedOnceWithAcquiringStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2, LeakThreshold: time.Second, Logger: slog.New(rec), Name: "db"})
		l, site := leakyHandler(p)
		short, _ := p.Acquire(bg())
		a := leakWarnedOnce(t, rec, site, short.Release, "leakyHandler", "TestLeakWarnedOnceWithAcquiringStack")
		if a["pool"].String() != "db" {
			t.Errorf("pool %v", a["pool"])
		}
		if s := p.Stats(); s.Leaks != 1 {
			t.Errorf("Leaks = %d", s.Leaks)
		}
		l.Release()
	})
}

func dropLease(p *Pool[*fakeConn]) *fakeConn {
	l, _ := p.Acquire(bg())
	return l.Value() // the Lease itself is dropped here
}

// TestDroppedLeaseIsReclaimedByGC: a lease that becomes unreachable without
// Release has its connection closed and its slot freed once the garbage
// collector finds it, so the next Acquire does not wait out its timeout.
func TestDroppedLeaseIsReclaimedByGC(t *testing.T) {
	rec := &recorder{}
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, AcquireTimeout: time.Minute, Logger: slog.New(rec)})
	c := dropLease(p)
	waitFor(t, "reclaim", func() bool {
		runtime.GC()
		return p.Stats().Reclaims == 1
	})
	// The close runs on a goroutine of the pool, after the reclaim is
	// counted.
	waitFor(t, "the dropped lease's connection closed", c.closed.Load)
	ctx, cancel := context.WithTimeout(bg(), time.Second)
	defer cancel()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after reclaim: %v", err)
	}
	if l.Value() == c {
		t.Error("reclaimed connection handed out again")
	}
	l.Release()
	_, attrs := rec.find("fairpool: lease dropped without Release; connection closed")
	if len(attrs) != 1 || !strings.Contains(attrs[0]["stack"].String(), "dropLease") {
		t.Errorf("reclaim log: %v", attrs)
	}
	if cnt := f.counts(); cnt.opens != 2 || cnt.closes != 1 {
		t.Errorf("factory %+v", cnt)
	}
}

// TestReleasedLeaseIsNotReclaimed: a released lease that is collected later
// must not touch the connection, now someone else's.
func TestReleasedLeaseIsNotReclaimed(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true})
	func() {
		l, _ := p.Acquire(bg())
		l.Release()
	}()
	held, _ := p.Acquire(bg())
	for range 3 {
		runtime.GC()
	}
	if s := p.Stats(); s.Reclaims != 0 || held.Value().closed.Load() {
		t.Errorf("a released lease was reclaimed: %+v", s)
	}
	held.Release()
}

func TestRequireUsesTheBoundLeaseOrFails(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, Name: "req"})
	called := false
	err := p.Require(bg(), func(context.Context, *fakeConn) error { called = true; return nil })
	if !errors.Is(err, ErrNoLease) || called || !strings.Contains(err.Error(), `"req"`) {
		t.Errorf("Require without With = %v, called %v", err, called)
	}
	if s := p.Stats(); s.Open != 0 {
		t.Error("Require opened a connection")
	}
	var stale context.Context
	p.With(bg(), func(ctx context.Context, c *fakeConn) error {
		stale = ctx
		return p.Require(ctx, func(_ context.Context, c2 *fakeConn) error {
			if c2 != c {
				t.Error("Require got another connection")
			}
			return nil
		})
	})
	if err := p.Require(stale, func(context.Context, *fakeConn) error { return nil }); !errors.Is(err, ErrNoLease) {
		t.Errorf("Require after the With returned = %v", err)
	}
}

func TestDeadlockNestedAcquireAtMaxSize1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, Name: "one"})
		start := time.Now()
		err := p.With(bg(), func(ctx context.Context, _ *fakeConn) error {
			_, err := p.Acquire(ctx)
			return err
		})
		var de *DeadlockError
		if !errors.Is(err, ErrDeadlock) || !errors.As(err, &de) || time.Since(start) != 0 {
			t.Fatalf("nested Acquire in With = %v after %v, want ErrDeadlock at once", err, time.Since(start))
		}
		if de.Pool != "one" || len(de.Held) != 1 || !strings.Contains(err.Error(), `"one"`) {
			t.Errorf("DeadlockError %+v", de)
		}
	})
}

// TestAcquireThenAcquireWaitsAndNamesTheCaller: a lease from Acquire may
// be handed to another goroutine, so a second Acquire on the same
// goroutine is not certain to deadlock: it waits, and its timeout names
// the holder and says the caller holds it.
func TestAcquireThenAcquireWaitsAndNamesTheCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, AcquireTimeout: time.Second})
		site := here()
		l, _ := p.Acquire(bg())
		_, err := p.Acquire(bg())
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.Waited != time.Second {
			t.Fatalf("second Acquire = %v, want a timeout after 1s", err)
		}
		if te.HeldByCaller != 1 || len(te.Holders) != 1 || te.Holders[0].Caller != site {
			t.Errorf("timeout %+v, want the caller named as holder at %s", te, site)
		}
		l.Release()
	})
}

// TestNoDeadlockWhenLeaseHandedToAnotherGoroutine: a dispatcher acquires
// and hands the lease to a worker that releases it later; the
// dispatcher's next Acquire must wait for it, not fail with ErrDeadlock.
func TestNoDeadlockWhenLeaseHandedToAnotherGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true})
		l, _ := p.Acquire(bg())
		work := make(chan *Lease[*fakeConn], 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			l := <-work
			time.Sleep(50 * time.Millisecond)
			l.Release()
		})
		work <- l
		start := time.Now()
		l2, err := p.Acquire(bg())
		if err != nil {
			t.Fatalf("dispatcher's second Acquire = %v, want the worker's connection", err)
		}
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Errorf("waited %v, want 50ms", waited)
		}
		l2.Release()
		wg.Wait()
	})
}

// TestNoDeadlockWhileAConnectionCloses: the slot of a connection being
// closed comes back, so waiting for it is not a deadlock.
func TestNoDeadlockWhileAConnectionCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFactory(t, 2)
		release := make(chan struct{})
		p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: 2, TrackLeases: true,
			Close: func(c *fakeConn) error { <-release; return f.Close(c) }})
		err := p.With(bg(), func(ctx context.Context, _ *fakeConn) error {
			acquire := func() (*Lease[*fakeConn], error) { return p.Acquire(ctx) }
			return acquireBehindAClose(t, release, acquire, acquire)
		})
		if err != nil {
			t.Fatalf("Acquire while a connection closes = %v, want the freed slot", err)
		}
	})
}

func TestDeadlockWithThreeNestedHoldsAtMaxSize3(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 3, TrackLeases: true})
		var sites []string
		var err error
		var nest func(ctx context.Context, depth int) error
		nest = func(ctx context.Context, depth int) error {
			if depth == 3 {
				start := time.Now()
				_, err = p.Acquire(ctx)
				if time.Since(start) != 0 {
					t.Errorf("fourth Acquire took %v, want at once", time.Since(start))
				}
				return nil
			}
			time.Sleep(time.Millisecond) // so "oldest first" has an order to show
			// A fresh context each time, so each With takes its own lease.
			sites = append(sites, here())
			return p.With(bg(), func(context.Context, *fakeConn) error { return nest(ctx, depth+1) })
		}
		if e := nest(bg(), 0); e != nil {
			t.Fatal(e)
		}
		var de *DeadlockError
		if !errors.As(err, &de) || len(de.Held) != 3 {
			t.Fatalf("fourth Acquire = %v, want ErrDeadlock naming three holders", err)
		}
		for i, h := range de.Held {
			if h.Caller != sites[i] {
				t.Errorf("holder %d at %s, want %s", i, h.Caller, sites[i])
			}
		}
	})
}

// TestNoDeadlockWhenAnotherGoroutineHolds: goroutines sharing a context
// (as errgroup workers do) wait for each other normally.
func TestNoDeadlockWhenAnotherGoroutineHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true})
		ctx := bg()
		held, _ := p.Acquire(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			l, err := p.Acquire(ctx)
			if err != nil {
				t.Errorf("waiter in another goroutine: %v", err)
				return
			}
			l.Release()
		})
		time.Sleep(time.Second)
		held.Release()
		wg.Wait()
	})
}

func TestTimeoutListsHoldersAndOwnHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2, TrackLeases: true, AcquireTimeout: time.Second})
		take := func() (string, func()) {
			site := here()
			l, _ := p.Acquire(bg())
			return site, l.Release
		}
		wait := func() error { _, err := p.Acquire(bg()); return err }
		timeoutBehindHolders(t, take, take, wait, func(*TimeoutError, string, string) {
			if hs := p.Holders(); len(hs) != 2 || hs[0].HeldFor != 2*time.Second {
				t.Errorf("Holders() = %+v", hs)
			}
		})
	})
}

func TestTimeoutWithoutTrackingSaysHowToTurnItOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Second})
		l, _ := p.Acquire(bg())
		_, err := p.Acquire(bg())
		if !strings.Contains(err.Error(), "set Config.TrackLeases to see who holds them") {
			t.Errorf("message: %v", err)
		}
		if p.Holders() != nil && len(p.Holders()) != 0 {
			t.Error("Holders without tracking")
		}
		l.Release()
	})
}

func TestCallerOfSkipsPoolFrames(t *testing.T) {
	wantCallerOfHandler(t, []string{
		"github.com/fairpool/fairpool.(*Pool[...]).acquire(0x1) /src/pool.go:20",
		"github.com/fairpool/fairpool.(*Pool[...]).With(0x1) /src/lease.go:30",
	}, nil)
	if got := currentCaller(); got.gid <= 0 || !strings.Contains(got.stack, "TestCallerOfSkipsPoolFrames") {
		t.Errorf("currentCaller = %+v", got)
	}
}

func TestWaitersInServingOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
		l, _ := p.Acquire(bg())
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if l, err := p.Acquire(bg()); err == nil {
					l.Release()
				}
			})
			time.Sleep(time.Second)
		}
		ws := p.Waiters()
		if len(ws) != 3 || ws[0] != 3*time.Second || ws[1] != 2*time.Second || ws[2] != time.Second {
			t.Errorf("Waiters() = %v", ws)
		}
		l.Release()
		wg.Wait()
	})
}
