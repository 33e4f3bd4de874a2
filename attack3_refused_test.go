package fairpool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// a3Server is a scripted server for the refusal attacks: each Open asks
// decide (under mu) what to do: succeed, refuse (errFull), fail plainly
// (errOpen), or block on gate first. It counts live connections, opens in
// progress included, against maxSize, and every outcome it produced.
type a3Server struct {
	t       testing.TB
	maxSize int

	mu       sync.Mutex
	room     int // successes allowed while fewer are live; <0: unlimited
	live     int // opening or open (not yet closed)
	conns    int // open (not yet closed)
	maxLive  int
	opens    int
	refusals int
	plain    int
	decide   func(n int) error // n: the attempt's number, from 1; nil: room decides
	gate     chan struct{}     // when set, Open waits on it (or ctx) first
	attempts int
	nextID   int
}

func (s *a3Server) setRoom(n int) { s.mu.Lock(); s.room = n; s.mu.Unlock() }

func (s *a3Server) Open(ctx context.Context) (*fakeConn, error) {
	s.mu.Lock()
	s.attempts++
	n := s.attempts
	s.live++
	if s.live > s.maxSize {
		s.t.Errorf("MaxSize %d exceeded: %d live at the factory (opens in progress included)", s.maxSize, s.live)
	}
	s.maxLive = max(s.maxLive, s.live)
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.decide != nil {
		err = s.decide(n)
	}
	if err == nil && s.room >= 0 && s.conns >= s.room {
		err = errFull
	}
	if err != nil {
		s.live--
		if errors.Is(err, errFull) {
			s.refusals++
		} else {
			s.plain++
		}
		return nil, err
	}
	s.conns++
	s.opens++
	s.nextID++
	return &fakeConn{id: s.nextID}, nil
}

func (s *a3Server) Close(c *fakeConn) error {
	c.markClosed(s.t)
	s.mu.Lock()
	s.live--
	s.conns--
	s.mu.Unlock()
	return nil
}

func (s *a3Server) snapshot() (live, conns, opens, refusals, plain int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live, s.conns, s.opens, s.refusals, s.plain
}

