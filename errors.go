package fairpool

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrClosed is returned by Acquire, TryAcquire and With once Close has been
// called, and to every goroutine that was waiting when Close was called.
var ErrClosed = errors.New("fairpool: pool closed")

// ErrTimeout is returned, wrapped in a *TimeoutError, by Acquire and With when
// Config.AcquireTimeout passes before a connection could be handed out.
var ErrTimeout = errors.New("fairpool: acquire timed out")

// ErrExhausted is returned by TryAcquire when no connection can be handed out
// at once: none is idle, or other goroutines are already waiting.
var ErrExhausted = errors.New("fairpool: no connection available without waiting")

// ErrBadConn is returned by a With callback, wrapped or as it is, to say the
// connection is broken: With closes it instead of putting it back, and still
// returns the callback's error unchanged.
var ErrBadConn = errors.New("fairpool: bad connection")

// TimeoutError reports an Acquire that gave up waiting, with a picture of the
// pool at that instant so the cause can be seen in the log line alone.
//
// Err says why it gave up: ErrTimeout when Config.AcquireTimeout passed, or
// the context's error (context.Canceled, context.DeadlineExceeded) when the
// context ended first. errors.Is sees through to Err.
type TimeoutError struct {
	Pool    string        // Config.Name
	Waited  time.Duration // how long the caller waited
	MaxSize int           // Config.MaxSize
	Open    int           // connections open, opening or closing
	InUse   int           // connections leased out
	Idle    int           // connections idle
	Waiting int           // other goroutines still waiting
	Opening int           // connections being opened
	Err     error         // ErrTimeout, ErrOverload or the context's error

	// Estimate, with ErrOverload: how long the pool expected the caller
	// to need, to wait its turn and use the connection, from its arrival
	// (or from its turn, when it was turned away then).
	Estimate time.Duration

	// With Config.TrackLeases: the oldest holders (up to five), and how
	// many leases of this pool the caller itself held while it waited.
	Tracked      bool
	Holders      []Holder
	HeldByCaller int

	group bool // a Group's, whose config is GroupConfig
}

func (e *TimeoutError) Error() string {
	why := "timed out"
	switch {
	case errors.Is(e.Err, ErrOverload):
		why = fmt.Sprintf("overloaded: expected to need %v more, past the context's deadline", e.Estimate.Round(time.Microsecond))
	case !errors.Is(e.Err, ErrTimeout), errors.As(e.Err, new(*refusedError)):
		why = e.Err.Error()
	}
	msg := fmt.Sprintf("%sgave up after waiting %v (%s): MaxSize %d, open %d, in use %d, idle %d, waiting %d, opening %d",
		prefix(e.Pool), e.Waited.Round(time.Microsecond), why, e.MaxSize, e.Open, e.InUse, e.Idle, e.Waiting, e.Opening)
	if !e.Tracked {
		if e.group {
			return msg + "; set GroupConfig.TrackLeases to see who holds them"
		}
		return msg + "; set Config.TrackLeases to see who holds them"
	}
	var b strings.Builder
	b.WriteString(msg)
	if len(e.Holders) > 0 {
		b.WriteString("; oldest holders:")
		for i, h := range e.Holders {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s for %v", h.Caller, h.HeldFor.Round(time.Millisecond))
		}
	}
	if e.HeldByCaller > 0 {
		fmt.Fprintf(&b, "; this context already holds %d leases of this pool", e.HeldByCaller)
	}
	return b.String()
}

// Unwrap returns Err, so errors.Is(err, ErrTimeout) and
// errors.Is(err, context.Canceled) work.
func (e *TimeoutError) Unwrap() error { return e.Err }

// poolError names the pool in an error that is otherwise a sentinel. The
// pool builds one of each at New, so returning it costs nothing.
type poolError struct {
	pool string
	err  error
}

func (e *poolError) Error() string {
	if e.pool == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("%v (pool %q)", e.err, e.pool)
}
func (e *poolError) Unwrap() error { return e.err }

// OpenError wraps an error returned by Config.Open. errors.Is and errors.As
// see through to the driver's error.
type OpenError struct {
	Pool string
	Err  error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("%sopen: %v", prefix(e.Pool), e.Err)
}

// Unwrap returns the error Config.Open returned.
func (e *OpenError) Unwrap() error { return e.Err }

// prefix begins an error message about the pool named name: "fairpool:
// pool "orders": ", or for a pool without a Name just "fairpool: ", since
// `pool ""` would tell the reader nothing but look like a bug.
func prefix(name string) string {
	if name == "" {
		return "fairpool: "
	}
	return fmt.Sprintf("fairpool: pool %q: ", name)
}
