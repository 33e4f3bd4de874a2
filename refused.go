package fairpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Refusal: a server that is full (PostgreSQL's "sorry, too many clients
// already", MySQL's "Too many connections") says nothing against the
// connections the pool holds, which will come back, nor against trying
// again later. So an open that Config.Refused classifies as a refusal fails
// no waiter. Its slot is held back instead: the first such slot becomes the
// probe, which opens again after a jittered back-off, and every other
// refused slot is parked (counted in numOpen and opening, so that nothing
// opens in its place, but with no Open running). The pool's effective size
// is MaxSize less those slots. A probe that succeeds reopens two parked
// slots per success, so the pool grows back as fast as the server lets it
// without a burst of refused connects. Waiters keep waiting for released
// connections, or for the probe, until their own deadlines.

// The probe's back-off: doubled after each refusal, halved after each
// success, and jittered by up to half, so that the processes of a fleet do
// not probe in step. Its ceiling bounds how long a fleet takes to notice
// room freed by a process that died.
const (
	refusedMinBackoff = 5 * time.Millisecond
	refusedMaxBackoff = 250 * time.Millisecond
	refusedRegrow     = 2 // parked slots reopened per successful open
)

// refusal is a Pool's view of a server that refuses it. Guarded by Pool.mu.
type refusal struct {
	parked  int           // refused slots held back, counted in numOpen and opening
	probing bool          // a probe slot exists, sleeping or opening
	backoff time.Duration // the probe's next back-off, before jitter
	count   int64         // refused opens, for Stats.RefusedOpens
	last    error         // the last refusal, until an open succeeds again
}

// heldBackLocked is how many slots refusals hold back: they count in
// numOpen but are no connections.
func (r *refusal) heldBackLocked() int {
	if r.probing {
		return r.parked + 1
	}
	return r.parked
}

// nextDelay returns the probe's next wait and doubles the back-off.
func (r *refusal) nextDelay() time.Duration {
	r.backoff = min(max(r.backoff*2, refusedMinBackoff), refusedMaxBackoff)
	return r.backoff/2 + rand.N(r.backoff/2+1)
}

// isRefusal runs Config.Refused on err, counting a panic as "no".
func (p *Pool[T]) isRefusal(err error) (yes bool) {
	if err == nil || p.cfg.Refused == nil {
		return false
	}
	defer func() {
		if v := recover(); v != nil {
			yes = false
			p.events().log(slog.LevelError, "fairpool: callback panicked", slog.String("callback", "Refused"), slog.Any("panic", v))
		}
	}()
	return p.cfg.Refused(err)
}

// refusedLocked settles the slot of an open the server refused with err.
// With nobody waiting the slot is freed, together with the parked ones:
// no one needs them. Otherwise the slot is parked, or becomes the probe,
// and the caller starts it with the returned delay (0: no probe to start).
func (p *Pool[T]) refusedLocked(err error) (probeIn time.Duration) {
	r := &p.refused
	r.count++
	r.last = err
	if p.closed || p.waiters.len == 0 {
		p.releaseHeldBackLocked(1)
		return 0
	}
	if r.probing {
		r.parked++
		return 0
	}
	r.probing = true
	return r.nextDelay()
}

// releaseHeldBackLocked frees extra slots (the caller's own) and the parked
// ones, and stops counting them as opening.
func (p *Pool[T]) releaseHeldBackLocked(extra int) {
	n := extra + p.refused.parked
	p.refused.parked = 0
	p.numOpen -= n
	p.opening -= n
	p.checkDrainedLocked()
}

// regrowLocked, after a successful open, lowers the back-off and reopens
// up to refusedRegrow parked slots, or frees them all when nobody waits.
// It returns the contexts to open with; the slots are already counted.
func (p *Pool[T]) regrowLocked(ctx context.Context) []context.Context {
	r := &p.refused
	r.backoff /= 2
	r.last = nil // a wait's error names refusals since the last success only
	if r.parked == 0 {
		return nil
	}
	if p.closed || p.waiters.len == 0 {
		p.releaseHeldBackLocked(0)
		return nil
	}
	k := min(r.parked, refusedRegrow)
	r.parked -= k
	ctxs := make([]context.Context, k)
	for i := range ctxs {
		ctxs[i] = ctx
	}
	return ctxs
}

// probe opens again, after d or at Close, for the slot it holds, unless
// nobody waits any more: then that slot and the parked ones are freed.
func (p *Pool[T]) probe(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-p.done.Done():
		t.Stop()
	}
	p.mu.Lock()
	if p.closed || p.waiters.len == 0 {
		p.refused.probing = false
		p.releaseHeldBackLocked(1)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.openAttempt(ctx, true)
}

// refusedError is the cause of a wait that ended while the server refused
// the pool's opens: it is the wait's own cause (ErrTimeout or the
// context's error) and the last refusal, so that errors.Is and errors.As
// find either.
type refusedError struct {
	cause, refusal error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%v; opens refused by the server: %v", e.cause, e.refusal)
}

func (e *refusedError) Unwrap() []error { return []error{e.cause, e.refusal} }

// withRefusal returns err, a wait's error, naming the last refusal when
// the server refused this pool's opens since its last successful one.
func (p *Pool[T]) withRefusal(err error) error {
	var te *TimeoutError
	if !errors.As(err, &te) || errors.Is(te.Err, ErrOverload) {
		return err
	}
	p.mu.Lock()
	last := p.refused.last
	p.mu.Unlock()
	if last == nil {
		return err
	}
	c := *te // the original may be in the log's hands
	c.Err = &refusedError{cause: te.Err, refusal: last}
	return &c
}