// a3Watch checks a3Check on every millisecond of fake time until the
// returned stop is called (idempotent).
func a3Watch(t *testing.T, p *Pool[*fakeConn]) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !done.Load() {
			if err := a3Check(p); err != nil {
				t.Errorf("invariant at %v: %v", time.Now(), err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

func a3Refused(err error) bool { return errors.Is(err, errFull) }

// a3Pool makes a pool over s with cfg (Open, Close, Refused filled in) and
// has cleanup close it and check that nothing is left live.
func a3Pool(t *testing.T, s *a3Server, cfg Config[*fakeConn]) *Pool[*fakeConn] {
	t.Helper()
	s.t = t
	s.maxSize = cfg.MaxSize
	cfg.Open, cfg.Close = s.Open, s.Close
	if cfg.Refused == nil {
		cfg.Refused = a3Refused
	}
	p, err := New(cfg)
	return mustNew(t, p, err, p.Stats, func() int { l, _, _, _, _ := s.snapshot(); return l })
}

// a3Check is checkInvariants plus what refusals add: the slots held back
// stay within [0, MaxSize], and held-back slots plus the pool's
// connections never exceed MaxSize.
func a3Check(p *Pool[*fakeConn]) error {
	if err := p.checkInvariants(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	hb := p.refused.heldBackLocked()
	switch {
	case p.refused.parked < 0:
		return errors.New("parked < 0")
	case hb > p.opening:
		return errors.New("held back more than counted opening")
	case hb > p.numOpen:
		return errors.New("held back more than counted open")
	case p.cfg.MaxSize-hb < 0 || p.cfg.MaxSize-hb > p.cfg.MaxSize:
		return errors.New("EffectiveSize out of [0, MaxSize]")
	case p.opening < 0 || p.closing < 0 || p.numOpen < 0:
		return errors.New("negative count")
	}
	return nil
}

// After a refusal, an open that succeeds while the probe still sleeps (or
// while parked slots are freed for want of waiters) leaves refused.last
// set: the server has accepted the pool's latest open, yet a later
// ordinary timeout (every connection simply busy) is reported as a wait
// that ended "while the server refused the pool's opens", wrapping a
// refusal that is history. withRefusal's own doc: "naming the last
// refusal when the server refused this pool's opens since its last
// successful one".
func TestAttack3_StaleRefusalNamedAfterSuccessfulOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		s := &a3Server{room: -1}
		s.decide = func(n int) error {
			if n <= 2 {
				return errFull
			}
			return nil
		}
		p := a3Pool(t, s, Config[*fakeConn]{MaxSize: 3, AcquireTimeout: -1})
		// Three callers: opens 1 and 2 are refused at once (probe +
		// parked), open 3 blocks on the gate.
		ctx, cancel := context.WithCancel(bg())
		var wg sync.WaitGroup
		for i := range 3 {
			if i == 2 {
				synctest.Wait()
				s.mu.Lock()
				s.gate = gate
				s.mu.Unlock()
			}
			wg.Go(func() { p.Acquire(ctx) })
			synctest.Wait()
		}
		if st := p.Stats(); st.RefusedOpens != 2 || st.Waiting != 3 {
			t.Fatalf("setup: %+v", st)
		}
		// Everybody leaves; then open 3 succeeds: the server accepted us.
		cancel()
		wg.Wait()
		close(gate)
		synctest.Wait()
		time.Sleep(refusedMaxBackoff) // the probe wakes to nobody and frees its slot
		synctest.Wait()
		st := p.Stats()
		if st.Opens != 1 || st.Idle != 1 || st.EffectiveSize != 3 {
			t.Fatalf("after the successful open: %+v", st)
		}
		// The one connection is busy: an ordinary timeout, nothing refused.
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		tctx, tcancel := context.WithTimeout(bg(), 10*time.Millisecond)
		defer tcancel()
		// Block open attempts from here on so nothing new is refused:
		// with MaxSize 3 and 1 open, Acquire opens; make it hang.
		s.mu.Lock()
		s.gate = make(chan struct{})
		s.mu.Unlock()
		_, err = p.Acquire(tctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want a deadline", err)
		}
		if errors.Is(err, errFull) || strings.Contains(err.Error(), "refused") {
			t.Errorf("after a successful open and no refusal since, the timeout still blames refusals:\n%v\n(stats %+v)", err, p.Stats())
		}
		s.mu.Lock()
		close(s.gate)
		s.mu.Unlock()
	})
}

// During refusals only EffectiveSize connections serve, so the line's
// pace (time between hand-offs) is that of a pool of EffectiveSize; but
// handOffLocked estimates a lease's hold as pace × MaxSize. With MaxSize
// 8 and a server that admits one connection, holds of 10 ms read as 80
// ms, and waiters with 60 ms to spare, served within 20 ms, are shed with
// ErrOverload: contrary to "a waiter fails only at its own deadline".
// The same load on a pool of MaxSize 1 sheds nobody.
func TestAttack3_HandOffShedsDuringRefusalsByMaxSize(t *testing.T) {
	run := func(t *testing.T, maxSize int) (sheds, served int64, st Stats) {
		synctest.Test(t, func(t *testing.T) {
			s := &a3Server{room: 1}
			p := a3Pool(t, s, Config[*fakeConn]{MaxSize: maxSize, AcquireTimeout: time.Second})
			var nSheds, nServed atomic.Int64
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Go(func() {
					time.Sleep(time.Duration(w) * time.Millisecond)
					for range 40 {
						ctx, cancel := context.WithTimeout(bg(), 60*time.Millisecond)
						l, err := p.Acquire(ctx)
						cancel()
						switch {
						case err == nil:
							nServed.Add(1)
							time.Sleep(10 * time.Millisecond)
							l.Release()
						case errors.Is(err, ErrOverload):
							nSheds.Add(1)
						default:
							t.Errorf("unexpected %v", err)
						}
					}
				})
			}
			wg.Wait()
			sheds, served, st = nSheds.Load(), nServed.Load(), p.Stats()
		})
		return
	}
	ctlSheds, _, _ := run(t, 1)
	if ctlSheds != 0 {
		t.Fatalf("control (MaxSize 1, no refusals) shed %d", ctlSheds)
	}
	sheds, served, st := run(t, 8)
	if sheds != 0 {
		t.Errorf("MaxSize 8, server admits 1: %d waiters shed (served %d) though each waits at most 20 ms of its 60 ms; pool of 1 sheds none (stats %+v)", sheds, served, st)
	}
}

