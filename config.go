package fairpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// WaitOrder says which waiter a released connection goes to.
type WaitOrder int

const (
	// FIFO serves waiters strictly in arrival order. It is the default and the
	// only order that bounds every wait near (waiters/MaxSize)·hold time.
	FIFO WaitOrder = iota
	// LIFO serves the newest waiter first. Under overload it keeps most
	// requests fast and lets the oldest time out; it exists for that case and
	// for the fairness experiments.
	LIFO
	// Adaptive serves in arrival order while the line drains, and newest
	// first, with a short timeout (5 ms) for every waiter, while a
	// standing line persists: one that has not been empty for 100 ms. Under
	// sustained overload most callers are then served fast and the rest
	// fail fast, instead of all waiting long; it gives up arrival order
	// while the line stands, so a caller can be passed over by later ones
	// and time out. Choose it for request-serving code where a late answer
	// is worth nothing and callers have no deadlines of their own (with
	// deadlines, FIFO already sheds what cannot finish in time).
	Adaptive
)

func (o WaitOrder) String() string {
	switch o {
	case FIFO:
		return "FIFO"
	case LIFO:
		return "LIFO"
	case Adaptive:
		return "Adaptive"
	}
	return fmt.Sprintf("WaitOrder(%d)", int(o))
}

// Defaults applied by New to fields left zero.
const (
	DefaultAcquireTimeout = 5 * time.Second  // ActiveRecord's checkout_timeout
	DefaultOpenTimeout    = 30 * time.Second // bounds one Open call
	DefaultCheckAfter     = time.Second      // idle time before Check runs
)

