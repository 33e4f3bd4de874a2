package fairpool

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestNestedWithReusesConnectionAtMaxSize1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Second})
		start := time.Now()
		err := p.With(bg(), func(ctx context.Context, outer *fakeConn) error {
			derived, cancel := context.WithCancel(ctx)
			defer cancel()
			return p.With(derived, func(ctx context.Context, inner *fakeConn) error {
				if inner != outer {
					t.Error("nested With got a different connection")
				}
				return p.With(ctx, func(_ context.Context, innermost *fakeConn) error {
					if innermost != outer {
						t.Error("third level got a different connection")
					}
					if s := p.Stats(); s.InUse != 1 || s.Acquires != 1 {
						t.Errorf("inside nested With: %+v", s)
					}
					return nil
				})
			})
		})
		if err != nil {
			t.Fatalf("nested With: %v", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("nested With waited %v", time.Since(start))
		}
		if s := p.Stats(); s.InUse != 0 || s.Idle != 1 {
			t.Errorf("outermost With did not release: %+v", s)
		}
		if c := f.counts(); c.opens != 1 {
			t.Errorf("opens = %d", c.opens)
		}
	})
}

func TestWithOnOtherPoolDoesNotReuse(t *testing.T) {
	p1, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	p2, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	err := p1.With(bg(), func(ctx context.Context, c1 *fakeConn) error {
		return p2.With(ctx, func(ctx context.Context, c2 *fakeConn) error {
			if c1 == c2 {
				t.Error("pools share a connection")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWithAfterOuterReturnedAcquiresAnew(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 2})
	var kept context.Context
	var first *fakeConn
	p.With(bg(), func(ctx context.Context, c *fakeConn) error { kept, first = ctx, c; return nil })
	hold, _ := p.Acquire(bg()) // takes first from idle
	defer hold.Release()
	err := p.With(kept, func(_ context.Context, c *fakeConn) error {
		if c == first {
			t.Error("With on a stale context reused a connection now held by someone else")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWithReturnsErrorUnchanged(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	want := fmt.Errorf("query failed: %w", errors.New("syntax"))
	if got := p.With(bg(), func(context.Context, *fakeConn) error { return want }); got != want {
		t.Errorf("With = %v, want the same error value", got)
	}
	if c := f.counts(); c.closes != 0 {
		t.Error("an ordinary error discarded the connection")
	}
}

func TestWithErrBadConnDiscards(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	bad := fmt.Errorf("read: connection reset: %w", ErrBadConn)
	var c1 *fakeConn
	if got := p.With(bg(), func(_ context.Context, c *fakeConn) error { c1 = c; return bad }); got != bad {
		t.Errorf("With = %v", got)
	}
	closesDone(t, p)
	if !c1.closed.Load() {
		t.Error("ErrBadConn did not close the connection")
	}
	// Nested: the inner With reports the break, the outer one discards.
	var c2 *fakeConn
	err := p.With(bg(), func(ctx context.Context, c *fakeConn) error {
		c2 = c
		p.With(ctx, func(context.Context, *fakeConn) error { return ErrBadConn })
		if c.closed.Load() {
			t.Error("inner With closed the connection while the outer still uses it")
		}
		return nil
	})
	closesDone(t, p)
	if err != nil || !c2.closed.Load() {
		t.Errorf("outer With: err %v, closed %v", err, c2.closed.Load())
	}
	if s := p.Stats(); s.ClosedDiscard != 2 || s.Open != 0 {
		t.Errorf("stats %+v", s)
	}
	if c := f.counts(); c.closes != 2 {
		t.Errorf("closes %d", c.closes)
	}
}

func panicker(p *Pool[*fakeConn], got **fakeConn) {
	p.With(bg(), func(_ context.Context, c *fakeConn) error {
		*got = c
		panic("boom")
	})
}

// TestPanicInWithKeepsStackAndPoolWhole: the panic reaches the caller with
// the frame that panicked still on the stack (no recover and re-panic),
// the connection is closed, and the pool serves the next caller.
func TestPanicInWithKeepsStackAndPoolWhole(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Second})
	var c *fakeConn
	func() {
		defer func() {
			r := recover()
			if r != "boom" {
				t.Fatalf("recovered %v, want boom", r)
			}
			if stack := string(debug.Stack()); !strings.Contains(stack, "panicker.func1") {
				t.Errorf("the panicking frame is gone from the stack:\n%s", stack)
			}
		}()
		panicker(p, &c)
	}()
	closesDone(t, p)
	if !c.closed.Load() {
		t.Error("connection of a panicking With was not closed")
	}
	if err := p.With(bg(), func(context.Context, *fakeConn) error { return nil }); err != nil {
		t.Errorf("pool broken after panic: %v", err)
	}
	if s := p.Stats(); s.ClosedDiscard != 1 || s.InUse != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestNestedPanicDiscardsOnce(t *testing.T) {
	p, f := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	func() {
		defer func() { recover() }()
		p.With(bg(), func(ctx context.Context, _ *fakeConn) error {
			return p.With(ctx, func(context.Context, *fakeConn) error { panic("inner") })
		})
	}()
	closesDone(t, p)
	if c := f.counts(); c.closes != 1 || c.live != 0 {
		t.Errorf("after nested panic: %+v", c)
	}
}

func TestWithWaitErrorIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1, AcquireTimeout: time.Second})
		held, _ := p.Acquire(bg())
		defer held.Release()
		called := false
		err := p.With(bg(), func(context.Context, *fakeConn) error { called = true; return nil })
		if !errors.Is(err, ErrTimeout) || called {
			t.Errorf("With = %v, fn called %v", err, called)
		}
	})
}