// A server that refuses forever: every waiter, with AcquireTimeout, a
// context deadline, or both, fails exactly at its own deadline with a
// *TimeoutError wrapping the refusal; the factory never sees more than
// MaxSize; Close then returns at once with the probe's back-off pending,
// and everything is accounted for.
func TestAttack3_RefuseForeverEveryWaiterFailsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &a3Server{room: 0}
		p := a3Pool(t, s, Config[*fakeConn]{MaxSize: 4, AcquireTimeout: 700 * time.Millisecond})
		start := time.Now()
		type res struct {
			want time.Duration
			got  time.Duration
			err  error
		}
		const n = 24
		results := make([]res, n)
		var wg sync.WaitGroup
		stopCheck := a3Watch(t, p)
		defer stopCheck()
		for i := range n {
			wg.Go(func() {
				arrive := time.Duration(i*37%300) * time.Millisecond
				time.Sleep(arrive)
				ctx := bg()
				want := arrive + 700*time.Millisecond
				if i%3 != 0 {
					d := time.Duration(50+i*29%900) * time.Millisecond
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, d)
					defer cancel()
					want = arrive + min(d, 700*time.Millisecond)
				}
				_, err := p.Acquire(ctx)
				results[i] = res{want, time.Since(start), err}
			})
		}
		wg.Wait()
		var timeouts, cancels int64
		for i, r := range results {
			var te *TimeoutError
			if !errors.As(r.err, &te) || !errors.Is(r.err, errFull) {
				t.Errorf("waiter %d: %v, want a *TimeoutError wrapping the refusal", i, r.err)
				continue
			}
			if errors.Is(r.err, ErrOverload) {
				t.Errorf("waiter %d shed although nothing is ever served: %v", i, r.err)
			}
			if r.got != r.want {
				t.Errorf("waiter %d failed at %v, want at its deadline %v", i, r.got, r.want)
			}
			if errors.Is(r.err, ErrTimeout) {
				timeouts++
			} else {
				cancels++
			}
		}
		st := p.Stats()
		_, _, _, refusals, _ := s.snapshot()
		if st.Timeouts != timeouts || st.Cancels != cancels || st.Sheds != 0 {
			t.Errorf("Timeouts %d Cancels %d Sheds %d; callers saw %d, %d, 0", st.Timeouts, st.Cancels, st.Sheds, timeouts, cancels)
		}
		if st.RefusedOpens != int64(refusals) || st.OpenErrors != int64(refusals) || st.Opens != 0 {
			t.Errorf("RefusedOpens %d OpenErrors %d Opens %d; factory refused %d", st.RefusedOpens, st.OpenErrors, st.Opens, refusals)
		}
		if st.Open != 0 || st.Opening != 0 || st.EffectiveSize < 0 || st.EffectiveSize > 4 {
			t.Errorf("stats: %+v", st)
		}
		// A new waiter makes a probe; Close ends it at once.
		go p.Acquire(bg())
		time.Sleep(100 * time.Millisecond)
		stopCheck()
		t0 := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("Close took %v", d)
		}
		if st := p.Stats(); st.Open != 0 || st.EffectiveSize != 4 {
			t.Errorf("after Close: %+v", st)
		}
		if live, _, _, _, _ := s.snapshot(); live != 0 {
			t.Errorf("%d live at the factory after Close", live)
		}
	})
}

