package fairpgx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
)

// Pool shares at most MaxConns *pgx.Conn among goroutines, serving waiters
// strictly in arrival order. It has pgxpool.Pool's methods, with the same
// meaning except where the package documentation's table says otherwise.
// Create one with New or NewWithConfig; a Pool is safe for concurrent use.
type Pool struct {
	pool *fairpool.Pool[*connRes]
	cfg  *Config

	prepareConn   func(context.Context, *pgx.Conn) (bool, error)
	shouldPing    func(context.Context, ShouldPingParams) bool
	acquireTracer AcquireTracer
	releaseTracer ReleaseTracer

	gen atomic.Uint64 // bumped by Reset: connections of an older one are closed

	fleet *fleet // the fleet's budget, with Config.FleetName; see fleet.go

	// Figures Stat needs that fairpool does not keep: pgxpool counts
	// lifetime and idle-time closes itself, and neither counts the pool's
	// own acquires (health check, AcquireAllIdle, Reset) as acquires.
	acquireNanos     atomic.Int64
	internalAcquires atomic.Int64
	lifetimeCloses   atomic.Int64
	idleCloses       atomic.Int64

	health    chan struct{} // wakes the health check early
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the health check has ended
	closeOnce sync.Once
	kickMu    sync.Mutex
	kickTimer *time.Timer
}

// connRes is what fairpool holds for one connection: the connection and
// what the pool must know of it beyond fairpool's view.
type connRes struct {
	conn      *pgx.Conn
	maxAge    time.Time    // retire after this; zero: never
	idleSince atomic.Int64 // unix nanoseconds of the open or last release
	gen       uint64       // Pool.gen at the open
	hijacked  atomic.Bool  // taken out by Conn.Hijack: the pool must not close it
	slot      int32        // the fleet slot it holds; -1: none
	givenBack bool         // closed to leave its slot to another process, set before Discard
}

func (r *connRes) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, r.idleSince.Load()))
}

// New creates a Pool from a connection string (see ParseConfig). Like
// pgxpool.New, it returns without connecting: connections for MinConns
// and MinIdleConns are opened in the background, others on first use.
func New(ctx context.Context, connString string) (*Pool, error) {
	cfg, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, cfg)
}

