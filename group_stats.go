package fairpool

import (
	"cmp"
	"context"
	"log/slog"
	"time"
)

// GroupStats is a snapshot of a Group, taken by Group.Stats.
type GroupStats[K cmp.Ordered] struct {
	// Total is the whole group. MaxSize is GlobalMax (0: none); Waiting
	// counts goroutines waiting; the counters include keys since dropped.
	// Counters count leases: an AcquireAll of three keys is three
	// acquires (and three timeouts if it times out).
	Total Stats

	// Keys has one entry per key with a pool now. MaxSize is PerKeyMax;
	// Waiting counts requests for the key not yet served.
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

// Stats returns a snapshot of the group and of every key's pool. With
// many keys it is as costly as the keys are many; KeyStats reads one.
func (g *Group[K, T]) Stats() GroupStats[K] {
	g.mu.Lock()
	gs := GroupStats[K]{
		Keys:             make(map[K]Stats, len(g.shards)),
		KeyPools:         len(g.shards),
		KeyPoolsCreated:  g.created,
		KeyPoolsDropped:  g.dropped,
		WaitingForGlobal: g.globalQ.len,
		Evictions:        g.evictions,
	}
	total := g.gone
	for k, s := range g.shards {
		ks := g.shardStatsLocked(s)
		gs.Keys[k] = ks
		addCounters(&total, &ks)
		gs.WaitingForKey += s.placeQ.len
		gs.WaitingForConn += s.connQ.len
	}
	total.MaxSize = g.cfg.GlobalMax
	total.Open, total.Idle, total.Opening, total.Closing = g.conns, g.idle, g.opening, g.closing
	total.InUse = g.conns - g.opening - g.closing - g.idle
	total.Waiting = g.waiting
	g.mu.Unlock()
	gs.Total = total
	return gs
}

// KeyStats returns a snapshot of key's pool, and false if key has none
// now.
func (g *Group[K, T]) KeyStats(key K) (Stats, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.shards[key]
	if s == nil {
		return Stats{}, false
	}
	return g.shardStatsLocked(s), true
}

func (g *Group[K, T]) shardStatsLocked(s *shard[K, T]) Stats {
	st := Stats{
		MaxSize:        g.cfg.PerKeyMax,
		Open:           s.numOpen,
		Idle:           s.idle.len(),
		InUse:          s.numOpen - s.opening - s.closing - s.idle.len(),
		Opening:        s.opening,
		Closing:        s.closing,
		Waiting:        s.placeQ.len + s.global + s.connQ.len,
		Acquires:       s.acquires,
		Waits:          s.waits,
		WaitDuration:   time.Duration(s.waitNanos.Load()),
		Timeouts:       s.timeouts,
		Cancels:        s.cancels,
		Opens:          s.opens,
		OpenErrors:     s.openErrors,
		ClosedLifetime: s.closedBy[closeLifetime],
		ClosedIdleTime: s.closedBy[closeIdleTime],
		ClosedCheck:    s.closedBy[closeCheckFailed],
		ClosedReset:    s.closedBy[closeResetFailed],
		ClosedDiscard:  s.closedBy[closeDiscarded],
		ClosedOverIdle: s.closedBy[closeOverIdle],
		ClosedByClose:  s.closedBy[closePoolClosed],
		ClosedEvicted:  s.closedBy[closeEvicted],
	}
	if s.hist != nil {
		st.WaitHistogram = s.hist.snapshot()
	}
	// As in Pool.Stats: acquires that never waited belong in bucket 0.
	if direct := st.Acquires - st.WaitHistogram.Count; direct > 0 {
		st.WaitHistogram.Counts[0] += direct
		st.WaitHistogram.Count += direct
	}
	return st
}

// addCounters adds b's counters and histogram to a's.
func addCounters(a, b *Stats) {
	a.Acquires += b.Acquires
	a.Waits += b.Waits
	a.WaitDuration += b.WaitDuration
	a.Timeouts += b.Timeouts
	a.Cancels += b.Cancels
	a.Opens += b.Opens
	a.OpenErrors += b.OpenErrors
	a.ClosedLifetime += b.ClosedLifetime
	a.ClosedIdleTime += b.ClosedIdleTime
	a.ClosedCheck += b.ClosedCheck
	a.ClosedReset += b.ClosedReset
	a.ClosedDiscard += b.ClosedDiscard
	a.ClosedOverIdle += b.ClosedOverIdle
	a.ClosedByClose += b.ClosedByClose
	a.ClosedEvicted += b.ClosedEvicted
	for i, n := range b.WaitHistogram.Counts {
		a.WaitHistogram.Counts[i] += n
	}
	a.WaitHistogram.Count += b.WaitHistogram.Count
}

// The sweeper is one goroutine per group (not one per key), started when
// KeyIdleTime, MaxLifetime or MaxIdleTime is set. It closes idle
// connections whose time is up, as a Pool's keeper does, and drops the
// pools of keys unused for KeyIdleTime.
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
			used := s.places > 0 || s.refs > 0 || s.opening > 0 || s.acquires != s.seenAcquires
			s.seenAcquires = s.acquires
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
	g.dropped++
	st := g.shardStatsLocked(s)
	addCounters(&g.gone, &st)
	g.logKey(slog.LevelDebug, s.key, "fairpool: key pool dropped")
}

// The Group's log records are the Pool's (see events.go), with a key
// attribute, plus DEBUG "fairpool: key pool dropped" (pool, key); a
// connection closed to make room for another key has reason "evicted".

func (g *Group[K, T]) logKey(level slog.Level, key K, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !g.cfg.Logger.Enabled(ctx, level) {
		return
	}
	g.cfg.Logger.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("pool", g.cfg.Name), slog.Any("key", key)}, attrs...)...)
}

func (g *Group[K, T]) logOpenFailed(key K, err error, waiting int) {
	g.logKey(slog.LevelWarn, key, "fairpool: open failed", slog.Any("error", err), slog.Int("waiting", waiting))
}

func (g *Group[K, T]) logClosed(key K, r closeReason, err error) {
	if err != nil {
		g.logKey(slog.LevelWarn, key, "fairpool: close failed", slog.String("reason", r.String()), slog.Any("error", err))
		return
	}
	g.logKey(slog.LevelDebug, key, "fairpool: connection closed", slog.String("reason", r.String()))
}

func (g *Group[K, T]) logCheckFailed(key K, err error) {
	g.logKey(slog.LevelInfo, key, "fairpool: check failed", slog.Any("error", err))
}

func (g *Group[K, T]) logResetFailed(key K, err error) {
	g.logKey(slog.LevelInfo, key, "fairpool: reset failed", slog.Any("error", err))
}

func (g *Group[K, T]) logTimeout(e *TimeoutError) {
	ctx := context.Background()
	if !g.cfg.Logger.Enabled(ctx, slog.LevelWarn) {
		return
	}
	g.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "fairpool: acquire timed out", slog.String("pool", e.Pool),
		slog.Duration("waited", e.Waited), slog.Int("max_size", e.MaxSize), slog.Int("open", e.Open),
		slog.Int("in_use", e.InUse), slog.Int("idle", e.Idle), slog.Int("waiting", e.Waiting), slog.Int("opening", e.Opening))
}
