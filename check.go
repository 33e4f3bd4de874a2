package fairpool

import (
	"context"
	"errors"
	"sync/atomic"
)

// Config.Check at hand-out, as a Pool and a Group both run it: in a
// goroutine of its own, so that a Check that blocks, whether or not it
// heeds its context, cannot hold the caller past its deadline; a Check
// still running when the caller gives up settles the connection itself
// when it returns.

// checkRun is one Check of a connection at hand-out. Of the Check's
// goroutine and the caller, the first to move state from checkRunning
// settles the connection: the goroutine hands its result to the caller
// through done, or the caller, giving up, leaves the connection to the
// goroutine, which settles it with orphan.
type checkRun[T any] struct {
	c      *conn[T]
	ctx    context.Context
	done   chan error // capacity one
	state  atomic.Int32
	orphan func(err error)
}

const (
	checkRunning int32 = iota
	checkReturned
	checkAbandoned
)

// startCheck runs check on c with ctx in a goroutine of its own. orphan
// settles c if the caller abandons the run before the Check returns.
func startCheck[T any](check func(context.Context, T) error, ctx context.Context, c *conn[T], orphan func(error)) *checkRun[T] {
	run := &checkRun[T]{c: c, ctx: ctx, done: make(chan error, 1), orphan: orphan}
	go run.run(check)
	return run
}

func (run *checkRun[T]) run(check func(context.Context, T) error) {
	err := errGoexit("Check")
	defer func() { // also after runtime.Goexit, which never returns
		if run.state.CompareAndSwap(checkRunning, checkReturned) {
			run.done <- err
			return
		}
		run.orphan(err)
	}()
	err = callVet("Check", check, run.ctx, run.c.value)
}

// abandon is the caller giving up on the run. If the Check has returned,
// it reports its error and true, and the caller settles the connection;
// otherwise the connection is left to orphan.
func (run *checkRun[T]) abandon() (error, bool) {
	if run.state.CompareAndSwap(checkRunning, checkAbandoned) {
		return nil, false
	}
	return <-run.done, true // sent right after the state changed
}

// checkVerdict is what a Check's result means for its connection.
type checkVerdict int

const (
	checkPassed   checkVerdict = iota
	checkUnsure                // a context's error once the Check's context ended: nothing against the connection
	checkFailed                // closes the connection
	checkPanicked              // closes it, and fails the caller with the *PanicError
)

// judgeCheck says what err, returned by a Check whose context was cctx,
// means for the connection, and logs a failure or a panic. A context's
// error once cctx has ended may be only that ending (the caller left, the
// pool closed), and says nothing against the connection.
func judgeCheck[K any](err error, cctx context.Context, ev eventLog[K]) checkVerdict {
	var pe *PanicError
	switch {
	case err == nil:
		return checkPassed
	case errors.As(err, &pe):
		ev.panicked(err)
		return checkPanicked
	case cctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return checkUnsure
	default:
		ev.checkFailed(err)
		return checkFailed
	}
}
