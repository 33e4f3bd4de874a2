package fairpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lease tracking, switched on by Config.TrackLeases (or LeakThreshold).
// Each lease out gets a record: when and where it was acquired, by which
// goroutine. The records answer "who holds the connections" in timeout
// errors, find leases held too long, reclaim leases dropped without
// Release, and tell a goroutine about to wait for a connection that it is
// waiting for itself.
//
// A record must not keep its Lease reachable, or a dropped Lease would never
// be collected: it holds the connection's value, not the connection, and the
// pool reaches it only through Pool.held. While leased, a connection is
// reachable only from its Lease (the pool keeps no list of connections in
// use), so dropping the Lease drops both, and the cleanup registered on the
// Lease runs with the record.

// ErrNoLease is returned by Require when no enclosing With bound a
// connection of the pool to the context.
var ErrNoLease = errors.New("fairpool: no lease bound to the context")

// ErrDeadlock is returned, wrapped in a *DeadlockError, by Acquire and With
// when waiting is certain to deadlock: every connection there can be is
// held by With calls that enclose this call on the same goroutine, so none
// can come back while it waits. It needs Config.TrackLeases.
//
// Leases taken with Acquire do not count: a lease can be handed to
// another goroutine that releases it, so waiting for one may end. Such a
// wait runs into AcquireTimeout, and its TimeoutError says how many leases
// the waiting goroutine held (HeldByCaller).
var ErrDeadlock = errors.New("fairpool: deadlock")

// Holder describes a lease that is out, as recorded with TrackLeases.
type Holder struct {
	Key       string        // a Group's lease: its key, formatted with %v; empty for a Pool's
	HeldFor   time.Duration // since Acquire returned it
	Caller    string        // file:line of the code that called Acquire or With
	Goroutine int64         // the acquiring goroutine's id
	Stack     string        // the acquiring goroutine's stack, as runtime.Stack prints it
}

// DeadlockError reports an acquire that could only wait for itself.
type DeadlockError struct {
	Pool string
	Held []Holder // the caller's leases of this pool, oldest first
}

func (e *DeadlockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sdeadlock: the caller already holds all %d connections in use and would wait for itself; held since", prefix(e.Pool), len(e.Held))
	for i, h := range e.Held {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s (%v ago)", h.Caller, h.HeldFor.Round(time.Millisecond))
	}
	return b.String()
}

// Unwrap returns ErrDeadlock.
func (e *DeadlockError) Unwrap() error { return ErrDeadlock }

// record is what tracking keeps of one lease out. Guarded by Pool.mu once
// it is in Pool.held.
type record[T any] struct {
	value    T
	acquired mono
	gid      int64
	stack    string
	caller   string
	pinned   bool // With's: held by goroutine gid until that With returns
	use      use  // the lease's, for observers: a reclaim ends it
	warned   bool // the leak warning went out
	cleanup  runtime.Cleanup
}

// caller is the acquiring goroutine, as tracking records it.
type caller struct {
	gid   int64
	stack string
}

// track records the new lease l on c. It runs in the acquiring goroutine;
// c.rec is read under mu (deadlock and holder checks), so written under it.
func (p *Pool[T]) track(l *Lease[T], c *conn[T], who *caller, pinned bool) {
	r := &record[T]{value: c.value, acquired: p.now(), gid: who.gid, stack: who.stack, caller: callerOf(who.stack), pinned: pinned, use: c.use}
	r.cleanup = runtime.AddCleanup(l, p.reclaim, r)
	p.mu.Lock()
	c.rec = r
	p.held[r] = struct{}{}
	p.mu.Unlock()
}

// untrackLocked forgets c's record as its lease ends.
func (p *Pool[T]) untrackLocked(c *conn[T]) {
	if r := c.rec; r != nil {
		r.cleanup.Stop()
		delete(p.held, r)
		c.rec = nil
	}
}

// untrack forgets c's record as its lease ends; see Lease.untrack.
func (p *Pool[T]) untrack(c *conn[T]) {
	p.mu.Lock()
	p.untrackLocked(c)
	p.mu.Unlock()
}

// reclaim runs when a tracked Lease became unreachable. If it was never
// released, its connection's state is unknown: close it and free the slot.
func (p *Pool[T]) reclaim(r *record[T]) {
	p.mu.Lock()
	if _, out := p.held[r]; !out {
		p.mu.Unlock()
		return
	}
	delete(p.held, r)
	c := &conn[T]{home: p, value: r.value}
	p.beginCloseLocked(c, closeReclaimed)
	held := time.Duration(p.now() - r.acquired)
	p.mu.Unlock()
	p.events().log(slog.LevelError, "fairpool: lease dropped without Release; connection closed",
		slog.Duration("held_for", held), slog.String("caller", r.caller), slog.String("stack", r.stack))
	r.use.ended() // observers are quick, by their contract
	// Not on this goroutine: it is the runtime's, shared by every cleanup
	// in the program, and a slow Close would hold them all up.
	go p.destroy(c)
}

