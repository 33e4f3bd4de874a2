package fairpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Regression tests for callbacks that panic: each panic is that
// callback's failure, never the group's (callback.go).

// panicGroup is a group whose callbacks panic when told to.
type panicGroup struct {
	g   *testGroup
	f   *keyFactory
	rec *recorder
	// What panics next: one of Open, Check, Reset, Close; or "stray", an
	// Open that returns a connection with an error.
	mu   sync.Mutex
	next string
}

func newPanicGroup(t *testing.T) *panicGroup {
	pg := &panicGroup{rec: &recorder{}}
	take := func(name string) bool {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		if pg.next != name {
			return false
		}
		pg.next = ""
		return true
	}
	pg.g, pg.f = newTestGroup(t, GroupConfig[string, *keyConn]{
		Name: "g", PerKeyMax: 1, AcquireTimeout: time.Second, CheckAfter: time.Second, Logger: slog.New(pg.rec),
		Open: func(ctx context.Context, key string) (*keyConn, error) {
			if take("Open") {
				panic("open: nil dialer")
			}
			c, err := pg.f.Open(ctx, key)
			if err == nil && take("stray") {
				return c, errHandshake
			}
			return c, err
		},
		Close: func(c *keyConn) error {
			err := pg.f.Close(c)
			if take("Close") {
				panic(fmt.Errorf("close: %w", errors.ErrUnsupported))
			}
			return err
		},
		Check: func(context.Context, *keyConn) error {
			if take("Check") {
				panic("ping: nil conn")
			}
			return nil
		},
		Reset: func(context.Context, *keyConn) error {
			if take("Reset") {
				panic("reset: nil conn")
			}
			return nil
		},
	})
	return pg
}

func (pg *panicGroup) panicNext(name string) {
	pg.mu.Lock()
	pg.next = name
	pg.mu.Unlock()
}

// TestGroupCallbackPanicsCostNothing: a panic in Open, Check, Reset or
// Close is recovered, logged at ERROR with its stack and the key, and
// counts as that callback's failure; the waiter gets the error, the slot
// comes back (PerKeyMax 1: the next acquire gets a connection), Stats
// reconcile and Close drains. An Open that returns a connection with its
// error has the connection closed.
func TestGroupCallbackPanicsCostNothing(t *testing.T) {
	for _, tc := range []struct {
		callback string
		run      func(t *testing.T, pg *panicGroup)
		stats    func(Stats) bool
	}{
		{"Open", func(t *testing.T, pg *panicGroup) {
			pg.panicNext("Open")
			_, err := pg.g.Acquire(bg(), "a")
			var oe *OpenError
			var pe *PanicError
			if !errors.As(err, &oe) || !errors.As(err, &pe) || pe.Callback != "Open" || pe.Value != "open: nil dialer" {
				t.Fatalf("Acquire = %v, want an OpenError wrapping the PanicError", err)
			}
		}, func(s Stats) bool { return s.OpenErrors == 1 && s.Opens == 1 }},
		{"stray", func(t *testing.T, pg *panicGroup) {
			pg.panicNext("stray")
			if _, err := pg.g.Acquire(bg(), "a"); !errors.Is(err, errHandshake) {
				t.Fatalf("Acquire = %v, want the open error", err)
			}
			synctest.Wait()
			if c := pg.f.counts(); c.closes != 1 || c.total != 0 {
				t.Errorf("the connection Open returned with its error was not closed: %+v", c)
			}
		}, func(s Stats) bool { return s.OpenErrors == 1 && s.Opens == 1 }},
		{"Check", func(t *testing.T, pg *panicGroup) {
			idleConn(t, pg.g, "a", 2*time.Second)
			pg.panicNext("Check")
			_, err := pg.g.Acquire(bg(), "a")
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Callback != "Check" {
				t.Fatalf("Acquire = %v, want the PanicError", err)
			}
		}, func(s Stats) bool { return s.ClosedCheck == 1 && s.Opens == 2 }},
		{"Reset", func(t *testing.T, pg *panicGroup) {
			pg.panicNext("Reset")
			idleConn(t, pg.g, "a", 0)
		}, func(s Stats) bool { return s.ClosedReset == 1 && s.Opens == 2 }},
		{"Close", func(t *testing.T, pg *panicGroup) {
			l, _ := pg.g.Acquire(bg(), "a")
			pg.panicNext("Close")
			l.Discard()
		}, func(s Stats) bool { return s.ClosedDiscard == 1 && s.Opens == 2 }},
	} {
		t.Run(tc.callback, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pg := newPanicGroup(t)
				tc.run(t, pg)
				synctest.Wait()
				checkGroupInv(t, pg.g)
				l, err := pg.g.Acquire(bg(), "a")
				if err != nil {
					t.Fatalf("after the panic: %v", err)
				}
				l.Release()
				synctest.Wait()
				s := pg.g.Stats().Total
				if !tc.stats(s) || s.InUse != 0 || s.Waiting != 0 || s.Open != 1 || s.Idle != 1 {
					t.Errorf("stats %+v", s)
				}
				if c := pg.f.counts(); c.total != 1 {
					t.Errorf("factory has %d open, want 1", c.total)
				}
				levels, attrs := pg.rec.find("fairpool: callback panicked")
				if tc.callback == "stray" {
					if len(levels) != 0 {
						t.Errorf("%d panics logged", len(levels))
					}
					return
				}
				if len(levels) != 1 || levels[0] != slog.LevelError {
					t.Fatalf("panic records at %v, want one at ERROR", levels)
				}
				a := attrs[0]
				if a["pool"].String() != "g" || a["key"].String() != "a" || a["callback"].String() != tc.callback || a["panic"].Any() == nil || len(a["stack"].String()) == 0 {
					t.Errorf("panic record %v", a)
				}
			})
		})
	}
}
