package debug

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fairpool/fairpool"
)

// Group returns a Source that shows g on the page: its totals as a pool's
// figures (size is GlobalMax), the group's own figures (keys, waiting in
// each line, evictions), and a row per key with a pool, in key order: its
// size (PerKeyMax), connections open, in use, idle, opening and closing,
// requests waiting and the longest wait, and its counters. Add it as any
// pool:
//
//	h.Add("tenants", debug.Group(tenants))
//
// A Group does not fit Source by itself (its Stats is a GroupStats), hence
// the wrapper. Group(nil) is nil, which Add refuses.
func Group[K cmp.Ordered, T any](g *fairpool.Group[K, T]) Source {
	if g == nil {
		return nil
	}
	return groupSource[K, T]{g}
}

// keyed is a Source with rows per key: what Group returns. The handler
// reads it with snapshot, from one GroupStats, rather than with Stats,
// Holders and Waiters.
type keyed interface {
	Source
	snapshot(name string) poolSnapshot
}

type groupSource[K cmp.Ordered, T any] struct{ g *fairpool.Group[K, T] }

// Stats returns the group's totals.
func (s groupSource[K, T]) Stats() fairpool.Stats { return s.g.Stats().Total }

// Holders returns the group's leases out, each with its key (empty
// without GroupConfig.TrackLeases).
func (s groupSource[K, T]) Holders() []fairpool.Holder { return s.g.Holders() }

// Waiters returns how long each request waiting in the group has waited,
// longest first; per key, in serving order, they are on the key's row.
func (s groupSource[K, T]) Waiters() []time.Duration { return s.g.Waiters() }

func (s groupSource[K, T]) snapshot(name string) poolSnapshot {
	gs := s.g.Stats()
	p := poolSnapshot{
		Name:    name,
		Stats:   gs.Total,
		Holders: s.Holders(),
		Waiters: s.Waiters(),
		Group: &groupFigures{
			KeyPools:         gs.KeyPools,
			KeyPoolsCreated:  gs.KeyPoolsCreated,
			KeyPoolsDropped:  gs.KeyPoolsDropped,
			WaitingForKey:    gs.WaitingForKey,
			WaitingForGlobal: gs.WaitingForGlobal,
			WaitingForConn:   gs.WaitingForConn,
			Evictions:        gs.Evictions,
		},
		Keys: make([]keySnapshot, 0, len(gs.Keys)),
	}
	for _, k := range slices.Sorted(maps.Keys(gs.Keys)) {
		st := gs.Keys[k]
		ks := keySnapshot{Key: fmt.Sprint(k), Stats: st, Waiters: []time.Duration{}}
		if st.Waiting > 0 { // one lock per busy key, not per key
			ks.Waiters = s.g.KeyWaiters(k)
		}
		p.Keys = append(p.Keys, ks)
	}
	return p
}

// groupFigures are a group's figures that a pool has no counterpart of:
// GroupStats but Total and Keys.
type groupFigures struct {
	KeyPools         int
	KeyPoolsCreated  int64
	KeyPoolsDropped  int64
	WaitingForKey    int
	WaitingForGlobal int
	WaitingForConn   int
	Evictions        int64
}

// keySnapshot is one key of a group: its Stats, and its waiters in
// serving order.
type keySnapshot struct {
	Key     string // formatted with %v, as in the key's pool name
	Stats   fairpool.Stats
	Waiters []time.Duration
}
