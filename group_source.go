package fairpool

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// GroupSummary is a Group's figures with its keys formatted as text, so
// that code showing or exporting groups (a status page, a metrics
// collector, a log line) can take groups of any key and connection type
// through one non-generic interface:
//
//	type summarizer interface{ Summary() fairpool.GroupSummary }
//
// Group.Summary returns it; the fields mean what GroupStats' do.
type GroupSummary struct {
	// Total is GroupStats.Total: the whole group at one instant, MaxSize
	// being GlobalMax (0: none).
	Total Stats

	KeyPools         int   // keys with a pool now
	KeyPoolsCreated  int64 // pools made, one per first use of a key (or first use after a drop)
	KeyPoolsDropped  int64 // pools dropped after KeyIdleTime unused
	WaitingForKey    int   // requests waiting for a place on a key at PerKeyMax
	WaitingForGlobal int   // requests that have their keys' places, waiting for GlobalMax
	WaitingForConn   int   // leases past both limits, waiting for a connection
	Evictions        int64 // idle connections closed to make room for another key

	// Keys has one entry per key with a pool, in key order (cmp.Compare
	// on K, not on the formatted text: key 10 comes after key 9).
	Keys []KeySummary
}

// KeySummary is one key of a GroupSummary.
type KeySummary struct {
	Key     string          // the key formatted with %v, as in the key's pool name, Name[key]
	Stats   Stats           // as in GroupStats.Keys: MaxSize is PerKeyMax
	Waiters []time.Duration // as KeyWaiters lists them, in serving order; empty, not nil, if none
}

// Summary returns the group's figures as GroupSummary: Stats, with the
// keys formatted with %v and sorted, and each busy key's waiters. It
// costs Stats plus one KeyWaiters per key with requests waiting; each
// key's waiters are read just after the Stats walk, so under load a
// key's Waiters can differ in length from its Stats.Waiting by a request
// that came or went in between.
func (g *Group[K, T]) Summary() GroupSummary {
	gs := g.Stats()
	sum := GroupSummary{
		Total:            gs.Total,
		KeyPools:         gs.KeyPools,
		KeyPoolsCreated:  gs.KeyPoolsCreated,
		KeyPoolsDropped:  gs.KeyPoolsDropped,
		WaitingForKey:    gs.WaitingForKey,
		WaitingForGlobal: gs.WaitingForGlobal,
		WaitingForConn:   gs.WaitingForConn,
		Evictions:        gs.Evictions,
		Keys:             make([]KeySummary, 0, len(gs.Keys)),
	}
	for _, k := range slices.Sorted(maps.Keys(gs.Keys)) {
		st := gs.Keys[k]
		ks := KeySummary{Key: fmt.Sprint(k), Stats: st, Waiters: []time.Duration{}}
		if st.Waiting > 0 { // the group's lock once per busy key, not per key
			ks.Waiters = g.KeyWaiters(k)
		}
		sum.Keys = append(sum.Keys, ks)
	}
	return sum
}
