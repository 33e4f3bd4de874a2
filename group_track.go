package fairpool

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"
)

// Lease tracking for a Group, switched on by GroupConfig.TrackLeases (or
// LeakThreshold). It is the Pool's (track.go), with the same records and
// the same rules, each record filed under the key whose lease it is.
//
// As in Pool, a record must not keep its GroupLease reachable, or a
// dropped lease would never be collected: it holds the connection's value,
// and the group reaches it only through groupTrack.held. While leased, a
// connection is reachable only from its GroupLease (the group keeps no
// list of connections in use), so dropping the lease drops both, and the
// cleanup registered on the lease runs with the record.

// keyHolder is a Holder with its key, for the leak warnings the sweeper
// logs with a key attribute.
type keyHolder[K cmp.Ordered] struct {
	key K
	Holder
}

// groupTrack is what a Group keeps of its leases out. Guarded by Group.mu;
// its maps are nil without TrackLeases.
type groupTrack[K cmp.Ordered, T any] struct {
	held map[*record[T]]*shard[K, T] // leases out, each with its key's shard

	// Leases held past LeakThreshold, per key while the key has a pool,
	// and in all (dropped keys included), for Stats.
	leaks      map[*shard[K, T]]int64
	totalLeaks int64
}

func (tr *groupTrack[K, T]) init() {
	tr.held = map[*record[T]]*shard[K, T]{}
	tr.leaks = map[*shard[K, T]]int64{}
}

// callerKey binds the acquiring goroutine to the context of its request.
// A timeout is pictured under mu, often on the timer's goroutine, and
// counts the leases the waiting goroutine holds itself
// (TimeoutError.HeldByCaller): this is how it knows which goroutine that
// is.
type callerKey struct{}

// withCaller returns ctx carrying who, or ctx itself if who is nil.
func withCaller(ctx context.Context, who *caller) context.Context {
	if who == nil {
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, who)
}

// requestCaller returns the goroutine that made r, if tracking recorded it.
func requestCaller[K cmp.Ordered, T any](r *request[K, T]) *caller {
	if r.ctx == nil {
		return nil
	}
	who, _ := r.ctx.Value(callerKey{}).(*caller)
	return who
}

// track records the new leases ls, taken together by who. It runs in the
// acquiring goroutine; c.rec is read under mu (holders, deadlock checks),
// so written under it.
func (g *Group[K, T]) track(who *caller, pinned bool, ls ...*GroupLease[K, T]) {
	now := g.now()
	site := callerOf(who.stack)
	recs := make([]*record[T], len(ls))
	for i, l := range ls {
		r := &record[T]{value: l.c.value, acquired: now, gid: who.gid, stack: who.stack, caller: site, pinned: pinned, use: l.c.use}
		r.cleanup = runtime.AddCleanup(l, g.reclaim, r)
		recs[i] = r
	}
	g.mu.Lock()
	for i, l := range ls {
		l.c.rec = recs[i]
		g.tracking.held[recs[i]] = l.s
	}
	g.mu.Unlock()
}

// untrack forgets c's record as its lease ends; see Lease.untrack.
func (g *Group[K, T]) untrack(c *conn[T]) {
	g.mu.Lock()
	if r := c.rec; r != nil {
		r.cleanup.Stop()
		delete(g.tracking.held, r)
		c.rec = nil
	}
	g.mu.Unlock()
}

// reclaim runs when a tracked GroupLease became unreachable. If it was
// never released, its connection's state is unknown: close it, and free
// its key's place and its share of GlobalMax for whoever waits.
func (g *Group[K, T]) reclaim(r *record[T]) {
	g.mu.Lock()
	s, out := g.tracking.held[r]
	delete(g.tracking.held, r)
	held := time.Duration(g.now() - r.acquired)
	g.mu.Unlock()
	if !out {
		return
	}
	g.events(s.key).log(slog.LevelError, "fairpool: lease dropped without Release; connection closed",
		slog.Duration("held_for", held), slog.String("caller", r.caller), slog.String("stack", r.stack))
	r.use.ended() // observers are quick, by their contract
	// The lease's own connection is garbage with it; a stand-in carries
	// the value to Close. discard closes on a goroutine of its own: this
	// one is the runtime's, shared by every cleanup in the program, and a
	// slow Close must not hold them all up.
	g.discard(s, &conn[T]{home: s, value: r.value}, closeReclaimed)
}

