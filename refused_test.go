package fairpool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// errFull stands for a server's "too many connections".
var errFull = errors.New("fake: sorry, too many clients already")

// fullServer admits at most room connections at once and refuses the rest
// with errFull, recording when each open was attempted.
type fullServer struct {
	t        *testing.T
	mu       sync.Mutex
	room     int
	live     int
	attempts []time.Time
}

func (s *fullServer) setRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

func (s *fullServer) Open(context.Context) (*fakeConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, time.Now())
	if s.live >= s.room {
		return nil, errFull
	}
	s.live++
	return &fakeConn{id: len(s.attempts)}, nil
}

func (s *fullServer) Close(*fakeConn) error {
	s.mu.Lock()
	s.live--
	s.mu.Unlock()
	return nil
}

func (s *fullServer) attemptsSince(t0 time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ds []time.Duration
	for _, at := range s.attempts {
		if !at.Before(t0) {
			ds = append(ds, at.Sub(t0))
		}
	}
	return ds
}

func newRefusingPool(t *testing.T, room, maxSize int, timeout time.Duration) (*Pool[*fakeConn], *fullServer) {
	s := &fullServer{t: t, room: room}
	p, err := New(Config[*fakeConn]{
		Open: s.Open, Close: s.Close, MaxSize: maxSize, AcquireTimeout: timeout, Name: "fleet",
		Refused: func(err error) bool { return errors.Is(err, errFull) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, s
}

func TestRefusedOpensKeepWaitersForHeldConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newRefusingPool(t, 2, 8, time.Second)
		a, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for range 5 {
			wg.Go(func() {
				l, err := p.Acquire(bg())
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
				l.Release()
			})
		}
		synctest.Wait()
		st := p.Stats()
		if st.Waiting != 5 || st.RefusedOpens == 0 || st.EffectiveSize >= 8 {
			t.Fatalf("with the server full: %+v, want 5 waiting, refusals, a lower effective size", st)
		}
		if err := p.checkInvariants(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		a.Release()
		b.Release()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("a waiter failed although the pool held connections: %v", err)
		}
		if st := p.Stats(); st.Acquires != 7 || st.Opens != 2 {
			t.Errorf("acquires %d, opens %d; want 7 served by the 2 connections", st.Acquires, st.Opens)
		}
	})
}

func TestRefusedPoolServesWhenRoomFreesBeforeDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, s := newRefusingPool(t, 0, 4, time.Second)
		go func() {
			time.Sleep(600 * time.Millisecond)
			s.setRoom(1)
		}()
		start := time.Now()
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatalf("Acquire = %v, want a connection once the server had room", err)
		}
		// The probe's back-off is at most 250 ms, plus the time to notice.
		if waited := time.Since(start); waited < 600*time.Millisecond || waited > 900*time.Millisecond {
			t.Errorf("served after %v, want between 600 ms and 900 ms", waited)
		}
		l.Release()
	})
}

func TestRefusedPoolFailsAtDeadlineNamingTheRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newRefusingPool(t, 0, 4, 300*time.Millisecond)
		start := time.Now()
		_, err := p.Acquire(bg())
		if waited := time.Since(start); waited != 300*time.Millisecond {
			t.Errorf("failed after %v, want at AcquireTimeout (300 ms)", waited)
		}
		var te *TimeoutError
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || !errors.Is(err, errFull) {
			t.Fatalf("err = %v, want a *TimeoutError wrapping ErrTimeout and the refusal", err)
		}
		if !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), errFull.Error()) {
			t.Errorf("message %q does not say the opens were refused", err)
		}
		// A context deadline ends the wait the same way.
		ctx, cancel := context.WithTimeout(bg(), 100*time.Millisecond)
		defer cancel()
		if _, err := p.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errFull) {
			t.Errorf("with a context deadline: %v", err)
		}
	})
}

func TestRefusedProbesBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, s := newRefusingPool(t, 0, 8, 3*time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { p.Acquire(bg()) })
		}
		wg.Wait()
		at := s.attemptsSince(start)
		// 8 opens at first, then one probe at a time: 5 ms doubling to
		// 250 ms, jittered down by up to half. Hammering would be
		// thousands.
		if len(at) < 8+12 || len(at) > 8+30 {
			t.Errorf("%d opens in 3 s, want 20 to 38", len(at))
		}
		var late []time.Duration
		for i := 1; i < len(at); i++ {
			if at[i] > time.Second {
				late = append(late, at[i]-at[i-1])
			}
		}
		for _, gap := range late {
			if gap < 125*time.Millisecond || gap > 250*time.Millisecond {
				t.Errorf("gap %v between probes after 1 s, want 125 ms to 250 ms", gap)
			}
		}
		// The probe that wakes to find nobody waiting frees every slot.
		time.Sleep(refusedMaxBackoff)
		if st := p.Stats(); st.RefusedOpens != int64(len(at)) || st.EffectiveSize != 8 || p.Stats().Open != 0 {
			t.Errorf("stats after the waiters left: %+v", st)
		}
	})
}

func TestEffectiveSizeRecoversWhenOpensSucceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, s := newRefusingPool(t, 2, 6, 5*time.Second)
		hold := make(chan struct{})
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				l, err := p.Acquire(bg())
				if err != nil {
					t.Error(err)
					return
				}
				<-hold
				l.Release()
			})
		}
		time.Sleep(100 * time.Millisecond)
		if st := p.Stats(); st.InUse != 2 || st.EffectiveSize > 3 {
			t.Fatalf("with room for 2: %+v", st)
		}
		s.setRoom(6)
		time.Sleep(300 * time.Millisecond)
		st := p.Stats()
		if st.InUse != 6 || st.EffectiveSize != 6 || st.Waiting != 0 {
			t.Errorf("after the server made room: %+v, want all 6 in use", st)
		}
		close(hold)
		wg.Wait()
		if err := p.checkInvariants(); err != nil {
			t.Error(err)
		}
	})
}

func TestCloseEndsTheProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newRefusingPool(t, 0, 2, -1)
		done := make(chan error)
		go func() { _, err := p.Acquire(bg()); done <- err }()
		time.Sleep(time.Second)
		start := time.Now()
		if err := p.Close(bg()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close waited %v for the probe's back-off", d)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter: %v", err)
		}
	})
}

func TestWithoutRefusedAFailedOpenFailsTheWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fullServer{t: t}
		p, err := New(Config[*fakeConn]{Open: s.Open, Close: s.Close, MaxSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(bg())
		var oe *OpenError
		if _, err := p.Acquire(bg()); !errors.As(err, &oe) || !errors.Is(err, errFull) {
			t.Errorf("Acquire = %v, want the *OpenError at once", err)
		}
		if st := p.Stats(); st.RefusedOpens != 0 || st.OpenErrors != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}
