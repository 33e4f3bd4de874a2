package fairpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Group shares connections to many keys (databases, shards, tenants,
// replicas) with a limit per key and one for the whole group. The pool of a
// key is made on its first use, exactly once however many goroutines ask at
// the same instant, and dropped after KeyIdleTime unused, so memory stays
// bounded with many keys. A Group is safe for concurrent use; create one
// with NewGroup.
//
// # Order
//
// Every request passes two lines, each first come, first served:
//
//  1. Its key's line. At most PerKeyMax leases of a key are out (or being
//     prepared) at once; beyond that, requests for the key wait in arrival
//     order (newest first with GroupConfig.WaitOrder LIFO, which orders
//     this line and the key's wait for connections, never the global
//     line). Order is per key here: a busy key never delays another.
//  2. The global line. At most GlobalMax leases are out in the whole group;
//     beyond that, requests that have their key's place wait in the order
//     they reached the global line, whatever their key. Order is global
//     here, with one bounded exception, hand-on (see Connections), which
//     serves a request ahead of older ones of other keys, never of its
//     own. A request whose key had room reaches the line on arrival, so
//     when only the global limit binds, waiters are served in arrival
//     order across keys, but for hand-on. A key has at most PerKeyMax
//     requests in the global line, so no key can crowd out the others.
//
// As in Pool, nobody jumps a line: a newcomer takes an idle connection only
// when nobody waits in either line it would pass.
//
// # Connections
//
// A key has at most PerKeyMax connections and the group at most GlobalMax,
// counting those being opened and closed. A request that has passed both
// lines takes an idle connection of its key, or the next one released or
// opened for its key, in the order it passed them. When it needs a new
// connection and GlobalMax exist, an idle connection of another key is
// closed to make room (an eviction, counted in GroupStats.Evictions),
// taken from the key that first went idle, so roughly the coldest. Past
// both lines a request waits only for an open or a close under way, never
// for another holder to release.
//
// Moving a connection from key A to key B (closing it, opening one for B)
// costs a close and an open, during which that room serves nobody. When
// GlobalMax binds and the keys are busy, serving the global line strictly
// in order would move a connection on nearly every release, so the group
// hands on instead. The rule: when a lease of key A is released with its
// connection while GlobalMax connections exist, no request of A waits
// for a connection and none waits for room under GlobalMax, and A's next
// request in the global line asks for A alone, that request gets the
// connection and the lease at once, ahead of the line's head (of other
// keys), as long as the head has been passed over so for less than the
// move bound; counted from the first time it was, and again from the
// last time while one of its keys has a connection being opened (it is
// on its way to that key, and will come back to the head after one use).
// Past the bound, a released connection moves to the head if its key
// keeps another; past twice the bound, whatever its key has: the line is
// in order again until the head is served. So a request waits for the
// requests ahead of it in the global line, for at most twice the bound at
// its head, then for the next release and the move; a key with
// connections of its own keeps them busy and never pays a move.
//
// The bound is GroupConfig.MoveAfter if set, else what a move has cost of
// late: the running average (weight 1/8) of Open plus that of Close, each
// timed from when the group decides on it to when it ends. Waiting that
// long before moving, as one rents skis until their price is spent, costs
// the head at most about twice what the move alone would. Before the
// first open, with free opens, or with MoveAfter negative, the bound is
// zero and the line is strictly in order.
//
// # Several keys at once
//
// AcquireAll and WithAll take several keys all or nothing, in ascending key
// order whatever order they were asked in, and take their places in the
// global line for all of them at once; so callers that take several keys
// cannot deadlock one another. A context from With or WithAll
// carries its leases: a nested With on a key it holds reuses that
// connection. A nested call on a key not held takes it after the ones held,
// out of canonical order, and can wait for another caller that waits for
// it; like any wait, that ends at AcquireTimeout. Take every key you need in
// the outermost WithAll.
type Group[K cmp.Ordered, T any] struct {
	life[K, T] // opening, vetting, releasing and closing; see life.go
	cfg        GroupConfig[K, T]
	globalMax  int // GlobalMax, or MaxInt without one
	sweepEvery time.Duration
	errClosed  error

	// mu guards everything below and every shard and request. While it is
	// not held, for every key and for the group:
	//
	//	places <= PerKeyMax, numOpen <= PerKeyMax; leases <= GlobalMax, conns <= GlobalMax
	//	placeQ not empty  implies  places == PerKeyMax
	//	globalQ not empty implies  its head does not fit under GlobalMax
	//	connQ not empty   implies  the key has no idle connection
	//	slotQ not empty   implies  conns == GlobalMax, and no connection is idle
	//	                           anywhere unless enough are closing to serve it
	//	a key's globalParts holds exactly its parts of the requests in globalQ,
	//	in globalQ's order; only globalQ's head has passedAt set
	//
	// That is: nobody waits while what they wait for is free. Whatever frees
	// a place, a lease or a connection hands it on in the same critical
	// section, and a newcomer takes the fast path only when every line it
	// would pass is empty.
	mu         sync.Mutex
	shards     map[K]*shard[K, T]
	globalQ    reqQueue[K, T]  // requests waiting for the global limit
	idleShards shardList[K, T] // shards with idle connections, longest first
	slotQ      shardList[K, T] // shards that need a connection while GlobalMax exist
	leases     int             // places under GlobalMax taken: leases out, and requests past the global line
	conns      int             // connections of every key: idle, leased, opening, closing
	idle       int             // of conns, idle
	opening    int             // of conns, being opened
	closing    int             // of conns, being closed
	waiting    int             // requests waiting
	closed     bool
	nextTicket uint64

	// all holds every shard of shards, for Stats to copy without walking
	// the map; shard.pos is each one's index.
	all []*shard[K, T]

	created, dropped, evictions int64
	total                       counters // running totals of the keys' counters, dropped keys included
	placeWaiting, connWaiting   int      // parts in every key's placeQ, and connQ (partQueue.sum)
	globalWaiting               int      // parts in every key's globalParts (partQueue.sum)

	// What a move costs of late (moveBoundLocked): running averages of
	// opens and closes, each from its decision to its end.
	openCost, closeCost time.Duration

	// reqs recycles single-key requests with their channels, so a wait
	// allocates nothing. A pointer: the runtime keeps every sync.Pool in
	// use reachable for two collections, and it must not keep the Group.
	reqs *sync.Pool

	hist      histogram    // every key's waits, observed with the key's
	waitNanos atomic.Int64 // every key's total wait

	tracking groupTrack[K, T] // the records of leases out, with TrackLeases; see group_track.go

	// statsHook, set by tests only, runs between the chunks of Stats'
	// walk over the keys, while mu is not held.
	statsHook func()

	timer deadlineTimer   // ends waits at AcquireTimeout; see expire
	timed timedList[K, T] // waiting requests with a deadline

	stopSweep      chan struct{} // closed by Close
	kick           chan struct{} // with MinIdle: wakes the sweeper to warm a key that ran low
	sweeperRunning bool
	drained        chan struct{} // closed once closed and nothing is left
	drainedClosed  bool
}

// GroupConfig describes a Group. Only Open and PerKeyMax are required.
// The fields shared with Config mean the same, applied to each key.
type GroupConfig[K cmp.Ordered, T any] struct {
	// PerKeyMax is the most leases, and the most connections (counting
	// those being opened and closed), of one key at any instant. Required,
	// at least 1.
	PerKeyMax int

	// GlobalMax is the most leases, and the most connections, of all keys
	// together. Zero: no limit beyond PerKeyMax per key.
	GlobalMax int

	// Open creates a connection for key. It runs outside any lock, in a
	// goroutine of its own, with a context that carries the acquiring
	// context's values but not its cancellation; OpenTimeout bounds it.
	// Required.
	Open func(ctx context.Context, key K) (T, error)

	// Close, Check, CheckAfter and Reset are as in Config, under the
	// same rule (see PanicError): a panic in any of them, or in Open, is
	// recovered and counts as that callback's failure; Close runs on a
	// goroutine of the group, never on a caller's; Check runs in a
	// goroutine of its own, and its caller waits for it no longer than
	// AcquireTimeout, counted from the start of the acquire, or ctx allows.
	Close      func(conn T) error
	Check      func(ctx context.Context, conn T) error
	CheckAfter time.Duration
	Reset      func(ctx context.Context, conn T) error

	// WaitOrder is the order within each key's line, as Config.WaitOrder
	// is a Pool's: FIFO (the default) or LIFO, which serves the key's
	// newest request first, both for the key's places and for its
	// connections. The global line stays first come, first served across
	// keys whatever WaitOrder says: LIFO there would let a busy key's
	// newest requests starve every other key. Adaptive is a Pool's only:
	// NewGroup refuses it.
	WaitOrder WaitOrder

	// IgnoreDeadlines turns off deadline-aware hand-off, as
	// Config.IgnoreDeadlines does for a Pool (see ErrOverload), for
	// comparison only.
	IgnoreDeadlines bool

	// MoveAfter is how long the oldest request in the global line waits
	// for a connection of its own key to come back before the group moves
	// one to it, closing a connection of another key to open one for it
	// (see Group, "Connections"). Zero: what a move has cost of late, the
	// running average of Open plus that of Close. Negative: never wait,
	// the global line is strictly first come, first served and every
	// hand-off to another key moves a connection. It matters only while
	// GlobalMax connections exist.
	MoveAfter time.Duration

	// MinIdle is how many idle connections the group keeps open for each
	// key that has a pool, as Config.MinIdle does for a Pool: a
	// background sweeper opens them, one at a time, while nobody waits
	// for the key or in the global line and GlobalMax has room, and
	// never for a key whose pool is being dropped. It does not create
	// pools: a key never asked for, or dropped after KeyIdleTime, gets
	// none. Its connections count against GlobalMax like any other, so
	// with many keys they compete with the busy ones for room and may be
	// evicted for them. Zero: none are opened ahead of need.
	MinIdle int

	// MaxIdle is the most idle connections one key keeps: a connection
	// released, or opened with nobody of its key to take it, when its key
	// already has MaxIdle idle is closed (counted in Stats.ClosedOverIdle
	// of the key and of Total). Zero means PerKeyMax.
	MaxIdle int

	// MaxLifetime, MaxLifetimeJitter and MaxIdleTime are as in Config.
	MaxLifetime       time.Duration
	MaxLifetimeJitter time.Duration
	MaxIdleTime       time.Duration

	// KeyIdleTime is how long a key may go without an acquire before its
	// pool is dropped: its idle connections closed and its bookkeeping
	// freed (its counters stay in GroupStats.Total). Zero means
	// DefaultKeyIdleTime (one minute); negative, never.
	KeyIdleTime time.Duration

	// AcquireTimeout and OpenTimeout are as in Config. AcquireTimeout
	// bounds the whole wait of a request, in both lines and for its
	// connections.
	AcquireTimeout time.Duration
	OpenTimeout    time.Duration

	// TrackLeases records, for every lease out, when and where it was
	// acquired and by which goroutine, as Config.TrackLeases does for a
	// Pool. Timeout errors then name the holders (of the key whose line
	// the caller waited in, or of every key if it waited for GlobalMax),
	// Holders lists them with their keys, a GroupLease dropped without
	// Release is reclaimed when the garbage collector finds it (its
	// connection is closed, its key's place and its share of GlobalMax
	// freed, and an error logged with the acquiring stack), and an acquire
	// certain to wait forever fails at once with ErrDeadlock: With and
	// WithAll calls enclosing it on its own goroutine hold every place of
	// a key it asks for, or so much of GlobalMax that what it asks for
	// can never fit. It costs a stack capture per acquire (several
	// microseconds), so it is off by default.
	TrackLeases bool

	// LeakThreshold, if set, logs one warning for each lease held longer,
	// with the acquiring stack and the key, and counts it in Stats.Leaks
	// of the key and of Total. It implies TrackLeases.
	LeakThreshold time.Duration

	// Logger receives the same records as a Pool's, with a key attribute.
	Logger *slog.Logger

	// Name identifies the group in errors and log records; a key's pool is
	// called Name[key].
	Name string
}

// DefaultKeyIdleTime is how long an unused key's pool is kept when
// GroupConfig.KeyIdleTime is zero.
const DefaultKeyIdleTime = time.Minute

// ErrDuplicateKey is returned, wrapped with the key, by AcquireAll and
// WithAll when a key is asked for twice.
var ErrDuplicateKey = errors.New("fairpool: duplicate key")

// ErrTooManyKeys is returned by AcquireAll and WithAll when they ask for
// more keys than GroupConfig.GlobalMax: such a request could never be
// served.
var ErrTooManyKeys = errors.New("fairpool: more keys than GlobalMax")

// withDefaults validates c and returns a copy with the defaults filled in;
// the fields it shares with Config follow Config's rules (shared.apply).
func (c GroupConfig[K, T]) withDefaults() (GroupConfig[K, T], error) {
	switch {
	case c.Open == nil:
		return c, errors.New("fairpool: GroupConfig.Open must not be nil")
	case c.PerKeyMax < 1:
		return c, fmt.Errorf("fairpool: GroupConfig.PerKeyMax must be >= 1, got %d", c.PerKeyMax)
	case c.GlobalMax < 0:
		return c, fmt.Errorf("fairpool: GroupConfig.GlobalMax must be >= 0, got %d", c.GlobalMax)
	case c.WaitOrder != FIFO && c.WaitOrder != LIFO: // Adaptive is a Pool's only
		return c, fmt.Errorf("fairpool: GroupConfig.WaitOrder must be FIFO or LIFO, got %v", c.WaitOrder)
	}
	err := c.shared().apply()
	if err == nil && c.KeyIdleTime == 0 {
		c.KeyIdleTime = DefaultKeyIdleTime
	}
	return c, err
}

// sweepInterval is how often the sweeper looks: a quarter of the shortest
// of KeyIdleTime, MaxLifetime, MaxIdleTime and LeakThreshold, at most a
// minute (a minute with MinIdle alone: it is kicked when a key runs low,
// and the round only retries failed opens); zero when there is nothing to
// sweep.
func (c *GroupConfig[K, T]) sweepInterval() time.Duration {
	every := time.Duration(0)
	for _, d := range []time.Duration{c.KeyIdleTime, c.MaxLifetime, c.MaxIdleTime, c.LeakThreshold} {
		if d > 0 && (every == 0 || d/4 < every) {
			every = d / 4
		}
	}
	if every == 0 {
		if c.MinIdle > 0 {
			return time.Minute
		}
		return 0
	}
	return min(max(every, time.Millisecond), time.Minute)
}

// NewGroup validates cfg and returns a group. No pool or connection exists
// until a key is first asked for.
func NewGroup[K cmp.Ordered, T any](cfg GroupConfig[K, T]) (*Group[K, T], error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Group[K, T]{
		cfg:        cfg,
		globalMax:  cfg.GlobalMax,
		sweepEvery: cfg.sweepInterval(),
		errClosed:  ErrClosed,
		shards:     map[K]*shard[K, T]{},
		nextTicket: 1 << 32, // room below for the tickets of parts put back in front
		stopSweep:  make(chan struct{}),
		drained:    make(chan struct{}),
		reqs:       new(sync.Pool),
	}
	g.life.init(cfg.shared(), true)
	if cfg.TrackLeases {
		g.tracking.init()
	}
	if g.globalMax == 0 {
		g.globalMax = math.MaxInt
	}
	if cfg.Name != "" {
		g.errClosed = &poolError{pool: cfg.Name, err: ErrClosed}
	}
	g.idleShards.link = func(s *shard[K, T]) *shardLink[K, T] { return &s.idleLink }
	g.slotQ.link = func(s *shard[K, T]) *shardLink[K, T] { return &s.slotLink }
	g.timer.fire = g.expire
	if cfg.MinIdle > 0 {
		g.kick = make(chan struct{}, 1)
	}
	if g.sweepEvery > 0 {
		g.sweeperRunning = true
		go g.sweep()
	}
	return g, nil
}

func (c *GroupConfig[K, T]) shared() shared[T] {
	return shared[T]{"GroupConfig", "PerKeyMax", c.PerKeyMax, &c.MinIdle, &c.MaxIdle, &c.CheckAfter, &c.MaxLifetime,
		&c.MaxLifetimeJitter, &c.MaxIdleTime, &c.AcquireTimeout, &c.OpenTimeout, &c.LeakThreshold,
		c.WaitOrder, &c.TrackLeases, &c.Logger, c.Close, c.Check, c.Reset, c.Name}
}

// Close shuts the group as Pool.Close shuts a pool: every waiter and every
// later acquire gets ErrClosed, idle connections are closed at once and
// leased ones as they come back, opens under way are cancelled, and Close
// waits for all of that and for the group's goroutines, or until ctx is
// done, when it returns ctx's error and the rest goes on closing in the
// background. The connections close on goroutines of the group, so a slow
// Config.Close cannot hold Close past ctx. Calling it again waits again; on
// a group already drained it returns nil, whatever ctx.
func (g *Group[K, T]) Close(ctx context.Context) error {
	var t todo[K, T]
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		var reqs []*request[K, T]
		for r := g.globalQ.head; r != nil; r = r.next {
			reqs = append(reqs, r)
		}
		for _, s := range g.shards {
			for p := s.placeQ.head; p != nil; p = p.next {
				reqs = append(reqs, p.r)
			}
			for p := s.connQ.head; p != nil; p = p.next {
				reqs = append(reqs, p.r)
			}
		}
		for _, r := range reqs {
			if r.state != reqFailed { // a request can be in several connQs
				g.failLocked(r, g.errClosed, &t)
			}
		}
		for s := g.slotQ.head; s != nil; s = g.slotQ.head {
			g.slotQ.remove(s)
		}
		for s := g.idleShards.head; s != nil; s = g.idleShards.head {
			for c := g.popIdleLocked(s); c != nil; c = g.popIdleLocked(s) {
				g.beginCloseLocked(s, c, closePoolClosed, &t)
			}
		}
		g.timer.stop()
		close(g.stopSweep)
		g.end()
		g.checkDrainedLocked()
	}
	g.mu.Unlock()
	g.run(&t)
	// Drained wins over an ended ctx: select alone would pick at random
	// when both are ready.
	select {
	case <-g.drained:
		return nil
	default:
	}
	select {
	case <-g.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Group[K, T]) checkDrainedLocked() {
	if g.closed && !g.drainedClosed && g.conns == 0 && !g.sweeperRunning && !g.timer.armed {
		g.drainedClosed = true
		close(g.drained)
	}
}

// lock takes mu as Pool.lock does, spinning briefly first.
func (g *Group[K, T]) lock() {
	for range 100 {
		if g.mu.TryLock() {
			return
		}
	}
	g.mu.Lock()
}

// shardLocked returns key's shard, making it if it is the key's first use.
// Under mu, so it is made exactly once.
func (g *Group[K, T]) shardLocked(key K) (*shard[K, T], error) {
	if g.closed {
		return nil, g.errClosed
	}
	s := g.shards[key]
	if s == nil {
		if key != key { // NaN: a map never finds it again
			return nil, fmt.Errorf("fairpool: group %q: key %v is not equal to itself", g.cfg.Name, key)
		}
		s = &shard[K, T]{g: g, key: key, pos: len(g.all)}
		s.placeQ.sum = &g.placeWaiting
		s.connQ.sum = &g.connWaiting
		s.placeQ.lifo = g.cfg.WaitOrder == LIFO
		s.connQ.lifo = g.cfg.WaitOrder == LIFO
		s.globalParts.sum = &g.globalWaiting
		g.shards[key] = s
		g.all = append(g.all, s)
		g.created++
	}
	if s.retiring {
		s.retiring = false // used again before its last connection closed
	}
	return s, nil
}

// keyName names key's pool in errors and log records.
func (g *Group[K, T]) keyName(key K) string { return fmt.Sprintf("%s[%v]", g.cfg.Name, key) }
