package fairpool

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// line starts n callers, one after another, each of which acquires with a
// context of deadline d (none if 0), holds for hold and releases; they
// queue behind whatever holds the pool. It returns a WaitGroup for them
// and a count of those served.
func line(t *testing.T, acquire func(context.Context) (func(), error), n int, d, hold time.Duration) (*sync.WaitGroup, *int64) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := new(int64)
	for range n {
		wg.Go(func() {
			ctx, cancel := bg(), context.CancelFunc(func() {})
			if d > 0 {
				ctx, cancel = context.WithTimeout(bg(), d)
			}
			defer cancel()
			release, err := acquire(ctx)
			if err != nil {
				t.Errorf("a caller in the line: %v", err)
				return
			}
			time.Sleep(hold)
			release()
			mu.Lock()
			*served++
			mu.Unlock()
		})
		synctest.Wait() // in line, in this order
	}
	return &wg, served
}

// wantShed fails t unless err is an ErrOverload TimeoutError that is also
// a deadline, with the given wait and estimate.
func wantShed(t *testing.T, err error, waited, estimate time.Duration) {
	t.Helper()
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrOverload) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want a *TimeoutError with ErrOverload, also a DeadlineExceeded", err)
	}
	if te.Waited != waited || te.Estimate != estimate {
		t.Errorf("Waited %v, Estimate %v; want %v and %v", te.Waited, te.Estimate, waited, estimate)
	}
}

func poolAcquire(p *Pool[*fakeConn]) func(context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		l, err := p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}
}

// TestOverloadTurnsAwayAtArrival: with the line moving one caller per
// 10ms (learned from the hand-offs) and six callers ahead, a caller with
// 30ms left cannot be served in time (60ms of line plus 10ms of hold): it
// hears so at once, with what the pool expected, counted as a shed and as
// nothing else. A caller with time enough queues and is served. Without
// deadline-awareness the same caller waits its whole deadline.
func TestOverloadTurnsAwayAtArrival(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "IgnoreDeadlines"}[ignore]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, IgnoreDeadlines: ignore})
				wg, served := line(t, poolAcquire(p), 10, time.Hour, 10*time.Millisecond)
				time.Sleep(35 * time.Millisecond) // four served, one holds, five wait
				synctest.Wait()
				ctx, cancel := context.WithTimeout(bg(), 30*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := p.Acquire(ctx)
				if ignore {
					if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrOverload) || time.Since(start) != 30*time.Millisecond {
						t.Errorf("IgnoreDeadlines: %v after %v; want the context's deadline, waited out", err, time.Since(start))
					}
				} else {
					// Six wait: seven turns of 10ms (theirs and the holder's),
					// then its own 10ms hold.
					wantShed(t, err, 0, 80*time.Millisecond)
					if d := time.Since(start); d != 0 {
						t.Errorf("turned away after %v; want at once", d)
					}
				}
				in, cancel2 := context.WithTimeout(bg(), time.Second)
				defer cancel2()
				l, err := p.Acquire(in)
				if err != nil {
					t.Fatalf("a caller with time enough: %v", err)
				}
				l.Release()
				wg.Wait()
				s := p.Stats()
				wantSheds := map[bool]int64{false: 1, true: 0}[ignore]
				if *served != 10 || s.Sheds != wantSheds || s.Timeouts != 0 {
					t.Errorf("served %d of 10, Sheds %d (want %d), Timeouts %d", *served, s.Sheds, wantSheds, s.Timeouts)
				}
			})
		})
	}
}

// TestOverloadNeverHandsToAWaiterAboutToEnd: a waiter whose turn comes
// 5ms before its deadline, when a lease is held 10ms, is turned away at
// its turn, and the connection goes straight to the next in line.
func TestOverloadNeverHandsToAWaiterAboutToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
		wg, served := line(t, poolAcquire(p), 4, time.Hour, 10*time.Millisecond) // hand-offs at 10, 20, 30ms
		ctx, cancel := context.WithTimeout(bg(), 45*time.Millisecond)            // its turn: 40ms
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := p.Acquire(ctx)
			errc <- err
		}()
		synctest.Wait()
		var next time.Duration
		start := time.Now()
		wg2, _ := line(t, func(ctx context.Context) (func(), error) {
			l, err := p.Acquire(ctx)
			next = time.Since(start)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}, 1, time.Hour, time.Millisecond)
		wantShed(t, <-errc, 40*time.Millisecond, 10*time.Millisecond)
		wg.Wait()
		wg2.Wait()
		if next != 40*time.Millisecond {
			t.Errorf("the next in line got the connection at %v; want 40ms, at once", next)
		}
		if s := p.Stats(); *served != 4 || s.Sheds != 1 || s.Timeouts+s.Cancels != 0 {
			t.Errorf("served %d, stats %+v", *served, s)
		}
	})
}

