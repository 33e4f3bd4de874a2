package fairpool

import (
	"cmp"
	"log/slog"
	"runtime"
	"slices"
	"time"
)

// GroupStats is a snapshot of a Group, taken by Group.Stats.
type GroupStats[K cmp.Ordered] struct {
	// Total is the whole group, at one instant. MaxSize is GlobalMax (0:
	// none); Waiting counts goroutines waiting; the counters include keys
	// since dropped. Counters count leases: an AcquireAll of three keys is
	// three acquires (and three timeouts if it times out).
	Total Stats

	// Keys has one entry per key with a pool when Stats began (less any
	// dropped while it ran). MaxSize is PerKeyMax; Waiting counts requests
	// for the key not yet served. Each key's entry is consistent in
	// itself, but the keys are read one after another, not at one instant
	// (Stats does not stop the group for the walk), so while the group is
	// busy their sums can differ from Total, which also counts dropped
	// keys; in a quiet group without dropped keys they add up to it.
	Keys map[K]Stats

	KeyPools        int   // keys with a pool now
	KeyPoolsCreated int64 // pools made, one per first use of a key (or first use after a drop)
	KeyPoolsDropped int64 // pools dropped after KeyIdleTime unused

	WaitingForKey    int // requests waiting for a place on a key at PerKeyMax
	WaitingForGlobal int // requests that have their keys' places, waiting for GlobalMax
	WaitingForConn   int // leases past both limits, waiting for a connection to be opened or released

	// Evictions counts idle connections closed to make room for another
	// key under GlobalMax, the same as Total.ClosedEvicted: the connections
	// a Group closed are the sum of Total's Closed counters.
	Evictions int64
}

// statsChunk is how many keys Stats reads per critical section: short
// enough that an Acquire waiting for mu barely notices, long enough that
// the lock is not taken once per key.
const statsChunk = 256

// Stats returns a snapshot of the group and of every key's pool. Total and
// the other group-wide figures are kept as running totals and read at
// once; Keys costs as much as the keys are many, but holds mu only for a
// chunk of keys at a time. KeyStats reads one key.
func (g *Group[K, T]) Stats() GroupStats[K] {
	g.mu.Lock()
	gs := GroupStats[K]{
		KeyPools:         len(g.shards),
		KeyPoolsCreated:  g.created,
		KeyPoolsDropped:  g.dropped,
		WaitingForKey:    g.placeWaiting,
		WaitingForGlobal: g.globalQ.len,
		WaitingForConn:   g.connWaiting,
		Evictions:        g.evictions,
	}
	total := countersStats(&g.total)
	total.MaxSize = g.cfg.GlobalMax
	total.EffectiveSize = total.MaxSize
	total.Open, total.Idle, total.Opening, total.Closing = g.conns, g.idle, g.opening, g.closing
	total.InUse = g.conns - g.opening - g.closing - g.idle
	total.Waiting = g.waiting
	total.Leaks = g.tracking.totalLeaks
	shards := slices.Clone(g.all)
	g.mu.Unlock()
	total.WaitDuration = time.Duration(g.waitNanos.Load())
	addWaits(&total, &g.hist)
	gs.Total = total
	gs.Keys = make(map[K]Stats, len(shards))
	type figures struct {
		s  *shard[K, T]
		st Stats
		h  *histogram
	}
	buf := make([]figures, 0, min(len(shards), statsChunk))
	for i := 0; i < len(shards); i += statsChunk {
		if i > 0 && g.statsHook != nil {
			g.statsHook()
		}
		chunk := shards[i:min(len(shards), i+statsChunk)]
		buf = buf[:0]
		g.mu.Lock()
		for _, s := range chunk {
			if !s.dropped {
				buf = append(buf, figures{s, g.shardCountsLocked(s), s.hist})
			}
		}
		g.mu.Unlock()
		// A goroutine that waited for mu was made ready on this P, to run
		// when this one yields: yield, or it waits out a time slice.
		runtime.Gosched()
		for j := range buf {
			f := &buf[j]
			f.st.WaitDuration = time.Duration(f.s.waitNanos.Load())
			addWaits(&f.st, f.h)
			gs.Keys[f.s.key] = f.st
		}
	}
	return gs
}

// KeyStats returns a snapshot of key's pool, and false if key has none
// now.
func (g *Group[K, T]) KeyStats(key K) (Stats, bool) {
	g.mu.Lock()
	s := g.shards[key]
	if s == nil {
		g.mu.Unlock()
		return Stats{}, false
	}
	st, h := g.shardCountsLocked(s), s.hist
	g.mu.Unlock()
	st.WaitDuration = time.Duration(s.waitNanos.Load())
	addWaits(&st, h)
	return st, true
}

