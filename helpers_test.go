package fairpool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain fails the run if any goroutine of the package outlives the tests:
// the stdlib stand-in for goleak, so the core module needs no dependency.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitForGoroutines waits until no goroutine runs code of this package
// other than the caller, and returns the stacks of any that still do.
func waitForGoroutines(limit time.Duration) string {
	// Polls: in a synctest bubble, on fake time.
	deadline := time.Now().Add(limit)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if isPoolGoroutine(g) && !strings.Contains(g, "waitForGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeConn is what the test pools hold. owner is swapped atomically by each
// user, so a connection handed to two holders at once is caught.
type fakeConn struct {
	id     int
	owner  atomic.Int64
	closed atomic.Bool
}

// use claims c for holder id and fails t if someone else holds it.
func (c *fakeConn) use(t testing.TB, id int64) {
	if !c.owner.CompareAndSwap(0, id) {
		t.Errorf("conn %d held by %d and %d at once", c.id, c.owner.Load(), id)
	}
	if c.closed.Load() {
		t.Errorf("conn %d used after Close", c.id)
	}
}

func (c *fakeConn) done(id int64) { c.owner.CompareAndSwap(id, 0) }

// markClosed is a factory's Close of c: it fails t if c was closed before
// or is still held, which a pool or group must never let happen.
func (c *fakeConn) markClosed(t testing.TB) {
	if c.closed.Swap(true) {
		t.Errorf("conn %d closed twice", c.id)
	}
	if o := c.owner.Load(); o != 0 {
		t.Errorf("conn %d closed while held by %d", c.id, o)
	}
}

// dice is a test factory's source of faults: a fixed sequence (splitmix64
// from zero), so that a failing run fails again the same way.
type dice struct{ rnd atomic.Uint64 }

// chance reports true perMille times in a thousand.
func (d *dice) chance(perMille int64) bool {
	if perMille <= 0 {
		return false
	}
	x := d.rnd.Add(0x9E3779B97F4A7C15)
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return int64(x%1000) < perMille
}

// factory opens and closes fakeConns, records every one, and checks on
// every open that MaxSize is never exceeded counting opens under way and
// closes not yet finished: an oracle independent of the pool's counters.
type factory struct {
	t       testing.TB
	maxSize int

	mu      sync.Mutex
	all     []*fakeConn
	live    int // opening, open, or closing
	opens   int // successful
	fails   int
	closes  int
	failErr error // when set, Open fails with it

	failRate  atomic.Int64 // per mille of opens that fail
	openDelay time.Duration
	gate      chan struct{} // when set, Open waits for a receive... of a value
	dice
}

var errOpen = errors.New("fake: connection refused")

func newFactory(t testing.TB, maxSize int) *factory {
	return &factory{t: t, maxSize: maxSize}
}

func (f *factory) Open(ctx context.Context) (*fakeConn, error) {
	f.mu.Lock()
	f.live++
	if f.live > f.maxSize {
		f.t.Errorf("MaxSize %d exceeded: %d connections opening, open or closing", f.maxSize, f.live)
	}
	failErr := f.failErr
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			failErr = ctx.Err()
		}
	}
	if f.openDelay > 0 {
		time.Sleep(f.openDelay)
	}
	if failErr == nil && f.chance(f.failRate.Load()) {
		failErr = errOpen
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if failErr != nil {
		f.live--
		f.fails++
		return nil, failErr
	}
	c := &fakeConn{id: len(f.all) + 1}
	f.all = append(f.all, c)
	f.opens++
	return c, nil
}

func (f *factory) Close(c *fakeConn) error {
	c.markClosed(f.t)
	f.mu.Lock()
	f.live--
	f.closes++
	f.mu.Unlock()
	return nil
}

func (f *factory) setFail(err error) {
	f.mu.Lock()
	f.failErr = err
	f.mu.Unlock()
}

type factoryCounts struct{ opens, fails, closes, live int }

func (f *factory) counts() factoryCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return factoryCounts{f.opens, f.fails, f.closes, f.live}
}

// newTestPool makes a pool over a new factory. Cleanup closes the pool,
// checks the invariants, and fails the test if a connection is left open.
func newTestPool(t testing.TB, cfg Config[*fakeConn]) (*Pool[*fakeConn], *factory) {
	t.Helper()
	f := newFactory(t, cfg.MaxSize)
	return newTestPoolWith(t, f, cfg), f
}