// TestOverloadLeavesCallersWithoutDeadlinesAlone: callers with only
// AcquireTimeout are served exactly as before, however long the line.
func TestOverloadLeavesCallersWithoutDeadlinesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Hour})
		wg, served := line(t, poolAcquire(p), 50, 0, 10*time.Millisecond)
		wg.Wait()
		if s := p.Stats(); *served != 50 || s.Sheds != 0 {
			t.Errorf("served %d of 50, Sheds %d", *served, s.Sheds)
		}
	})
}

// TestAdaptiveServesNewestFirstWhileTheLineStands: an Adaptive pool serves
// in arrival order while its line is young; once the line has not been
// empty for 100ms, a newcomer is served before those who came earlier and
// waits 5ms at most, as do those already in line; once the line drains,
// arrival order is back.
func TestAdaptiveServesNewestFirstWhileTheLineStands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, WaitOrder: Adaptive, AcquireTimeout: time.Hour})
		var mu sync.Mutex
		var order []string
		take := func(name string, hold time.Duration) chan error {
			errc := make(chan error, 1)
			go func() {
				l, err := p.Acquire(bg())
				if err == nil {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
					time.Sleep(hold)
					l.Release()
				}
				errc <- err
			}()
			synctest.Wait()
			return errc
		}
		first := take("holder", 152*time.Millisecond)
		young := take("young", 0) // the line is new: arrival order
		time.Sleep(150 * time.Millisecond)
		late1 := take("late1", 0) // the line has stood 150ms: newest first
		time.Sleep(time.Millisecond)
		late2 := take("late2", 0)
		for _, c := range []chan error{first, late2, late1, young} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if want := []string{"holder", "late2", "late1", "young"}; !equalStrings(order, want) {
			t.Errorf("served %v; want %v", order, want)
		}
		// A newcomer to a standing line waits 5ms at most.
		order = nil
		first = take("holder", 200*time.Millisecond)
		young = take("young", 0)
		time.Sleep(150 * time.Millisecond)
		start := time.Now()
		_, err := p.Acquire(bg())
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || time.Since(start) != 5*time.Millisecond || te.Waited != 5*time.Millisecond {
			t.Errorf("a newcomer to a standing line: %v after %v; want ErrTimeout after 5ms", err, time.Since(start))
		}
		// young, in line since the start, was given the same short wait
		// when the line was found standing: at the bottom of a stack
		// served newest first, it would otherwise wait out its timeout.
		if err := <-young; !errors.Is(err, ErrTimeout) {
			t.Errorf("a waiter in line when the line was found standing: %v; want ErrTimeout at 155ms", err)
		}
		<-first
		// Drained: arrival order again.
		order = nil
		first = take("holder", 10*time.Millisecond)
		a, b := take("a", 0), take("b", 0)
		<-first
		<-a
		<-b
		if want := []string{"holder", "a", "b"}; !equalStrings(order, want) {
			t.Errorf("after the line drained, served %v; want %v", order, want)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGroupOverload: a Group's key turns away at arrival a caller its
// line cannot serve in time, and turns away at its turn a caller too
// close to its deadline, as a Pool does.
func TestGroupOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: time.Hour})
		acquire := func(ctx context.Context) (func(), error) {
			l, err := g.Acquire(ctx, "a")
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
		wg, served := line(t, acquire, 10, time.Hour, 10*time.Millisecond)
		time.Sleep(35 * time.Millisecond)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(bg(), 30*time.Millisecond)
		defer cancel()
		_, err := g.Acquire(ctx, "a")
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrOverload) || te.Waited != 0 || te.Estimate == 0 {
			t.Fatalf("err = %v; want ErrOverload at once, with an estimate", err)
		}
		wg.Wait()
		if s := g.Stats(); *served != 10 || s.Total.Sheds != 1 || s.Keys["a"].Sheds != 1 {
			t.Errorf("served %d, Sheds total %d, key %d", *served, s.Total.Sheds, s.Keys["a"].Sheds)
		}
	})
}

// TestGroupOverloadAtTurn: a key's waiter whose turn comes 5ms before its
// deadline, when a lease is held 10ms, is turned away at its turn and its
// connection goes to the next in line.
func TestGroupOverloadAtTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, AcquireTimeout: time.Hour})
		acquire := func(ctx context.Context) (func(), error) {
			l, err := g.Acquire(ctx, "a")
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
		wg, served := line(t, acquire, 4, time.Hour, 10*time.Millisecond)
		ctx, cancel := context.WithTimeout(bg(), 45*time.Millisecond) // its turn: 40ms
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := g.Acquire(ctx, "a")
			errc <- err
		}()
		synctest.Wait()
		wg2, served2 := line(t, acquire, 1, time.Hour, time.Millisecond)
		err := <-errc
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrOverload) || te.Waited != 40*time.Millisecond || te.Estimate != 10*time.Millisecond {
			t.Fatalf("err = %v; want ErrOverload at 40ms, expecting a 10ms hold", err)
		}
		wg.Wait()
		wg2.Wait()
		if s := g.Stats().Total; *served != 4 || *served2 != 1 || s.Sheds != 1 || s.Timeouts+s.Cancels != 0 {
			t.Errorf("served %d+%d, stats %+v", *served, *served2, s)
		}
	})
}
