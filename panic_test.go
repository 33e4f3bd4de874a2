package fairpool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Callbacks that panic: each panic is that callback's failure, never the
// pool's (callback.go). The Group's are in group_panic_test.go.

// panicky is a pool whose callbacks panic when told to, logging to a
// buffer, to show that each panic leaves the pool whole.
type panicky struct {
	open, check, reset, close atomic.Bool
	logs                      *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newPanicky(t *testing.T, maxSize int) (*Pool[*fakeConn], *factory, *panicky) {
	pk := &panicky{logs: &lockedBuffer{}}
	f := newFactory(t, maxSize)
	p := newTestPoolWith(t, f, Config[*fakeConn]{MaxSize: maxSize, CheckAfter: time.Nanosecond,
		Logger: slog.New(slog.NewTextHandler(pk.logs, nil)),
		Open: func(ctx context.Context) (*fakeConn, error) {
			if pk.open.Swap(false) {
				panic("open: boom")
			}
			return f.Open(ctx)
		},
		Check: func(context.Context, *fakeConn) error {
			if pk.check.Swap(false) {
				panic("check: boom")
			}
			return nil
		},
		Reset: func(context.Context, *fakeConn) error {
			if pk.reset.Swap(false) {
				panic(errors.New("reset: boom"))
			}
			return nil
		},
		Close: func(c *fakeConn) error {
			err := f.Close(c)
			if pk.close.Swap(false) {
				panic("close: boom")
			}
			return err
		},
	})
	return p, f, pk
}

// TestCallbackPanicsKeepThePoolWhole: a panic in Open reaches the waiter
// as an error; in Check it closes the connection and fails that Acquire;
// in Reset and Close it is logged and the slot comes back. Each is logged
// at ERROR with its stack, and the pool of one still serves afterwards.
func TestCallbackPanicsKeepThePoolWhole(t *testing.T) {
	p, _, pk := newPanicky(t, 1)
	use := func(what string) {
		t.Helper()
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatalf("after a panic in %s the pool does not serve: %v (%+v)", what, err, p.Stats())
		}
		l.Release()
		closesDone(t, p)
	}

	pk.open.Store(true)
	_, err := p.Acquire(bg())
	var pe *PanicError
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.As(err, &pe) || pe.Callback != "Open" || pe.Value != "open: boom" || !strings.Contains(pe.Stack, "newPanicky") {
		t.Fatalf("Acquire when Open panics = %v, want an OpenError carrying the panic and its stack", err)
	}
	use("Open")

	pk.check.Store(true)
	_, err = p.Acquire(bg())
	if !errors.As(err, &pe) || pe.Callback != "Check" {
		t.Fatalf("Acquire when Check panics = %v, want the PanicError", err)
	}
	use("Check")

	l, _ := p.Acquire(bg())
	pk.reset.Store(true)
	l.Release()
	closesDone(t, p)
	use("Reset")

	l, _ = p.Acquire(bg())
	pk.close.Store(true)
	l.Discard()
	closesDone(t, p)
	use("Close")

	s := p.Stats()
	if s.InUse != 0 || s.Open != s.Idle || s.ClosedCheck != 1 || s.ClosedReset != 1 || s.ClosedDiscard != 1 || s.OpenErrors != 1 {
		t.Errorf("stats after the panics: %+v", s)
	}
	logs := pk.logs.String()
	for _, cb := range []string{"Open", "Check", "Reset", "Close"} {
		if !strings.Contains(logs, `level=ERROR msg="fairpool: callback panicked" pool="" callback=`+cb+" ") {
			t.Errorf("no ERROR record for the panic in %s:\n%s", cb, logs)
		}
	}
	if !strings.Contains(logs, "stack=") {
		t.Error("panic records carry no stack")
	}
}
