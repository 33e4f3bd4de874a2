package fairpool

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Observer receives a pool's events one at a time as they happen, for
// metrics that need every observation (histograms of waits, opens and
// use) rather than the running totals of Stats. Any field may be nil.
//
// The functions run on the goroutine of the event (the acquiring caller's,
// the releasing caller's, an open's), outside the pool's lock, so they
// must be quick and must not call the pool. A pool without observers pays
// one atomic load per acquire and per release for the feature.
type Observer struct {
	// Acquired is called for each lease handed out (by Acquire,
	// TryAcquire, With; by a Group's AcquireAll once per key), with how
	// long the caller waited in line for it: zero when it did not wait.
	Acquired func(waited time.Duration)

	// Opened is called for each connection opened, with how long Open
	// took. Failed opens are not reported (Stats.OpenErrors counts them).
	Opened func(took time.Duration)

	// Released is called as each lease ends, by Release or Discard, with
	// how long it was held. Leases handed out before the Observer was
	// added are not reported.
	Released func(held time.Duration)
}

// Observe adds o to the pool's observers until stop is called. Once stop
// has returned no call to o begins (one under way may still finish), and
// stop may be called more than once. A lease handed out before o was
// added is not reported to o, nor its end; a lease that ends after stop
// is not reported either. A lease the garbage collector reclaims
// (Config.TrackLeases) is reported as ended when it is reclaimed.
func (p *Pool[T]) Observe(o Observer) (stop func()) { return p.obs.add(o) }

// Observe adds o to the group's observers, for every key, until stop is
// called, as Pool.Observe does.
func (g *Group[K, T]) Observe(o Observer) (stop func()) { return g.obs.add(o) }

// observers is a pool's set of Observers: copied on write, so that an
// event reads it with one atomic load and no lock.
type observers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*observer] // nil when there are none
}

// observer is one added Observer; stopped is checked before each call, so
// that nothing begins once stop has returned, even for an event that
// loaded the list before.
type observer struct {
	Observer
	stopped atomic.Bool
}

func (ob *observers) add(o Observer) (stop func()) {
	op := &observer{Observer: o}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var l []*observer
	if old := ob.list.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, op)
	ob.list.Store(&l)
	return func() { ob.remove(op) }
}

func (ob *observers) remove(op *observer) {
	op.stopped.Store(true)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	old := ob.list.Load()
	if old == nil {
		return
	}
	l := slices.DeleteFunc(slices.Clone(*old), func(o *observer) bool { return o == op })
	if len(l) == 0 {
		ob.list.Store(nil)
	} else {
		ob.list.Store(&l)
	}
}

// use is a lease's clock for its observers: when it was handed out, and to
// whom it was reported then, who alone hear of its end.
type use struct {
	since    int64 // sinceEpoch; 0: not clocked, nobody observed the hand-out
	watchers *[]*observer
}

// handedOut reports a hand-out of c, after a wait of waited, to the
// observers, if any, and starts the clock of its use.
func handedOut[T any](ob *observers, c *conn[T], waited time.Duration) {
	l := ob.list.Load()
	if l == nil {
		c.use = use{}
		return
	}
	for _, o := range *l {
		if o.Acquired != nil && !o.stopped.Load() {
			o.Acquired(waited)
		}
	}
	c.use = use{since: sinceEpoch(), watchers: l}
}

// ended reports the end of the use u, if it was clocked.
func (u use) ended() {
	if u.since == 0 {
		return
	}
	held := time.Duration(sinceEpoch() - u.since)
	for _, o := range *u.watchers {
		if o.Released != nil && !o.stopped.Load() {
			o.Released(held)
		}
	}
}

// opened reports an open that took took.
func (ob *observers) opened(took time.Duration) {
	if l := ob.list.Load(); l != nil {
		for _, o := range *l {
			if o.Opened != nil && !o.stopped.Load() {
				o.Opened(took)
			}
		}
	}
}

// epoch is the zero of a lease's use clock, shared by every pool: the
// release reads it without knowing the pool.
var epoch = time.Now()

func sinceEpoch() int64 { return int64(time.Since(epoch)) + 1 }
