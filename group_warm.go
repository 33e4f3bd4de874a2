package fairpool

import "context"

// MinIdle per key. The sweeper warms keys: after each round, and when a
// hand-out or a close left a key below MinIdle idle, it opens connections
// one at a time in its own goroutine, as Pool's keeper does. Each slot is
// taken just before its open, and only while nobody waits for the key or
// in the global line and no key waits for room under GlobalMax: a slot
// held for a later warm open is one a waiter could use now. The key with
// the fewest idle goes first, so under a tight GlobalMax the warm
// connections spread over the keys rather than fill the first.

// kickLocked wakes the sweeper if s fell below MinIdle idle.
func (g *Group[K, T]) kickLocked(s *shard[K, T]) {
	if g.kick != nil && s.idle.len() < g.cfg.MinIdle {
		select {
		case g.kick <- struct{}{}:
		default: // already kicked
		}
	}
}

// warm opens connections until no key may have another (reserveWarmLocked).
// A key whose open fails is left for the next round, so a refusing server
// is not hammered; the other keys go on.
func (g *Group[K, T]) warm() {
	if g.cfg.MinIdle == 0 {
		return
	}
	var failed map[*shard[K, T]]bool
	for {
		g.mu.Lock()
		s, at := g.reserveWarmLocked(failed)
		g.mu.Unlock()
		if s == nil {
			return
		}
		// The open is for no request: when it is done, putLocked gives the
		// connection to the key's next waiter if one has come, else idle.
		// Close cancels it through g.done.
		if g.open(s, context.Background(), at) != nil {
			if failed == nil {
				failed = map[*shard[K, T]]bool{}
			}
			failed[s] = true
		}
	}
}

// reserveWarmLocked counts one open for the key, among those below
// MinIdle idle (counting opens under way) that nobody waits for, with
// the fewest, and returns it with the time of the decision; or nil when
// no key may have one: the group is closed, someone waits in the global
// line or for room under GlobalMax, or GlobalMax connections exist. Keys
// being dropped (retiring) get none: warming them would keep them alive.
func (g *Group[K, T]) reserveWarmLocked(failed map[*shard[K, T]]bool) (*shard[K, T], mono) {
	if g.closed || g.globalQ.len > 0 || g.slotQ.len > 0 || g.conns >= g.globalMax {
		return nil, 0
	}
	var best *shard[K, T]
	bestN := 0
	for _, s := range g.all {
		n := s.idle.len() + s.opening
		if n >= g.cfg.MinIdle || s.retiring || failed[s] || s.numOpen >= g.cfg.PerKeyMax ||
			s.placeQ.len > 0 || s.connQ.len > 0 || s.global > 0 {
			continue
		}
		if best == nil || n < bestN {
			best, bestN = s, n
		}
	}
	if best == nil {
		return nil, 0
	}
	g.conns++
	g.opening++
	best.numOpen++
	best.opening++
	return best, g.now()
}
