package fairpool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyConn is what the test groups hold: a fakeConn that knows its key.
type keyConn struct {
	fakeConn
	key string
}

// keyFactory opens and closes keyConns and checks on every open, as an
// oracle independent of the group's counters, that no key has more than
// perKey connections and the group no more than global (0: no limit),
// counting opens under way and closes not finished.
type keyFactory struct {
	t              testing.TB
	perKey, global int

	mu      sync.Mutex
	all     []*keyConn
	live    map[string]int
	total   int
	opens   map[string]int
	fails   int
	closes  int
	failKey map[string]error // Open of these keys fails with the error
	gate    chan struct{}    // when set, Open waits for a receive

	failRate atomic.Int64 // per mille of opens that fail with errOpen
	dice
}

func newKeyFactory(t testing.TB, perKey, global int) *keyFactory {
	return &keyFactory{t: t, perKey: perKey, global: global, live: map[string]int{}, opens: map[string]int{}, failKey: map[string]error{}}
}

func (f *keyFactory) Open(ctx context.Context, key string) (*keyConn, error) {
	f.mu.Lock()
	f.live[key]++
	f.total++
	if f.live[key] > f.perKey {
		f.t.Errorf("key %q: PerKeyMax %d exceeded: %d connections", key, f.perKey, f.live[key])
	}
	if f.global > 0 && f.total > f.global {
		f.t.Errorf("GlobalMax %d exceeded: %d connections", f.global, f.total)
	}
	err := f.failKey[key]
	gate := f.gate
	f.mu.Unlock()
	if err == nil && f.chance(f.failRate.Load()) {
		err = errOpen
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.live[key]--
		f.total--
		f.fails++
		return nil, err
	}
	c := &keyConn{key: key}
	c.id = len(f.all) + 1
	f.all = append(f.all, c)
	f.opens[key]++
	return c, nil
}

func (f *keyFactory) Close(c *keyConn) error {
	c.markClosed(f.t)
	f.mu.Lock()
	f.live[c.key]--
	f.total--
	f.closes++
	f.mu.Unlock()
	return nil
}

func (f *keyFactory) setFail(key string, err error) {
	f.mu.Lock()
	f.failKey[key] = err
	f.mu.Unlock()
}

type keyCounts struct {
	opens          map[string]int
	totalOpens     int
	fails, closes  int
	total          int
	live           map[string]int
	everConnsOfKey map[string]int
}

func (f *keyFactory) counts() keyCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := keyCounts{opens: map[string]int{}, live: map[string]int{}, fails: f.fails, closes: f.closes, total: f.total}
	for k, n := range f.opens {
		c.opens[k] = n
		c.totalOpens += n
	}
	for k, n := range f.live {
		c.live[k] = n
	}
	return c
}

type testGroup = Group[string, *keyConn]

// newTestGroup makes a group over a new keyFactory. Cleanup checks the
// invariants, closes the group, and fails the test if a connection is
// left open or a goroutine of the group outlives Close.
func newTestGroup(t testing.TB, cfg GroupConfig[string, *keyConn]) (*testGroup, *keyFactory) {
	t.Helper()
	f := newKeyFactory(t, cfg.PerKeyMax, cfg.GlobalMax)
	if cfg.Open == nil {
		cfg.Open = f.Open
	}
	if cfg.Close == nil {
		cfg.Close = f.Close
	}
	// Registered before mustNew's, so it runs after the group is closed.
	t.Cleanup(func() {
		if leaked := groupGoroutines(); leaked != "" {
			t.Errorf("goroutines left behind:\n%s", leaked)
		}
	})
	g, err := NewGroup(cfg)
	return mustNew(t, g, err, func() Stats { return g.Stats().Total }, func() int { return f.counts().total }), f
}

// groupGoroutines waits until no goroutine runs a Group's code (or any of
// the package's), and returns the stacks of any that still do. Tests run
// one at a time, so any such goroutine is the current test's.
func groupGoroutines() string { return waitForGoroutines(5 * time.Second) }

func checkGroupInv(t testing.TB, g *testGroup) {
	t.Helper()
	if err := g.checkInvariants(); err != nil {
		t.Fatalf("invariant: %v", err)
	}
}