// NewWithConfig creates a Pool from cfg, which it copies. Zero fields get
// the defaults ParseConfig sets. Errors name the field at fault. ctx is
// not used (pgxpool uses only its values); it is kept for pgxpool's
// signature.
func NewWithConfig(_ context.Context, cfg *Config) (*Pool, error) {
	if cfg == nil || cfg.ConnConfig == nil {
		return nil, errors.New("fairpgx: Config.ConnConfig must not be nil (use ParseConfig)")
	}
	if !madeByParseConfig(cfg.ConnConfig) {
		return nil, errors.New("fairpgx: Config.ConnConfig was not made by ParseConfig (pgx.ParseConfig or fairpgx.ParseConfig): " +
			"pgx cannot connect with it; make it with ParseConfig, then change its fields")
	}
	p := &Pool{
		cfg:    cfg.Copy(),
		health: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	c := p.cfg
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.HealthCheckPeriod == 0 {
		c.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if c.AcquireTimeout == 0 {
		c.AcquireTimeout = DefaultAcquireTimeout
	}
	switch {
	case c.MaxConns < 0 || c.MinConns < 0 || c.MinIdleConns < 0 || max(c.MinConns, c.MinIdleConns) > c.MaxConns:
		return nil, fmt.Errorf("fairpgx: Config needs 0 <= MinConns, MinIdleConns <= MaxConns, got MinConns %d, MinIdleConns %d, MaxConns %d",
			c.MinConns, c.MinIdleConns, c.MaxConns)
	case c.HealthCheckPeriod < 0:
		return nil, fmt.Errorf("fairpgx: Config.HealthCheckPeriod must be >= 0, got %v", c.HealthCheckPeriod)
	}
	p.prepareConn = c.PrepareConn
	if p.prepareConn == nil && c.BeforeAcquire != nil {
		before := c.BeforeAcquire
		p.prepareConn = func(ctx context.Context, conn *pgx.Conn) (bool, error) { return before(ctx, conn), nil }
	}
	p.shouldPing = c.ShouldPing
	if p.shouldPing == nil {
		p.shouldPing = func(_ context.Context, sp ShouldPingParams) bool { return sp.IdleDuration > time.Second }
	}
	if err := c.checkFleet(); err != nil {
		return nil, err
	}
	if c.FleetName != "" {
		p.fleet = newFleet(c.FleetName, c.FleetSize, func(conn *pgx.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			conn.Close(ctx)
		})
	}
	refused := c.Refused
	if refused == nil {
		refused = IsRefusal
	}
	p.acquireTracer, _ = c.ConnConfig.Tracer.(AcquireTracer)
	p.releaseTracer, _ = c.ConnConfig.Tracer.(ReleaseTracer)
	// Lifetime, idle time and the minimums are the health check's, as in
	// pgxpool, not fairpool's keeper: their figures and timing are
	// pgxpool's that way.
	pool, err := fairpool.New(fairpool.Config[*connRes]{
		Open:           p.connect,
		Close:          p.closeConn,
		Reset:          c.resetFunc(p),
		Refused:        refused,
		MaxSize:        int(c.MaxConns),
		AcquireTimeout: c.AcquireTimeout,
		OpenTimeout:    c.ConnectTimeout,
		WaitOrder:      c.WaitOrder,
		TrackLeases:    c.TrackLeases,
		LeakThreshold:  c.LeakThreshold,
		Logger:         c.Logger,
		Name:           c.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("fairpgx: %w", err)
	}
	p.pool = pool
	go p.healthCheck()
	return p, nil
}

// resetFunc gives fairpool a Reset only when ResetSession asks for SQL:
// fairpool bounds each Reset with a context of its own, whose timer costs
// more than the rest of a release; the free checks run in Conn.Release.
func (c *Config) resetFunc(p *Pool) func(context.Context, *connRes) error {
	if !c.ResetSession {
		return nil
	}
	return p.discardAll
}

// connect is fairpool's Open.
func (p *Pool) connect(ctx context.Context) (*connRes, error) {
	gen := p.gen.Load()
	cc := p.cfg.ConnConfig.Copy()
	if p.cfg.BeforeConnect != nil {
		if err := p.cfg.BeforeConnect(ctx, cc); err != nil {
			return nil, err
		}
	}
	var conn *pgx.Conn
	slot := int32(-1)
	var err error
	if p.fleet != nil {
		conn, slot, err = p.fleet.connect(ctx, cc)
	} else {
		conn, err = pgx.ConnectConfig(ctx, cc)
	}
	if err != nil {
		return nil, err
	}
	if p.cfg.AfterConnect != nil {
		if err := p.cfg.AfterConnect(ctx, conn); err != nil {
			conn.Close(ctx)
			if slot >= 0 {
				p.fleet.dropped(false)
			}
			return nil, err
		}
	}
	r := &connRes{conn: conn, gen: gen, slot: slot}
	now := time.Now()
	if p.cfg.MaxConnLifetime > 0 {
		jitter := time.Duration(rand.Float64() * float64(p.cfg.MaxConnLifetimeJitter))
		r.maxAge = now.Add(p.cfg.MaxConnLifetime + jitter)
	}
	r.idleSince.Store(now.UnixNano())
	return r, nil
}

// expired says whether r is past its lifetime.
func (p *Pool) expired(r *connRes, now time.Time) bool {
	return !r.maxAge.IsZero() && now.After(r.maxAge)
}

// closeConn is fairpool's Close. It is bounded, so a server that stopped
// answering cannot hold a slot for long.
func (p *Pool) closeConn(r *connRes) error {
	if r.slot >= 0 {
		// Its session's end frees the fleet slot; a hijacked one keeps it
		// as long as the caller keeps the connection.
		p.fleet.dropped(r.givenBack)
	}
	if r.hijacked.Load() {
		return nil // its slot is freed; the connection is the caller's now
	}
	if p.cfg.BeforeClose != nil {
		p.cfg.BeforeClose(r.conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return r.conn.Close(ctx)
}

// unclean says why conn must be closed rather than reused, or "" if it
// may be reused: it must be open, idle at the protocol level and outside
// any transaction, as in pgxpool. None of this touches the network.
func unclean(conn *pgx.Conn) string {
	if conn.IsClosed() {
		return "closed"
	}
	pc := conn.PgConn()
	if pc.IsBusy() {
		return "released with a query in progress (rows or batch results not closed)"
	}
	if s := pc.TxStatus(); s != 'I' {
		return fmt.Sprintf("released inside a transaction (status %q)", s)
	}
	return ""
}

// discardAll is fairpool's Reset when Config.ResetSession is set.
func (p *Pool) discardAll(ctx context.Context, r *connRes) error {
	if _, err := r.conn.Exec(ctx, "DISCARD ALL"); err != nil {
		return err
	}
	// DISCARD ALL dropped the server's prepared statements; this drops
	// pgx's record of them, so that it prepares them again.
	if err := r.conn.DeallocateAll(ctx); err != nil {
		return err
	}
	if r.slot >= 0 {
		// It also released the fleet slot's advisory locks.
		return p.fleet.retake(ctx, r.conn, r.slot)
	}
	return nil
}

// Config returns a copy of the pool's configuration, defaults applied.
func (p *Pool) Config() *Config { return p.cfg.Copy() }

// Close closes the pool: later acquires fail with fairpool.ErrClosed, idle
// connections are closed, and Close waits until every acquired connection
// has been released and closed, as pgxpool.Pool.Close does. Calling it
// again does nothing more.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.kickMu.Lock()
		if p.kickTimer != nil {
			p.kickTimer.Stop()
		}
		p.kickMu.Unlock()
		<-p.done
	})
	p.pool.Close(context.Background())
	if p.fleet != nil {
		p.fleet.shutdown() // after the pool's opens have ended: the last may have left a candidate
	}
}

// Reset closes every connection but leaves the pool open: idle ones at
// once, acquired ones when they are released. Use it when something has
// spoilt every connection (the server restarted, a role changed).
func (p *Pool) Reset() {
	p.gen.Add(1)
	for _, l := range p.takeIdle() {
		l.Discard()
	}
}

// takeIdle leases every connection idle now, without waiting and without
// counting them as acquires.
func (p *Pool) takeIdle() []*fairpool.Lease[*connRes] {
	n := p.pool.Stats().Idle
	ls := make([]*fairpool.Lease[*connRes], 0, n)
	for range n {
		// A try finds nothing only when someone took an idle connection
		// since Stats, and may then open one "for a later call": rare, and
		// that connection is idle for the next caller, not lost.
		l, err := p.pool.TryAcquire(context.Background())
		if err != nil {
			break
		}
		p.internalAcquires.Add(1)
		ls = append(ls, l)
	}
	return ls
}

// Holders lists the connections acquired now and who acquired them, oldest
// first: the file and line of the code that called Acquire (or Query,
// With, ...), its goroutine and stack. It is empty unless
// Config.TrackLeases or LeakThreshold is set.
func (p *Pool) Holders() []fairpool.Holder {
	hs := p.pool.Holders()
	for i := range hs {
		hs[i].Caller = callerOf(hs[i].Stack)
	}
	return hs
}

// Waiters returns how long each goroutine waiting for a connection now has
// waited, in the order they will be served.
func (p *Pool) Waiters() []time.Duration { return p.pool.Waiters() }

// Observe reports each wait, connect and use of the pool's connections to
// o until stop is called; see fairpool.Pool.Observe. The pool's own
// short uses (health checks, AcquireAllIdle, Reset) are reported too.
func (p *Pool) Observe(o fairpool.Observer) (stop func()) { return p.pool.Observe(o) }

// brokenConnError is what calls return when the connection broke under
// them: it says so first, and unwraps to pgx's error.
type brokenConnError struct {
	pool string
	err  error
}

func (e *brokenConnError) Error() string {
	return fmt.Sprintf("%sconnection broke: %v", prefix(e.pool), e.err)
}

func (e *brokenConnError) Unwrap() error { return e.err }

// Is makes errors.Is(err, fairpool.ErrBadConn) true.
func (e *brokenConnError) Is(target error) bool { return target == fairpool.ErrBadConn }

// prefix begins fairpgx's messages: with the pool's name when it has one.
func prefix(name string) string {
	if name == "" {
		return "fairpgx: "
	}
	return fmt.Sprintf("fairpgx: pool %q: ", name)
}
