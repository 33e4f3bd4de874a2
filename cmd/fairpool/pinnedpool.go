package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
)

// pinnedSim is one pool under test in the pinned experiment: threads check
// a socket out by their number, hold it, and check it in.
type pinnedSim interface {
	// checkout waits for a socket for thread and returns the function that
	// checks it in. It fails once the context ends or stop is called.
	checkout(ctx context.Context, thread int) (checkin func(), err error)
	// stop fails every waiting and later checkout; the run is over.
	stop()
	// close releases the pool once every socket is checked in.
	close() error
}

// pinnedPoolSpec names a pool the pinned experiment can run.
type pinnedPoolSpec struct {
	name string // the --pools value and the label in tables and plots
	desc string // one line for --help
	open func(sockets int, seed uint64) pinnedSim
}

// pinnedPools lists the pools in the order they run and are shown.
var pinnedPools = []pinnedPoolSpec{
	{"signal", "the driver's pool: each thread pinned to one socket; check-in wakes one waiter (Cond.Signal)",
		func(s int, seed uint64) pinnedSim { return newPinnedPool(s, false, seed) }},
	{"broadcast", "the same pool with the driver's fix: check-in wakes every waiter (Cond.Broadcast)",
		func(s int, seed uint64) pinnedSim { return newPinnedPool(s, true, seed) }},
	{"fairpool", "fairpool, FIFO: any free socket goes to the oldest waiter",
		func(s int, _ uint64) pinnedSim { return newFairpoolPinned(s) }},
}

// lookupPinnedPool finds a pool by its --pools name.
func lookupPinnedPool(name string) (pinnedPoolSpec, bool) {
	for _, p := range pinnedPools {
		if p.name == name {
			return p, true
		}
	}
	return pinnedPoolSpec{}, false
}

// errStopped is what checkout returns once the run is over.
var errStopped = errors.New("pinned pool: stopped")

// pinnedPool is a Ruby driver's pool as the pinned-sockets write-up shows it. A
// thread is pinned to a socket at its first checkout: a new socket while
// fewer than maxSize exist, else a random idle one. From then on it waits for
// that socket only, even while others sit idle. Check-in wakes one waiter
// (signal) or all (broadcast). With signal the woken thread may be one
// whose socket is still out: it waits again, and a thread whose socket just
// came back sleeps on, so a socket stays unused with its thread waiting.
// (The write-up's simplified listing does not mark a new or newly assigned
// socket as checked out; the driver did, and so does this.)
type pinnedPool struct {
	mu         sync.Mutex
	cond       *sync.Cond // on mu
	broadcast  bool
	maxSize    int
	sockets    []*socket       // created so far; guarded by mu
	pinned     map[int]*socket // thread -> its socket; guarded by mu
	checkedOut int             // sockets out; guarded by mu
	rng        *rand.Rand      // picks the idle socket a new thread is pinned to; guarded by mu
	stopped    bool            // guarded by mu
	waiting    int             // threads in cond.Wait; guarded by mu

	// Wake-ups counted for the report: every return from cond.Wait, and those
	// that found the thread's socket still out. Guarded by mu.
	wakeups, futile int64
}

// socket is one of the pool's connections.
type socket struct {
	id  int
	out bool // checked out; guarded by pinnedPool.mu
}

func newPinnedPool(maxSize int, broadcast bool, seed uint64) *pinnedPool {
	p := &pinnedPool{broadcast: broadcast, maxSize: maxSize, pinned: map[int]*socket{},
		rng: rand.New(rand.NewPCG(seed, 0x50c4e7))}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// checkout is the driver's Pool#checkout.
func (p *pinnedPool) checkout(_ context.Context, thread int) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for woken := false; ; woken = true {
		if p.stopped {
			return nil, errStopped
		}
		if s := p.pinned[thread]; s != nil {
			if !s.out { // the thread wants its own socket, and only it
				return p.takeLocked(s), nil
			}
		} else if len(p.sockets) < p.maxSize { // a new socket for a new thread
			s := &socket{id: len(p.sockets)}
			p.sockets = append(p.sockets, s)
			p.pinned[thread] = s
			return p.takeLocked(s), nil
		} else if p.checkedOut < len(p.sockets) { // a random idle socket
			var idle []*socket
			for _, s := range p.sockets {
				if !s.out {
					idle = append(idle, s)
				}
			}
			s := idle[p.rng.IntN(len(idle))]
			p.pinned[thread] = s
			return p.takeLocked(s), nil
		}
		if woken {
			p.futile++
		}
		p.waiting++
		p.cond.Wait()
		p.waiting--
		p.wakeups++
	}
}

// takeLocked checks s out and returns its check-in. p.mu must be held.
func (p *pinnedPool) takeLocked(s *socket) func() {
	s.out = true
	p.checkedOut++
	return func() { p.checkin(s) }
}

// checkin is the driver's Pool#checkin: the socket comes back and one
// waiter (signal) or every waiter (broadcast) is woken to try again.
func (p *pinnedPool) checkin(s *socket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.out = false
	p.checkedOut--
	if p.broadcast {
		p.cond.Broadcast()
	} else {
		p.cond.Signal()
	}
}

func (p *pinnedPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pinnedPool) close() error { return nil }

// counts returns the wake-up counters.
func (p *pinnedPool) counts() (wakeups, futile int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wakeups, p.futile
}

// fairpoolPinned is fairpool in the pinned experiment: no thread owns a
// socket, and a checked-in one goes straight to the oldest waiter.
type fairpoolPinned struct{ p *fairpool.Pool[*socket] }

func newFairpoolPinned(sockets int) *fairpoolPinned {
	var n atomic.Int64 // Open runs in goroutines of its own
	p, err := fairpool.New(fairpool.Config[*socket]{
		Name:           "pinned",
		Open:           func(context.Context) (*socket, error) { return &socket{id: int(n.Add(1))}, nil },
		MaxSize:        sockets,
		AcquireTimeout: -1, // only the run's context bounds a wait, as in the driver
	})
	if err != nil { // sockets >= 1 was checked with the flags
		panic("fairpool sim: bug: pinned pool config rejected: " + err.Error())
	}
	return &fairpoolPinned{p}
}

func (f *fairpoolPinned) checkout(ctx context.Context, _ int) (func(), error) {
	l, err := f.p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

// stop does nothing: the run's context, cancelled with it, ends every wait.
func (f *fairpoolPinned) stop() {}

func (f *fairpoolPinned) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.p.Close(ctx)
}
