package fairpool

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttack2_ObserverAddedMidLeaseIsToldOfItsRelease: the Observer doc
// says "Leases handed out before the Observer was added are not
// reported". With a first observer in place at hand-out (so the lease's
// use is clocked), a second observer added while the lease is out is
// told of its end anyway: released() reads the observers at release
// time, not those present at hand-out.
func TestAttack2_ObserverAddedMidLeaseIsToldOfItsRelease(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	stopA := p.Observe(Observer{})
	defer stopA()
	l, err := p.Acquire(bg())
	if err != nil {
		t.Fatal(err)
	}
	var acquired, releasedN atomic.Int64
	stopB := p.Observe(Observer{
		Acquired: func(time.Duration) { acquired.Add(1) },
		Released: func(time.Duration) { releasedN.Add(1) },
	})
	defer stopB()
	l.Release()
	if releasedN.Load() != 0 {
		t.Errorf("observer added after the hand-out was told of %d releases, %d hand-outs; want none of a lease handed out before it was added",
			releasedN.Load(), acquired.Load())
	}
}

// TestAttack2_GroupObserverAddedMidLeaseIsToldOfItsRelease: the same for
// a Group's GroupLease.
func TestAttack2_GroupObserverAddedMidLeaseIsToldOfItsRelease(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1})
	stopA := g.Observe(Observer{})
	defer stopA()
	l, err := g.Acquire(bg(), "a")
	if err != nil {
		t.Fatal(err)
	}
	var releasedN atomic.Int64
	stopB := g.Observe(Observer{Released: func(time.Duration) { releasedN.Add(1) }})
	defer stopB()
	l.Discard()
	if releasedN.Load() != 0 {
		t.Errorf("observer added after the hand-out was told of %d lease ends; want none", releasedN.Load())
	}
}

// TestAttack2_ObserverCalledAfterStop: stop returns while an event that
// loaded the observer list before it is still being delivered (another
// observer's hook is slow), and the stopped observer is then called.
// "nothing after stop" does not hold.
func TestAttack2_ObserverCalledAfterStop(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	inA := make(chan struct{})
	unblock := make(chan struct{})
	var once sync.Once
	stopA := p.Observe(Observer{Acquired: func(time.Duration) {
		once.Do(func() { close(inA); <-unblock })
	}})
	defer stopA()
	var stopped atomic.Bool
	var late atomic.Int64
	stopB := p.Observe(Observer{Acquired: func(time.Duration) {
		if stopped.Load() {
			late.Add(1)
		}
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := p.Acquire(bg())
		if err != nil {
			t.Error(err)
			return
		}
		l.Release()
	}()
	<-inA
	stopB()
	stopped.Store(true)
	close(unblock)
	<-done
	if late.Load() != 0 {
		t.Errorf("observer called %d times after its stop returned", late.Load())
	}
}

// TestAttack2_ObserverChurnAccounting: observers are added and stopped
// at random while many goroutines acquire (with random deadlines and
// cancels), release and discard, and Close runs at the end. An observer
// present throughout hears exactly Stats.Acquires hand-outs (as many as
// callers saw), as many lease ends, and Stats.Opens opens, however the
// churning ones come and go.
func TestAttack2_ObserverChurnAccounting(t *testing.T) {
	const workers, maxSize, rounds = 24, 4, 400
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: maxSize, AcquireTimeout: 2 * time.Millisecond})
	type tally struct{ acq, rel, opn atomic.Int64 }
	var whole tally
	stopWhole := p.Observe(Observer{
		Acquired: func(time.Duration) { whole.acq.Add(1) },
		Released: func(time.Duration) { whole.rel.Add(1) },
		Opened:   func(time.Duration) { whole.opn.Add(1) },
	})
	var handed atomic.Int64
	var stopChurn atomic.Bool
	var churnWG sync.WaitGroup
	churnWG.Go(func() {
		for !stopChurn.Load() {
			// Its own counts are not checked: see the two tests above.
			stop := p.Observe(Observer{
				Acquired: func(time.Duration) {},
				Released: func(time.Duration) {},
				Opened:   func(time.Duration) {},
			})
			time.Sleep(50 * time.Microsecond)
			stop()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				ctx, cancel := context.WithTimeout(bg(), time.Duration((w*7+i)%5)*time.Millisecond+time.Microsecond)
				if i%3 == 0 {
					ctx, cancel = context.WithCancel(bg())
				}
				l, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					continue
				}
				handed.Add(1)
				c := l.Value()
				id := int64(w)<<32 | int64(i) + 1
				c.use(t, id)
				time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
				c.done(id)
				if i%5 == 0 {
					l.Discard()
				} else {
					l.Release()
				}
				if err := p.checkInvariants(); err != nil {
					t.Errorf("invariant: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopChurn.Store(true)
	churnWG.Wait()
	if err := p.Close(bg()); err != nil {
		t.Fatal(err)
	}
	stopWhole()
	s := p.Stats()
	if whole.acq.Load() != s.Acquires || s.Acquires != handed.Load() {
		t.Errorf("observer heard %d hand-outs, Stats.Acquires %d, callers saw %d", whole.acq.Load(), s.Acquires, handed.Load())
	}
	if whole.rel.Load() != whole.acq.Load() {
		t.Errorf("observer heard %d lease ends for %d hand-outs", whole.rel.Load(), whole.acq.Load())
	}
	if whole.opn.Load() != s.Opens {
		t.Errorf("observer heard %d opens, Stats.Opens %d", whole.opn.Load(), s.Opens)
	}
}

// a2DropLease acquires and drops the lease without Release.
func a2DropLease(t *testing.T, p *Pool[*fakeConn]) {
	l, err := p.Acquire(bg())
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Value()
}

// TestAttack2_ObserverNotToldOfReclaimedLease: with TrackLeases, a lease
// dropped without Release is reclaimed by GC and its connection closed:
// the lease has ended, yet the Observer, told of its hand-out, never
// hears of its end, so Acquired and Released never balance again (a
// gauge of leases in use built from them leaks one per reclaim). The
// Observer doc speaks of "each lease ends, by Release or Discard"; the
// reclaim path (track.go reclaim) calls neither nor released().
// Arguably a documentation gap rather than a bug; listed as failing.
func TestAttack2_ObserverNotToldOfReclaimedLease(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, TrackLeases: true, AcquireTimeout: time.Second})
	var acq, rel atomic.Int64
	stop := p.Observe(Observer{
		Acquired: func(time.Duration) { acq.Add(1) },
		Released: func(time.Duration) { rel.Add(1) },
	})
	defer stop()
	a2DropLease(t, p)
	waitFor(t, "reclaim", func() bool {
		runtime.GC()
		return p.Stats().Reclaims == 1
	})
	if acq.Load() != 1 || rel.Load() != 1 {
		t.Errorf("observer heard %d hand-outs and %d lease ends; want 1 and 1 (the reclaim ended the lease)", acq.Load(), rel.Load())
	}
}