// The picture a *TimeoutError gives of the pool (Open, Opening) counts
// the slots refusals hold back as connections open and being opened,
// while Stats, at the same instant, leaves them out ("Open and Opening
// leave those slots out"). A pool that holds no connection at all and
// whose every open is refused times its waiters out with "open 4 ...
// opening 4": it reads as four connects hanging, not a full server.
func TestAttack3_TimeoutErrorCountsHeldBackSlotsAsOpening(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &a3Server{room: 0}
		p := a3Pool(t, s, Config[*fakeConn]{MaxSize: 4, AcquireTimeout: 100 * time.Millisecond})
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range 5 {
			wg.Go(func() { _, errs[i] = p.Acquire(bg()) })
		}
		time.Sleep(99 * time.Millisecond)
		st := p.Stats()
		wg.Wait()
		var te *TimeoutError
		if !errors.As(errs[4], &te) {
			t.Fatalf("%v", errs[4])
		}
		if st.Open != 0 || st.Opening != 0 {
			t.Fatalf("Stats: %+v", st)
		}
		for i, err := range errs {
			errors.As(err, &te)
			if te.Open != st.Open || te.Opening != st.Opening {
				t.Errorf("waiter %d: TimeoutError says open %d, opening %d; Stats just before: open %d, opening %d (nothing was open or opening)\n%v", i, te.Open, te.Opening, st.Open, st.Opening, err)
				break
			}
		}
	})
}

// Close while the probe's own Open is under way (the server slow to
// refuse), with parked slots and waiters: Close returns at once, every
// waiter gets ErrClosed, nothing is left live, EffectiveSize is MaxSize.
func TestAttack3_CloseDuringProbeOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &a3Server{room: 0}
		p := a3Pool(t, s, Config[*fakeConn]{MaxSize: 4, AcquireTimeout: -1})
		stop := a3Watch(t, p)
		defer stop()
		errs := make(chan error, 6)
		for range 6 {
			go func() { _, err := p.Acquire(bg()); errs <- err }()
		}
		synctest.Wait()
		// From now on opens hang until their context ends (Close).
		s.mu.Lock()
		s.gate = make(chan struct{})
		s.mu.Unlock()
		time.Sleep(300 * time.Millisecond) // the probe is inside Open now
		if st := p.Stats(); st.EffectiveSize != 0 || st.Waiting != 6 {
			t.Fatalf("setup: %+v", st)
		}
		t0 := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("Close took %v", d)
		}
		for range 6 {
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Errorf("waiter: %v", err)
			}
		}
		if st := p.Stats(); st.EffectiveSize != 4 || st.Open != 0 || st.Opening != 0 {
			t.Errorf("after Close: %+v", st)
		}
		if live, _, _, _, _ := s.snapshot(); live != 0 {
			t.Errorf("%d live", live)
		}
	})
}

// The MinIdle keeper's opens refused, with and without waiters: no slot
// is lost, and once the server has room the keeper gets MinIdle back by
// its next round, with EffectiveSize back at MaxSize.
func TestAttack3_KeeperOpensRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &a3Server{room: 0}
		p := a3Pool(t, s, Config[*fakeConn]{MaxSize: 3, MinIdle: 2, AcquireTimeout: 50 * time.Millisecond})
		stop := a3Watch(t, p)
		defer stop()
		synctest.Wait()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := p.Acquire(bg()); !errors.Is(err, ErrTimeout) || !errors.Is(err, errFull) {
					t.Errorf("Acquire = %v", err)
				}
			})
		}
		// TryAcquire with nobody waiting: its background open is refused.
		wg.Wait()
		time.Sleep(refusedMaxBackoff)
		if _, err := p.TryAcquire(bg()); !errors.Is(err, ErrExhausted) {
			t.Errorf("TryAcquire = %v", err)
		}
		synctest.Wait()
		if st := p.Stats(); st.EffectiveSize != 3 || st.Open != 0 {
			t.Errorf("with the server full and nobody waiting: %+v", st)
		}
		s.setRoom(-1)
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 2 || st.EffectiveSize != 3 {
			t.Errorf("a round after the server made room: %+v, want MinIdle 2 idle", st)
		}
		_, _, _, refusals, _ := s.snapshot()
		if st := p.Stats(); st.RefusedOpens != int64(refusals) {
			t.Errorf("RefusedOpens %d, factory refused %d", st.RefusedOpens, refusals)
		}
	})
}
