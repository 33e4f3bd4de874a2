package fairpool

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"
	"time"
)

// How the pool calls the user's callbacks (Open, Close, Check, Reset), for
// Pool and Group alike. One rule: a callback may block, fail or panic, and
// none of it may cost the pool a slot, exceed MaxSize, hold a waiter past
// its deadline or end the program.
//
//   - A panic is recovered and becomes a *PanicError, logged at ERROR with
//     the panicking stack, and counts as that callback's failure: an Open
//     that panics fails like an Open that returned the error (the waiter it
//     was for receives it, in an *OpenError); a Check that panics closes the
//     connection and fails that Acquire with the *PanicError; a Reset that
//     panics closes the connection like a failed Reset; a Close that panics
//     is logged like a failed Close. Panics inside With's function are not
//     callbacks of the pool: they propagate to With's caller.
//   - Close runs on a goroutine of the pool, never on the goroutine of an
//     Acquire, Release, Discard or Close call, so a slow Close delays no
//     caller; the slot stays counted until Close returns.
//   - Check runs in a goroutine of its own and the caller waits for it no
//     longer than its deadline; a Check that outlives the caller decides the
//     connection's fate when it returns.
//   - Open always runs on a goroutine of the pool (see Config.Open).

// PanicError is what a panic in a Config callback (Open, Close, Check,
// Reset) becomes. The pool recovers the panic, logs it at ERROR with Stack,
// and treats it as that callback's failure, so the pool stays whole and a
// panic on one of the pool's own goroutines cannot end the program.
type PanicError struct {
	Callback string // "Open", "Close", "Check" or "Reset"
	Value    any    // what the callback passed to panic
	Stack    string // the panicking goroutine's stack
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("fairpool: Config.%s panicked: %v", e.Callback, e.Value)
}

// Unwrap returns the panic value if it is an error, so errors.Is and
// errors.As see through to it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// recovered turns a recovered panic value into a *PanicError for *err. It
// is called from a deferred function: recover must be called there.
func recovered(callback string, v any, err *error) {
	*err = &PanicError{Callback: callback, Value: v, Stack: string(debug.Stack())}
}

func callOpen[T any](open func(context.Context) (T, error), ctx context.Context) (v T, err error) {
	defer func() {
		if x := recover(); x != nil {
			var zero T
			v = zero
			recovered("Open", x, &err)
		}
	}()
	return open(ctx)
}

func callClose[T any](close func(T) error, v T) (err error) {
	if close == nil {
		return nil
	}
	defer func() {
		if x := recover(); x != nil {
			recovered("Close", x, &err)
		}
	}()
	return close(v)
}

// callVet runs Check or Reset, whose shapes are the same.
func callVet[T any](name string, fn func(context.Context, T) error, ctx context.Context, v T) (err error) {
	defer func() {
		if x := recover(); x != nil {
			recovered(name, x, &err)
		}
	}()
	return fn(ctx, v)
}

// errGoexit is what a callback that called runtime.Goexit (t.FailNow in a
// test double, say) counts as: it neither returned nor panicked, and the
// pool's deferred bookkeeping settles its slot as for a panic.
func errGoexit(callback string) error {
	return &PanicError{Callback: callback, Value: "runtime.Goexit"}
}

// openValue calls open under the rule above. A value returned together
// with an error may be a connection opened half-way: it is closed here,
// while its slot still counts as opening, rather than leaked; the close is
// logged with reason "open failed" and counted nowhere, as it was never a
// connection of the pool.
func openValue[T, K any](open func(context.Context) (T, error), closeFn func(T) error, ev eventLog[K], ctx context.Context) (T, error) {
	v, err := callOpen(open, ctx)
	if err == nil {
		return v, nil
	}
	ev.panicked(err)
	if !isZero(v) {
		if cerr := callClose(closeFn, v); !ev.panicked(cerr) {
			ev.closed(closeOpenFailed, cerr)
		}
	}
	var zero T
	return zero, err
}

// runReset runs reset on v under the rule above, with a context that ends
// at timeout or when stop does (Close), and reports whether v may be
// reused. A failure, a panic or runtime.Goexit included, is logged and
// drop closes v: in a deferred function, so that a Goexit, which never
// returns, loses nothing. A failure once Close ended the context is none
// of v's: v goes back, and the closed pool closes it for that reason.
func runReset[T, K any](reset func(context.Context, T) error, v T, timeout time.Duration, stop context.Context, ev eventLog[K], drop func()) (ok bool) {
	ctx, cancel := context.WithTimeout(stop, timeout)
	err := errGoexit("Reset")
	defer func() {
		cancel()
		switch {
		case err == nil:
		case stop.Err() != nil:
			ok = true
		default:
			if !ev.panicked(err) {
				ev.resetFailed(err)
			}
			drop()
		}
	}()
	err = callVet("Reset", reset, ctx, v)
	return err == nil
}

// isZero reports whether v is T's zero value. An Open that fails but still
// returns a value may have opened something half-way: that value is closed
// rather than leaked.
func isZero[T any](v T) bool {
	rv := reflect.ValueOf(&v).Elem()
	return rv.IsZero()
}