func newTestPoolWith(t testing.TB, f *factory, cfg Config[*fakeConn]) *Pool[*fakeConn] {
	t.Helper()
	if cfg.Open == nil {
		cfg.Open = f.Open
	}
	if cfg.Close == nil {
		cfg.Close = f.Close
	}
	p, err := New(cfg)
	return mustNew(t, p, err, p.Stats, func() int { return f.counts().live })
}

// testSubject is a Pool or a Group under test: what the end of a test
// checks of either.
type testSubject interface {
	checkInvariants() error
	Close(context.Context) error
}

// mustNew fails t at once if making s failed (err), and otherwise has the
// end of t check what every test's pool or group owes: its invariants
// hold, Close returns in time, and the factory has nothing left open
// (open counts its connections). stats is read only for the message.
func mustNew[S testSubject](t testing.TB, s S, err error, stats func() Stats, open func() int) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.checkInvariants(); err != nil {
			t.Errorf("invariant: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v (stats %+v)", err, stats())
		}
		if n := open(); n != 0 {
			t.Errorf("%d connections still open after Close", n)
		}
	})
	return s
}

// checkInv fails t if the pool's invariants are broken now.
func checkInv[T any](t testing.TB, p *Pool[T]) {
	t.Helper()
	if err := p.checkInvariants(); err != nil {
		t.Fatalf("invariant: %v", err)
	}
}

// waitFor spins until cond holds, yielding, for tests outside a synctest
// bubble that must see another goroutine reach a state (never a sleep as a
// guess).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func bg() context.Context { return context.Background() }

// closesDone waits until no close is under way: the pool runs Close
// callbacks on goroutines of its own, off the caller's path.
func closesDone[T any](t testing.TB, p *Pool[T]) {
	t.Helper()
	waitFor(t, "closes to finish", func() bool { return p.Stats().Closing == 0 })
}

// waitBounded waits for wg, at most limit: a test that deadlocks fails
// with a message instead of hanging.
func waitBounded(wg *sync.WaitGroup, limit time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

// forceGC runs the garbage collector without pause on a goroutine of its
// own, so that cleanups race whatever the test does, until the returned
// stop is called.
func forceGC() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				runtime.GC()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// isPoolGoroutine reports whether the goroutine whose stack is g runs code
// of a Pool or a Group: their own methods, a connection's life (opens,
// Checks) or a test factory of theirs.
func isPoolGoroutine(g string) bool {
	for _, mark := range []string{"fairpool.(*Pool[", "fairpool.(*Group[", "fairpool.(*life[", "fairpool.(*checkRun[", "fairpool.(*factory"} {
		if strings.Contains(g, mark) {
			return true
		}
	}
	return false
}

// onCallersPath reports whether stack shows a caller's entry point of the
// pool, where Close callbacks must never run.
func onCallersPath(stack string) bool {
	for _, fn := range []string{"(*Lease[...]).Release(", "(*Lease[...]).Discard(", "(*Pool[...]).Close(",
		"(*Pool[...]).acquire(", "(*Pool[...]).With(", "(*Pool[...]).get("} {
		if strings.Contains(stack, "fairpool."+fn) {
			return true
		}
	}
	return false
}

// recordingClose wraps close (a factory's) for the reclaim tests: it
// records the stack of the goroutine it runs on, then blocks until block
// is closed, as a slow Close would. stack returns what it recorded, ""
// until it has run.
func recordingClose[C any](block <-chan struct{}, close func(C) error) (wrapped func(C) error, stack func() string) {
	var rec atomic.Value
	wrapped = func(c C) error {
		buf := make([]byte, 8192)
		rec.Store(string(buf[:runtime.Stack(buf, false)]))
		<-block
		return close(c)
	}
	stack = func() string {
		s, _ := rec.Load().(string)
		return s
	}
	return wrapped, stack
}

// onCleanupGoroutine reports whether stack is of one of the runtime's
// cleanup goroutines, which every runtime.AddCleanup in the program
// shares: a Close that blocks there stalls them all.
func onCleanupGoroutine(stack string) bool {
	return strings.Contains(stack, "runtime.runCleanups") || strings.Contains(stack, "unique_runtime")
}
