package fairpool

import (
	"encoding/json"
	"fmt"
	"iter"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a pool, taken by Pool.Stats. Gauges describe the
// instant; counters run from New.
type Stats struct {
	// Gauges.
	MaxSize int // Config.MaxSize
	MinIdle int // Config.MinIdle
	MaxIdle int // Config.MaxIdle as applied (zero there means MaxSize); 0 in GroupStats.Total, which has none
	Open    int // connections that exist: idle, in use, opening and closing
	Idle    int // connections idle in the pool
	InUse   int // connections leased out
	Opening int // connections being opened
	Closing int // connections being closed
	Waiting int // goroutines waiting in Acquire or With

	// EffectiveSize is MaxSize less the slots held back because the
	// server refused opens (Config.Refused): the most connections the
	// pool will try to hold until an open succeeds again. Equal to
	// MaxSize while nothing is refused; Open and Opening leave those
	// slots out. A Group does not track refusals: there it is MaxSize.
	EffectiveSize int

	// Counters.
	Acquires       int64         // connections handed out by Acquire, TryAcquire and With
	Waits          int64         // acquires that found nothing idle and joined the line, counted as they join: served, timed out, cancelled, shed or still waiting
	WaitDuration   time.Duration // total time spent waiting by acquires that got a connection
	Timeouts       int64         // waits ended by AcquireTimeout
	Cancels        int64         // waits (and checks) ended by the context; not acquires whose context had ended before they began
	Sheds          int64         // acquires turned away because their context's deadline could not be met (ErrOverload)
	Opens          int64         // successful calls to Config.Open
	OpenErrors     int64         // failed calls to Config.Open, refusals included
	RefusedOpens   int64         // opens refused because the server was full (Config.Refused); these fail no waiter
	ClosedLifetime int64         // closed because MaxLifetime passed
	ClosedIdleTime int64         // closed because MaxIdleTime passed
	ClosedCheck    int64         // closed because Config.Check failed
	ClosedReset    int64         // closed because Config.Reset failed
	ClosedDiscard  int64         // closed by Lease.Discard, ErrBadConn or a panic in With
	ClosedOverIdle int64         // closed on release because MaxIdle were idle
	ClosedByClose  int64         // closed by Pool.Close
	ClosedEvicted  int64         // closed to make room for another key (Group only)
	ClosedReclaim  int64         // closed because its lease was dropped without Release (TrackLeases)
	Leaks          int64         // leases held past LeakThreshold
	Reclaims       int64         // leases dropped without Release, reclaimed (TrackLeases)

	// WaitHistogram counts the wait of every acquire that got a connection;
	// one that did not wait counts in the first bucket.
	WaitHistogram Histogram
}

// Stats returns a snapshot of the pool's gauges and counters.
func (p *Pool[T]) Stats() Stats {
	p.mu.Lock()
	s := countersStats(&p.cnt)
	s.MaxSize = p.cfg.MaxSize
	s.MinIdle, s.MaxIdle = p.cfg.MinIdle, p.cfg.MaxIdle
	heldBack := p.refused.heldBackLocked()
	s.EffectiveSize = p.cfg.MaxSize - heldBack
	s.RefusedOpens = p.refused.count
	s.Open = p.numOpen - heldBack
	s.Idle = p.idle.len()
	s.InUse = p.inUseLocked()
	s.Opening = p.opening - heldBack
	s.Closing = p.closing
	s.Waiting = p.waiters.len
	s.Leaks = p.leaks
	p.mu.Unlock()
	s.WaitDuration = time.Duration(p.waitNanos.Load())
	addWaits(&s, &p.hist)
	return s
}

// countersStats maps counters, a Pool's or a Group's (one key's or the
// whole group's), to Stats' counters.
func countersStats(c *counters) Stats {
	return Stats{
		Acquires:       c.n[cAcquires],
		Waits:          c.n[cWaits],
		Timeouts:       c.n[cTimeouts],
		Cancels:        c.n[cCancels],
		Sheds:          c.n[cSheds],
		Opens:          c.n[cOpens],
		OpenErrors:     c.n[cOpenErrors],
		ClosedLifetime: c.closedBy[closeLifetime],
		ClosedIdleTime: c.closedBy[closeIdleTime],
		ClosedCheck:    c.closedBy[closeCheckFailed],
		ClosedReset:    c.closedBy[closeResetFailed],
		ClosedDiscard:  c.closedBy[closeDiscarded],
		ClosedOverIdle: c.closedBy[closeOverIdle],
		ClosedByClose:  c.closedBy[closePoolClosed],
		ClosedEvicted:  c.closedBy[closeEvicted],
		ClosedReclaim:  c.closedBy[closeReclaimed],
		// Every reclaim closes its connection for that reason, and
		// nothing else does.
		Reclaims: c.closedBy[closeReclaimed],
	}
}

// addWaits fills st's histogram from h (nil: no wait yet). Acquires that
// never queued are not observed one by one, to keep the fast path free of
// shared writes; they belong in the first bucket. The count can lag a
// waiter that has been granted but not yet woken.
func addWaits(st *Stats, h *histogram) {
	if h != nil {
		st.WaitHistogram = h.snapshot()
	}
	if direct := st.Acquires - st.WaitHistogram.Count; direct > 0 {
		st.WaitHistogram.Counts[0] += direct
		st.WaitHistogram.Count += direct
	}
}

// inUseLocked derives the leased connections from the counts mu guards.
func (p *Pool[T]) inUseLocked() int {
	return p.numOpen - p.opening - p.closing - p.idle.len()
}

// NumBuckets is the number of buckets in a Histogram.
const NumBuckets = 28

// Histogram is a wait-time histogram with fixed log-scale buckets: bucket 0
// holds waits under 1µs, bucket i (1 <= i < NumBuckets-1) holds waits in
// [2^(i-1) µs, 2^i µs), and the last bucket everything from about 67 s up.
type Histogram struct {
	Counts [NumBuckets]int64
	Count  int64 // sum of Counts
}

// BucketUpperBound returns the exclusive upper bound of bucket i; the last
// bucket's is the largest Duration.
func BucketUpperBound(i int) time.Duration {
	if i >= NumBuckets-1 {
		return time.Duration(1<<63 - 1)
	}
	return time.Microsecond << i
}

func bucketOf(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	return min(bits.Len64(us), NumBuckets-1)
}

// Quantile returns an upper bound for the q-quantile (0 <= q <= 1) of the
// recorded waits: the upper bound of the bucket it falls in, so within a
// factor of two. It returns 0 for an empty histogram.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := int64(q*float64(h.Count-1)) + 1
	var seen int64
	for i, n := range h.Counts {
		seen += n
		if seen >= rank {
			return BucketUpperBound(i)
		}
	}
	return BucketUpperBound(NumBuckets - 1)
}