// shardCountsLocked is s's Stats but for the wait figures, which are
// atomic and read without mu.
func (g *Group[K, T]) shardCountsLocked(s *shard[K, T]) Stats {
	st := countersStats(&s.counters)
	st.MaxSize = g.cfg.PerKeyMax
	st.EffectiveSize = st.MaxSize
	st.MinIdle, st.MaxIdle = g.cfg.MinIdle, g.cfg.MaxIdle
	st.Open = s.numOpen
	st.Idle = s.idle.len()
	st.InUse = s.numOpen - s.opening - s.closing - s.idle.len()
	st.Opening = s.opening
	st.Closing = s.closing
	st.Waiting = s.placeQ.len + s.global + s.connQ.len
	st.Leaks = g.tracking.leaks[s]
	return st
}

// The sweeper is one goroutine per group (not one per key), started when
// KeyIdleTime, MaxLifetime, MaxIdleTime or LeakThreshold is set. It
// closes idle connections whose time is up and warns of leases held past
// LeakThreshold, as a Pool's keeper does, drops the pools of keys
// unused for KeyIdleTime, and opens connections up to MinIdle (warm).
func (g *Group[K, T]) sweep() {
	tk := time.NewTicker(g.sweepEvery)
	defer tk.Stop()
	for {
		select {
		case <-g.stopSweep:
			g.mu.Lock()
			g.sweeperRunning = false
			g.checkDrainedLocked()
			g.mu.Unlock()
			return
		case <-tk.C:
			g.sweepOnce()
			g.warm()
		case <-g.kick: // nil without MinIdle: never ready
			g.warm()
		}
	}
}

func (g *Group[K, T]) sweepOnce() {
	now := g.now()
	var t todo[K, T]
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	leaks := g.findLeaksLocked(now)
	if g.cfg.MaxLifetime > 0 || g.cfg.MaxIdleTime > 0 {
		for s := g.idleShards.head; s != nil; {
			next := s.idleLink.next
			expired, reasons := s.idle.takeExpired(now, g.cfg.MaxIdleTime)
			g.idle -= len(expired)
			if s.idle.len() == 0 {
				g.idleShards.remove(s)
			}
			for i, c := range expired {
				g.beginCloseLocked(s, c, reasons[i], &t)
			}
			s = next
		}
	}
	if g.cfg.KeyIdleTime > 0 {
		for _, s := range g.shards {
			// A key is unused when nothing of it is leased, asked for or
			// opening, and no acquire happened since the last look.
			used := s.places > 0 || s.refs > 0 || s.opening > 0 || s.n[cAcquires] != s.seenAcquires
			s.seenAcquires = s.n[cAcquires]
			switch {
			case used:
				s.quietSince = 0
			case s.quietSince == 0:
				s.quietSince = now
			case time.Duration(now-s.quietSince) >= g.cfg.KeyIdleTime:
				for c := g.popIdleLocked(s); c != nil; c = g.popIdleLocked(s) {
					g.beginCloseLocked(s, c, closeIdleTime, &t)
				}
				s.retiring = true
				g.maybeDropLocked(s) // now, or when its last close is done
			}
		}
	}
	g.mu.Unlock()
	g.run(&t)
	for _, h := range leaks {
		g.events(h.key).log(slog.LevelWarn, "fairpool: lease held too long",
			slog.Duration("held_for", h.HeldFor), slog.String("caller", h.Caller), slog.String("stack", h.Stack))
	}
}

// maybeDropLocked drops a retiring key's pool once nothing of it is left.
// Nothing then refers to the shard but ended leases, so a later request
// for the key makes a new one.
func (g *Group[K, T]) maybeDropLocked(s *shard[K, T]) {
	if !s.retiring || s.numOpen > 0 || s.places > 0 || s.refs > 0 {
		return
	}
	s.retiring = false
	if g.shards[s.key] != s {
		return
	}
	delete(g.shards, s.key)
	last := g.all[len(g.all)-1]
	g.all[s.pos], last.pos = last, s.pos
	g.all[len(g.all)-1] = nil
	g.all = g.all[:len(g.all)-1]
	s.dropped = true
	delete(g.tracking.leaks, s) // its leaks stay in Total
	g.dropped++
	g.events(s.key).log(slog.LevelDebug, "fairpool: key pool dropped")
}

// The Group's log records are the Pool's (see events.go), with a key
// attribute, plus DEBUG "fairpool: key pool dropped" (pool, key); a
// connection closed to make room for another key has reason "evicted", a
// value that Open returned along with an error, "open failed".
