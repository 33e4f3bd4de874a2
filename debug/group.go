package debug

import (
	"cmp"
	"time"

	"github.com/fairpool/fairpool"
)

// Group returns g as a Source. A *fairpool.Group is a Source by itself, so
// h.Add("tenants", g) does the same; Group remains for code written when
// it was not. Group(nil) is nil, which Add refuses.
func Group[K cmp.Ordered, T any](g *fairpool.Group[K, T]) Source {
	if g == nil {
		return nil
	}
	return g
}

// groupSnapshot reads g from one Summary: its totals, its own figures,
// and a row per key.
func groupSnapshot(name string, g group) poolSnapshot {
	sum := g.Summary()
	p := poolSnapshot{
		Name:    name,
		Stats:   sum.Total,
		Holders: g.Holders(),
		Waiters: g.Waiters(),
		Group: &groupFigures{
			KeyPools:         sum.KeyPools,
			KeyPoolsCreated:  sum.KeyPoolsCreated,
			KeyPoolsDropped:  sum.KeyPoolsDropped,
			WaitingForKey:    sum.WaitingForKey,
			WaitingForGlobal: sum.WaitingForGlobal,
			WaitingForConn:   sum.WaitingForConn,
			Evictions:        sum.Evictions,
		},
		Keys: sum.Keys,
	}
	// A Source of the user's own may leave slices nil; the JSON promises
	// arrays.
	if p.Keys == nil {
		p.Keys = []fairpool.KeySummary{}
	}
	for i := range p.Keys {
		if p.Keys[i].Waiters == nil {
			p.Keys[i].Waiters = []time.Duration{}
		}
	}
	return p
}

// groupFigures are a group's figures that a pool has no counterpart of:
// GroupSummary but Total and Keys.
type groupFigures struct {
	KeyPools         int
	KeyPoolsCreated  int64
	KeyPoolsDropped  int64
	WaitingForKey    int
	WaitingForGlobal int
	WaitingForConn   int
	Evictions        int64
}