// histogram is the live form of Histogram, written by waiters without a lock.
type histogram struct {
	counts [NumBuckets]atomic.Int64
}

func (h *histogram) observe(d time.Duration) { h.counts[bucketOf(d)].Add(1) }

func (h *histogram) snapshot() Histogram {
	var s Histogram
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	return s
}

// Var returns the pool's Stats as an expvar.Var, for publishing under
// /debug/vars without this package importing expvar:
//
//	expvar.Publish("db", pool.Var())
//
// Each read takes a fresh Stats and renders it as JSON.
func (p *Pool[T]) Var() fmt.Stringer { return statsVar(p.Stats) }

type statsVar func() Stats

func (v statsVar) String() string {
	b, err := json.Marshal(v())
	if err != nil { // Stats holds only numbers; this cannot happen
		return strconv.Quote(err.Error())
	}
	return string(b)
}

// ClosedByReason yields, always in this order, each reason a pool closes
// connections for, named as metrics label it (lifetime, idle_time,
// check_failed, reset_failed, discarded, over_max_idle, pool_closed,
// evicted, reclaimed), with s's count of it: the Closed* fields, for
// exporters that label one series by reason. fairprom and fairotel use it.
func (s Stats) ClosedByReason() iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		for _, r := range [...]struct {
			label string
			n     int64
		}{
			{"lifetime", s.ClosedLifetime},
			{"idle_time", s.ClosedIdleTime},
			{"check_failed", s.ClosedCheck},
			{"reset_failed", s.ClosedReset},
			{"discarded", s.ClosedDiscard},
			{"over_max_idle", s.ClosedOverIdle},
			{"pool_closed", s.ClosedByClose},
			{"evicted", s.ClosedEvicted},
			{"reclaimed", s.ClosedReclaim},
		} {
			if !yield(r.label, r.n) {
				return
			}
		}
	}
}
