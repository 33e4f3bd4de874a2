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

// Observe adds o to the pool's observers until stop is called. stop may
// be called more than once.
func (p *Pool[T]) Observe(o Observer) (stop func()) { return p.obs.add(o) }

// Observe adds o to the group's observers, for every key, until stop is
// called, as Pool.Observe does.
func (g *Group[K, T]) Observe(o Observer) (stop func()) { return g.obs.add(o) }

// observers is a pool's set of Observers: copied on write, so that an
// event reads it with one atomic load and no lock.
type observers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Observer] // nil when there are none
}

func (ob *observers) add(o Observer) (stop func()) {
	op := &o
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var l []*Observer
	if old := ob.list.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, op)
	ob.list.Store(&l)
	return func() { ob.remove(op) }
}

func (ob *observers) remove(op *Observer) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	old := ob.list.Load()
	if old == nil {
		return
	}
	l := slices.DeleteFunc(slices.Clone(*old), func(o *Observer) bool { return o == op })
	if len(l) == 0 {
		ob.list.Store(nil)
	} else {
		ob.list.Store(&l)
	}
}

// handedOut reports a hand-out of c, after a wait of waited, to the
// observers, if any, and starts the clock of its use; without observers
// it leaves that clock unset, so that the lease's end reports nothing.
func handedOut[T any](ob *observers, c *conn[T], waited time.Duration) {
	l := ob.list.Load()
	if l == nil {
		c.leasedAt = 0
		return
	}
	for _, o := range *l {
		if o.Acquired != nil {
			o.Acquired(waited)
		}
	}
	c.leasedAt = sinceEpoch()
}

// released reports the end of a lease on c, if its use was clocked.
func released[T any](c *conn[T]) {
	if c.leasedAt == 0 {
		return
	}
	held := time.Duration(sinceEpoch() - c.leasedAt)
	if l := c.obs.list.Load(); l != nil {
		for _, o := range *l {
			if o.Released != nil {
				o.Released(held)
			}
		}
	}
}

// opened reports an open that took took.
func (ob *observers) opened(took time.Duration) {
	if l := ob.list.Load(); l != nil {
		for _, o := range *l {
			if o.Opened != nil {
				o.Opened(took)
			}
		}
	}
}

// epoch is the zero of a lease's use clock, shared by every pool: the
// release reads it without knowing the pool.
var epoch = time.Now()

func sinceEpoch() int64 { return int64(time.Since(epoch)) + 1 }