// checkInvariants takes mu and reports the first broken rule of those
// written on Group.mu, or nil.
func (g *Group[K, T]) checkInvariants() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	max := g.cfg.PerKeyMax
	var conns, idle, opening, closing, placeWait, connWait, globalWait int
	idleShards := 0
	for k, s := range g.shards {
		if s.key != k {
			return fmt.Errorf("shard of %v filed under %v", s.key, k)
		}
		switch {
		case s.places < 0 || s.places > max:
			return fmt.Errorf("key %v: places %d outside [0, %d]", k, s.places, max)
		case s.numOpen > max:
			return fmt.Errorf("key %v: %d connections > PerKeyMax %d", k, s.numOpen, max)
		case s.opening < 0 || s.closing < 0 || s.global < 0:
			return fmt.Errorf("key %v: opening %d, closing %d, global %d", k, s.opening, s.closing, s.global)
		case s.numOpen-s.opening-s.closing-s.idle.len() < 0:
			return fmt.Errorf("key %v: in use < 0 (open %d, opening %d, closing %d, idle %d)", k, s.numOpen, s.opening, s.closing, s.idle.len())
		case s.numOpen-s.opening-s.closing-s.idle.len() > s.places:
			return fmt.Errorf("key %v: %d in use but %d places", k, s.numOpen-s.opening-s.closing-s.idle.len(), s.places)
		case s.placeQ.len > 0 && s.places != max:
			return fmt.Errorf("key %v: %d waiting for a place while %d of %d are taken", k, s.placeQ.len, s.places, max)
		case s.connQ.len > 0 && s.idle.len() > 0:
			return fmt.Errorf("key %v: %d waiting for a connection while %d idle", k, s.connQ.len, s.idle.len())
		case s.idleLink.linked != (s.idle.len() > 0):
			return fmt.Errorf("key %v: in idle list %v with %d idle", k, s.idleLink.linked, s.idle.len())
		}
		if s.connQ.len > s.opening && s.numOpen < max && !s.slotLink.linked && !g.closed {
			return fmt.Errorf("key %v: %d waiting for a connection, %d opening, %d of %d open, not in the slot line", k, s.connQ.len, s.opening, s.numOpen, max)
		}
		for _, q := range []*partQueue[K, T]{&s.placeQ, &s.connQ} {
			n := 0
			for p := q.head; p != nil; p = p.next {
				if p.in != q || p.s != s {
					return fmt.Errorf("key %v: part in the wrong queue", k)
				}
				if p.prev != nil && p.prev.ticket >= p.ticket {
					return fmt.Errorf("key %v: queue out of order: ticket %d after %d", k, p.ticket, p.prev.ticket)
				}
				n++
			}
			if n != q.len {
				return fmt.Errorf("key %v: queue holds %d, len says %d", k, n, q.len)
			}
		}
		// globalParts mirrors the global line per key (handOnLocked finds
		// a key's next request there): the key's parts of requests in
		// globalQ, in the line's order.
		gp := 0
		for p := s.globalParts.head; p != nil; p = p.next {
			switch {
			case p.in != &s.globalParts || p.s != s:
				return fmt.Errorf("key %v: part in the wrong global parts queue", k)
			case p.r.state != reqGlobal || !p.r.linked:
				return fmt.Errorf("key %v: part of a request in state %d (queued %v) among the global line's", k, p.r.state, p.r.linked)
			case p.prev != nil && p.prev.ticket >= p.ticket:
				return fmt.Errorf("key %v: global parts out of order: ticket %d after %d", k, p.ticket, p.prev.ticket)
			}
			gp++
		}
		if gp != s.globalParts.len || gp != s.global {
			return fmt.Errorf("key %v: global parts queue holds %d, len says %d, global %d", k, gp, s.globalParts.len, s.global)
		}
		globalWait += gp
		conns += s.numOpen
		idle += s.idle.len()
		opening += s.opening
		closing += s.closing
		placeWait += s.placeQ.len
		connWait += s.connQ.len
		if s.idle.len() > 0 {
			idleShards++
		}
	}
	switch {
	case g.leases < 0 || g.leases > g.globalMax:
		return fmt.Errorf("leases %d outside [0, %d]", g.leases, g.globalMax)
	case g.conns > g.globalMax:
		return fmt.Errorf("%d connections > GlobalMax %d", g.conns, g.globalMax)
	case conns != g.conns || idle != g.idle || opening != g.opening || closing != g.closing:
		return fmt.Errorf("keys sum to conns %d idle %d opening %d closing %d; group says %d %d %d %d", conns, idle, opening, closing, g.conns, g.idle, g.opening, g.closing)
	case idleShards != g.idleShards.len:
		return fmt.Errorf("%d keys with idle connections, idle list holds %d", idleShards, g.idleShards.len)
	case g.globalQ.len > 0 && g.leases+len(g.globalQ.head.parts) <= g.globalMax:
		return fmt.Errorf("global line head needs %d, %d of %d taken: it should have gone", len(g.globalQ.head.parts), g.leases, g.globalMax)
	case g.slotQ.len > 0 && g.conns < g.globalMax:
		return fmt.Errorf("%d keys in the slot line with %d of %d connections", g.slotQ.len, g.conns, g.globalMax)
	case g.slotShortLocked() && g.idle > 0:
		return fmt.Errorf("keys need room under GlobalMax while %d connections are idle", g.idle)
	case g.waiting < 0 || g.waiting < g.globalQ.len:
		return fmt.Errorf("waiting %d, global line %d", g.waiting, g.globalQ.len)
	}
	if placeWait != g.placeWaiting || connWait != g.connWaiting || globalWait != g.globalWaiting {
		return fmt.Errorf("keys have %d waiting for a place, %d for a connection, %d in the global line; group says %d, %d and %d",
			placeWait, connWait, globalWait, g.placeWaiting, g.connWaiting, g.globalWaiting)
	}
	if len(g.all) != len(g.shards) {
		return fmt.Errorf("%d shards listed for Stats, %d in the map", len(g.all), len(g.shards))
	}
	for i, s := range g.all {
		if s.pos != i || g.shards[s.key] != s || s.dropped {
			return fmt.Errorf("shard of %v listed at %d, says %d (dropped %v)", s.key, i, s.pos, s.dropped)
		}
	}
	// The timer's list: waiting requests with a deadline of their own, in
	// deadline order, so that the timer pops the due ones from the head.
	for r := g.timed.head; r != nil; r = r.tlink.next {
		switch {
		case !r.tlink.linked || !r.waiting || r.deadline == 0 || r.byCtx:
			return fmt.Errorf("request in the timed list: timed %v, waiting %v, deadline %d, by ctx %v", r.tlink.linked, r.waiting, r.deadline, r.byCtx)
		case r.tlink.prev != nil && r.tlink.prev.deadline > r.deadline:
			return fmt.Errorf("timed list out of order: deadline %d after %d", r.deadline, r.tlink.prev.deadline)
		case r.tlink.next == nil && g.timed.tail != r:
			return fmt.Errorf("timed list's tail is not its last request")
		}
	}
	if h := g.timed.head; h != nil && !g.closed && (!g.timer.armed || g.timer.at > h.deadline) {
		return fmt.Errorf("timer armed %v for %d, but the earliest deadline is %d", g.timer.armed, g.timer.at, h.deadline)
	}
	n := 0
	for r := g.globalQ.head; r != nil; r = r.next {
		if r.prev != nil && r.prev.ticket >= r.ticket {
			return fmt.Errorf("global line out of order: ticket %d after %d", r.ticket, r.prev.ticket)
		}
		if r.state != reqGlobal {
			return fmt.Errorf("request in the global line in state %d", r.state)
		}
		// Only the head is passed over (handOnLocked): a request behind it
		// has no clock running for that yet.
		if r.passedAt != 0 && r != g.globalQ.head {
			return fmt.Errorf("request %d behind the head of the global line was passed over", n)
		}
		n++
	}
	if n != g.globalQ.len {
		return fmt.Errorf("global line holds %d, len says %d", n, g.globalQ.len)
	}
	return nil
}