// Config describes a pool. Only Open and MaxSize are required; every other
// field has a usable zero value.
type Config[T any] struct {
	// Open creates a connection. It runs outside any lock, in a goroutine of
	// its own, with a context that carries the acquiring context's values but
	// not its cancellation: a caller that gives up does not abort the open,
	// and the finished connection goes to the next waiter or to idle.
	// OpenTimeout bounds it. A value returned together with an error is
	// passed to Close, in case it was opened half-way. Required.
	//
	// A panic in Open, Close, Check or Reset is recovered, logged at ERROR
	// with its stack and counted as that callback's failure (see
	// PanicError): the pool stays whole and the program keeps running.
	Open func(ctx context.Context) (T, error)

	// Close destroys a connection. It runs outside any lock, on a goroutine
	// of the pool: never on the goroutine of an Acquire, Release, Discard
	// or Pool.Close call, so a slow Close delays no caller. Until it
	// returns, the connection still counts against MaxSize. Its error is
	// logged through Logger. Nil means connections need no closing.
	Close func(conn T) error

	// Check, if set, vets a connection that sat idle longer than CheckAfter
	// before it is handed out. It runs in a goroutine of its own, with a
	// context that ends with the acquiring context or at AcquireTimeout
	// counted from the start of the Acquire; the caller waits for it no
	// longer than that, whether or not Check heeds the context. A failed
	// check closes the connection and the caller gets another, idle or newly
	// opened, first in line and within its own deadline. A Check still
	// running when the caller gives up (or Close is called) settles the
	// connection when it returns: a pass puts it back; a failure with a
	// context's error (context.Canceled or DeadlineExceeded, wrapped or
	// not) says nothing against the connection, which goes back to be
	// checked again at its next hand-out; any other failure closes it. A
	// Check that panics closes the connection and fails that Acquire with
	// the *PanicError.
	Check func(ctx context.Context, conn T) error

	// CheckAfter is how long a connection must sit idle before Check runs on
	// it. Zero means DefaultCheckAfter (1 s).
	CheckAfter time.Duration

	// Reset, if set, runs in the releasing goroutine when a lease is released,
	// before the connection can be reused. A failure (or a panic, logged)
	// closes the connection. Its context is bounded by OpenTimeout.
	Reset func(ctx context.Context, conn T) error

	// Refused, if set, says whether an error from Open means the server
	// is full (PostgreSQL's SQLSTATE 53300 too_many_connections, MySQL's
	// 1040 and 1203) rather than broken. Such a refusal fails no waiter:
	// while the pool holds connections its waiters wait for them, its
	// effective size drops by the refused slots (Stats.EffectiveSize),
	// and one probe opens again after a jittered back-off (5 ms doubling
	// to 250 ms); each success reopens up to two more slots. A pool that
	// holds none keeps probing while anyone waits, and a waiter fails only
	// at its own deadline (AcquireTimeout or the context's), with a
	// *TimeoutError whose Err also wraps the last refusal, or sooner when
	// the line, at the pace of the connections the pool has, cannot meet
	// its context's deadline (ErrOverload, see the package doc's
	// Overload). Nil: no error
	// is a refusal, and a failed open fails the next waiter. It runs
	// after every failed open, outside any lock; a panic counts as false.
	// fairpgx and sqlpool set it for their drivers. A Group has no such
	// setting: its failed opens fail a waiter.
	Refused func(err error) bool

	// MaxSize is the most connections that exist at any instant, counting
	// those being opened and those being closed. Required, at least 1.
	MaxSize int

	// MinIdle is how many idle connections a background keeper holds open
	// when nobody is using them. Zero: none are opened ahead of need.
	MinIdle int

	// MaxIdle is the most idle connections kept; a connection released when
	// MaxIdle are already idle is closed. Zero means MaxSize.
	MaxIdle int

	// MaxLifetime is how long a connection may live from its open, plus a
	// random share of MaxLifetimeJitter so connections opened together do
	// not all reconnect together. Zero: forever. Durations too long to add
	// to the clock (math.MaxInt64) also mean forever, as they do for
	// MaxIdleTime, AcquireTimeout and LeakThreshold.
	MaxLifetime time.Duration

	// MaxLifetimeJitter is the most added at random to each connection's
	// MaxLifetime. It must not exceed MaxLifetime.
	MaxLifetimeJitter time.Duration

	// MaxIdleTime is how long a connection may sit idle before it is closed.
	// Zero: forever.
	MaxIdleTime time.Duration

	// AcquireTimeout bounds every wait in Acquire and With. Zero means
	// DefaultAcquireTimeout (5 s); negative means no timeout beyond the
	// context's. The earlier of the timeout and the context's deadline wins.
	AcquireTimeout time.Duration

	// OpenTimeout bounds one call to Open (and one to Reset). Zero means
	// DefaultOpenTimeout (30 s).
	OpenTimeout time.Duration

	// WaitOrder is FIFO (the default), LIFO or Adaptive.
	WaitOrder WaitOrder

	// IgnoreDeadlines turns off deadline-aware hand-off (see ErrOverload):
	// every waiter keeps its place until its turn or its deadline, even
	// when the line is certain to outlast that deadline. It exists to
	// compare against; there is no reason to set it otherwise.
	IgnoreDeadlines bool

	// TrackLeases records, for every lease out, when and where it was
	// acquired and by which goroutine. Timeout errors then name the
	// holders, Holders lists them, a Lease dropped without Release is
	// reclaimed when the garbage collector finds it (its connection is
	// closed, the slot freed, and an error logged with the acquiring
	// stack), and an Acquire that is certain to wait forever (every
	// connection held by With calls enclosing it on its own goroutine)
	// fails at once with ErrDeadlock. It costs a stack capture per acquire
	// (several microseconds), so it is off by default.
	TrackLeases bool

	// LeakThreshold, if set, logs one warning for each lease held longer,
	// with the acquiring stack, and counts it in Stats.Leaks. It implies
	// TrackLeases.
	LeakThreshold time.Duration

	// Logger receives failed opens and closes and the keeper's work. Nil
	// discards them.
	Logger *slog.Logger

	// Name identifies the pool in errors and log records.
	Name string
}

// withDefaults validates c and returns a copy with the defaults filled in.
// Errors name the field and the offending value.
func (c Config[T]) withDefaults() (Config[T], error) {
	switch {
	case c.Open == nil:
		return c, errors.New("fairpool: Config.Open must not be nil")
	case c.MaxSize < 1:
		return c, fmt.Errorf("fairpool: Config.MaxSize must be >= 1, got %d", c.MaxSize)
	}
	err := c.shared().apply()
	return c, err
}