// holdersLocked lists the leases out, oldest first.
func (p *Pool[T]) holdersLocked(now mono, keep func(*record[T]) bool) []Holder {
	recs := make([]*record[T], 0, len(p.held))
	for r := range p.held {
		if keep == nil || keep(r) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *record[T]) int { return int(a.acquired - b.acquired) })
	hs := make([]Holder, len(recs))
	for i, r := range recs {
		hs[i] = Holder{HeldFor: time.Duration(now - r.acquired), Caller: r.caller, Goroutine: r.gid, Stack: r.stack}
	}
	return hs
}

// Holders lists the leases out, oldest first. It is empty unless
// Config.TrackLeases is set.
func (p *Pool[T]) Holders() []Holder {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holdersLocked(p.now(), nil)
}

// deadlockLocked counts the leases out that goroutine gid acquired, and
// returns a *DeadlockError if waiting is certain never to end: every
// connection there can be is in use, held by With calls of gid itself,
// none is being opened or closed, so nothing can be released while gid
// waits. A lease from Acquire may have been passed to a goroutine that
// will release it, so only With's leases make it certain; when in doubt,
// wait.
func (p *Pool[T]) deadlockLocked(gid int64) (int, error) {
	held, pinned := 0, 0
	for r := range p.held {
		if r.gid == gid {
			held++
			if r.pinned {
				pinned++
			}
		}
	}
	if pinned > 0 && pinned == p.numOpen && p.numOpen == p.cfg.MaxSize && p.inUseLocked() == p.numOpen {
		mine := func(r *record[T]) bool { return r.gid == gid && r.pinned }
		return held, &DeadlockError{Pool: p.cfg.Name, Held: p.holdersLocked(p.now(), mine)}
	}
	return held, nil
}

// Require runs fn with the connection that an enclosing With bound to ctx,
// and returns ErrNoLease (wrapped with the pool's name) if there is none.
// It never takes a connection of its own: code below request middleware
// that does the With can demand the request's connection instead of
// silently checking out another.
func (p *Pool[T]) Require(ctx context.Context, fn func(ctx context.Context, conn T) error) error {
	if l, ok := ctx.Value(leaseKey[T]{p}).(*Lease[T]); ok && l.c.holder.Load() == l {
		return runLease(ctx, l.c, fn)
	}
	return &poolError{pool: p.cfg.Name, err: ErrNoLease}
}

// currentCaller captures the calling goroutine's stack and id. It is what
// tracking costs: runtime.Stack formats the whole stack, several
// microseconds; nothing cheaper tells goroutines apart.
func currentCaller() *caller {
	buf := make([]byte, 4096)
	for {
		n := runtime.Stack(buf, false)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// "goroutine 42 [running]:\n..."
	line, _, _ := bytes.Cut(buf, []byte{'\n'})
	f := bytes.Fields(line)
	var gid int64
	if len(f) >= 2 {
		gid, _ = strconv.ParseInt(string(f[1]), 10, 64)
	}
	return &caller{gid: gid, stack: string(buf)}
}

// callerOf finds, in a runtime.Stack text, the file:line of the first frame
// that is not the pool's own acquiring machinery.
func callerOf(stack string) string {
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i += 2 {
		fn := lines[i]
		if strings.HasPrefix(fn, "runtime.") || isPoolFrame(fn) {
			continue
		}
		loc := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(loc, " +0x"); j >= 0 {
			loc = loc[:j]
		}
		return loc
	}
	return "unknown"
}

// isPoolFrame says whether fn, a function name as runtime.Stack prints
// it, belongs to the machinery between the user's code and the acquire:
// the pool's own acquiring methods, the wrappers built on it (sqlpool,
// fairpgx, debug), and database/sql, which those may call through. The
// wrappers' tests and examples are the user's code, so functions named
// Test, Example, Benchmark or Fuzz (and their closures) are kept, and
// their external test packages (sqlpool_test) never match.
func isPoolFrame(fn string) bool {
	if strings.HasPrefix(fn, "database/sql.") {
		return true
	}
	const pkg = "github.com/fairpool/fairpool."
	if strings.HasPrefix(fn, pkg) {
		rest := fn[len(pkg):]
		for _, p := range []string{"(*Pool[", "(*Lease[", "(*Group[", "(*GroupLease[", "(*LeaseSet[", "currentCaller"} {
			if strings.HasPrefix(rest, p) {
				return true
			}
		}
		return false
	}
	for _, w := range []string{"sqlpool.", "fairpgx.", "debug."} {
		if rest, ok := strings.CutPrefix(fn, "github.com/fairpool/fairpool/"+w); ok {
			for _, t := range []string{"Test", "Example", "Benchmark", "Fuzz"} {
				if strings.HasPrefix(rest, t) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// Waiters returns how long each goroutine now waiting has waited, in the
// order they will be served.
func (p *Pool[T]) Waiters() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	ws := make([]time.Duration, 0, p.waiters.len)
	for w := p.waiters.head; w != nil; w = w.next {
		ws = append(ws, time.Duration(now-w.enqueued))
	}
	if p.waiters.lifo {
		slices.Reverse(ws)
	}
	return ws
}