// recordsLocked returns the records that keep accepts (all if nil),
// oldest first; the leases of one AcquireAll, taken at one instant, in
// key order.
func (g *Group[K, T]) recordsLocked(keep func(*record[T], *shard[K, T]) bool) []*record[T] {
	var recs []*record[T]
	for r, s := range g.tracking.held {
		if keep == nil || keep(r, s) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *record[T]) int {
		return cmp.Or(cmp.Compare(a.acquired, b.acquired), cmp.Compare(g.tracking.held[a].key, g.tracking.held[b].key))
	})
	return recs
}

func holderOf[T any](r *record[T], now mono) Holder {
	return Holder{HeldFor: time.Duration(now - r.acquired), Caller: r.caller, Goroutine: r.gid, Stack: r.stack}
}

// holdersLocked lists the leases that keep accepts, oldest first, each
// with its key.
func (g *Group[K, T]) holdersLocked(now mono, keep func(*record[T], *shard[K, T]) bool) []Holder {
	recs := g.recordsLocked(keep)
	hs := make([]Holder, len(recs))
	for i, r := range recs {
		hs[i] = holderOf(r, now)
		hs[i].Key = fmt.Sprint(g.tracking.held[r].key)
	}
	return hs
}

// Holders lists the leases out, oldest first, each with its key (Key,
// formatted with %v). It is empty unless GroupConfig.TrackLeases is set.
func (g *Group[K, T]) Holders() []Holder {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holdersLocked(g.now(), nil)
}

// deadlockLocked returns a *DeadlockError if r, asked for by goroutine
// gid, is certain to wait forever: the leases that With and WithAll calls
// of gid hold (pinned, so not released before this acquire returns) take
// every place of one of r's keys, or so much of GlobalMax that r's share
// can never fit. Places and shares come back only as leases end; opens
// and closes under way free neither, so nothing else can end the wait. A
// lease from Acquire or AcquireAll may have been passed to a goroutine
// that will release it, so it never counts; when in doubt, wait.
func (g *Group[K, T]) deadlockLocked(gid int64, r *request[K, T]) error {
	mine := func(rec *record[T]) bool { return rec.gid == gid && rec.pinned }
	perKey := make([]int, len(r.parts))
	pinned := 0
	for rec, s := range g.tracking.held {
		if !mine(rec) {
			continue
		}
		pinned++
		for i := range r.parts {
			if r.parts[i].s == s {
				perKey[i]++
			}
		}
	}
	now := g.now()
	for i, n := range perKey {
		if s := r.parts[i].s; n >= g.cfg.PerKeyMax {
			return &DeadlockError{Pool: g.keyName(s.key), Held: g.holdersLocked(now, func(rec *record[T], rs *shard[K, T]) bool {
				return mine(rec) && rs == s
			})}
		}
	}
	if pinned > g.globalMax-len(r.parts) {
		return &DeadlockError{Pool: g.cfg.Name, Held: g.holdersLocked(now, func(rec *record[T], _ *shard[K, T]) bool { return mine(rec) })}
	}
	return nil
}

// trackedErrorLocked names, in e, the oldest holders (up to five) of the
// line r gave up in, s's or (s nil) the global one, and how many of those
// leases r's own goroutine held.
func (g *Group[K, T]) trackedErrorLocked(e *TimeoutError, r *request[K, T], s *shard[K, T]) {
	e.Tracked = true
	inLine := func(_ *record[T], rs *shard[K, T]) bool { return s == nil || rs == s }
	hs := g.holdersLocked(g.now(), inLine)
	e.Holders = hs[:min(len(hs), 5)]
	if who := requestCaller(r); who != nil {
		for rec, rs := range g.tracking.held {
			if rec.gid == who.gid && inLine(rec, rs) {
				e.HeldByCaller++
			}
		}
	}
}

// findLeaksLocked marks the leases held past LeakThreshold, once each,
// counts them for their keys, and returns them to be logged.
func (g *Group[K, T]) findLeaksLocked(now mono) []keyHolder[K] {
	if g.cfg.LeakThreshold == 0 {
		return nil
	}
	var leaks []keyHolder[K]
	for _, r := range g.recordsLocked(func(r *record[T], _ *shard[K, T]) bool {
		return !r.warned && time.Duration(now-r.acquired) >= g.cfg.LeakThreshold
	}) {
		r.warned = true
		s := g.tracking.held[r]
		g.tracking.leaks[s]++
		g.tracking.totalLeaks++
		h := holderOf(r, now)
		h.Key = fmt.Sprint(s.key)
		leaks = append(leaks, keyHolder[K]{key: s.key, Holder: h})
	}
	return leaks
}