func (c *Config[T]) shared() shared[T] {
	return shared[T]{"Config", "MaxSize", c.MaxSize, &c.MinIdle, &c.MaxIdle, &c.CheckAfter, &c.MaxLifetime,
		&c.MaxLifetimeJitter, &c.MaxIdleTime, &c.AcquireTimeout, &c.OpenTimeout, &c.LeakThreshold,
		c.WaitOrder, &c.TrackLeases, &c.Logger, c.Close, c.Check, c.Reset, c.Name}
}

// shared points at the fields that Config and GroupConfig have in common,
// so that one set of rules validates them and fills their defaults. size
// is what MinIdle and MaxIdle are bounded by: MaxSize, or PerKeyMax.
// Built positionally, in the order of its fields; newLife takes the
// callbacks and the filled-in settings from it.
type shared[T any] struct {
	config, sizeName string
	size             int
	minIdle, maxIdle *int
	checkAfter, maxLifetime, jitter, maxIdleTime,
	acquireTimeout, openTimeout, leakThreshold *time.Duration
	waitOrder    WaitOrder
	trackLeases  *bool
	logger       **slog.Logger
	close        func(T) error
	check, reset func(context.Context, T) error
	name         string
}

// apply validates the shared fields in the order a reader meets them and,
// if all are valid, fills in their defaults.
func (s shared[T]) apply() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("fairpool: "+s.config+"."+format, args...)
	}
	switch {
	case *s.minIdle < 0:
		return bad("MinIdle must be >= 0, got %d", *s.minIdle)
	case *s.minIdle > s.size:
		return bad("MinIdle must be <= %s (%d), got %d", s.sizeName, s.size, *s.minIdle)
	case *s.maxIdle < 0:
		return bad("MaxIdle must be >= 0, got %d", *s.maxIdle)
	case *s.maxIdle > s.size:
		return bad("MaxIdle must be <= %s (%d), got %d", s.sizeName, s.size, *s.maxIdle)
	case *s.maxIdle != 0 && *s.maxIdle < *s.minIdle:
		return bad("MaxIdle must be >= MinIdle (%d), got %d", *s.minIdle, *s.maxIdle)
	case *s.checkAfter < 0:
		return bad("CheckAfter must be >= 0, got %v", *s.checkAfter)
	case *s.maxLifetime < 0:
		return bad("MaxLifetime must be >= 0, got %v", *s.maxLifetime)
	case *s.jitter < 0:
		return bad("MaxLifetimeJitter must be >= 0, got %v", *s.jitter)
	case *s.jitter > *s.maxLifetime:
		return bad("MaxLifetimeJitter must be <= MaxLifetime (%v), got %v", *s.maxLifetime, *s.jitter)
	case *s.maxIdleTime < 0:
		return bad("MaxIdleTime must be >= 0, got %v", *s.maxIdleTime)
	case *s.leakThreshold < 0:
		return bad("LeakThreshold must be >= 0, got %v", *s.leakThreshold)
	case *s.openTimeout < 0:
		return bad("OpenTimeout must be >= 0, got %v", *s.openTimeout)
	case s.waitOrder < FIFO || s.waitOrder > Adaptive:
		return bad("WaitOrder must be FIFO, LIFO or Adaptive, got %v", s.waitOrder)
	}
	if *s.maxIdle == 0 {
		*s.maxIdle = s.size
	}
	if *s.checkAfter == 0 {
		*s.checkAfter = DefaultCheckAfter
	}
	if *s.acquireTimeout == 0 {
		*s.acquireTimeout = DefaultAcquireTimeout
	}
	if *s.openTimeout == 0 {
		*s.openTimeout = DefaultOpenTimeout
	}
	if *s.leakThreshold > 0 {
		*s.trackLeases = true
	}
	if *s.logger == nil {
		*s.logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
