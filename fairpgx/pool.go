package fairpgx

import (
	"context"
	"errors"
	"fmt"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
)

// Pool shares at most MaxConns *pgx.Conn among goroutines, serving waiters
// strictly in arrival order. It has the methods of pgxpool.Pool that
// applications use, with the same meaning. Create one with New or
// NewWithConfig; a Pool is safe for concurrent use.
type Pool struct {
	pool *fairpool.Pool[*pgx.Conn]
	cfg  *Config
}

// New creates a Pool from a connection string (see ParseConfig). Like
// pgxpool.New, it connects to nothing: the first use does, or the keeper
// for MinConns. ctx is not used and kept for pgxpool's signature.
func New(ctx context.Context, connString string) (*Pool, error) {
	cfg, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, cfg)
}

// NewWithConfig creates a Pool from cfg, which it copies. Errors name the
// field at fault.
func NewWithConfig(_ context.Context, cfg *Config) (*Pool, error) {
	if cfg == nil || cfg.ConnConfig == nil {
		return nil, errors.New("fairpgx: Config.ConnConfig must not be nil (use ParseConfig)")
	}
	if !madeByParseConfig(cfg.ConnConfig) {
		return nil, errors.New("fairpgx: Config.ConnConfig was not made by ParseConfig (pgx.ParseConfig or fairpgx.ParseConfig): " +
			"pgx cannot connect with it; make it with ParseConfig, then change its fields")
	}
	p := &Pool{cfg: cfg.Copy()}
	c := p.cfg
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxConns < 0 || c.MinConns < 0 || c.MinIdleConns < 0 || max(c.MinConns, c.MinIdleConns) > c.MaxConns {
		return nil, fmt.Errorf("fairpgx: Config needs 0 <= MinConns, MinIdleConns <= MaxConns, got MinConns %d, MinIdleConns %d, MaxConns %d",
			c.MinConns, c.MinIdleConns, c.MaxConns)
	}
	pool, err := fairpool.New(fairpool.Config[*pgx.Conn]{
		Open:              p.connect,
		Close:             p.closeConn,
		Check:             func(ctx context.Context, conn *pgx.Conn) error { return conn.Ping(ctx) },
		Reset:             c.resetFunc(p),
		CheckAfter:        c.HealthCheckPeriod,
		MaxSize:           int(c.MaxConns),
		MinIdle:           int(max(c.MinConns, c.MinIdleConns)),
		MaxLifetime:       c.MaxConnLifetime,
		MaxLifetimeJitter: c.MaxConnLifetimeJitter,
		MaxIdleTime:       c.MaxConnIdleTime,
		AcquireTimeout:    c.AcquireTimeout,
		OpenTimeout:       c.ConnectTimeout,
		WaitOrder:         c.WaitOrder,
		Logger:            c.Logger,
		Name:              c.Name,
	})
	if err != nil {
		return nil, fmt.Errorf("fairpgx: %w", err)
	}
	p.pool = pool
	return p, nil
}

// resetFunc gives fairpool a Reset only when ResetSession asks for SQL:
// fairpool bounds each Reset with a context of its own, whose timer costs
// more than the rest of a release; the free checks run in Conn.Release.
func (c *Config) resetFunc(p *Pool) func(context.Context, *pgx.Conn) error {
	if !c.ResetSession {
		return nil
	}
	return p.discardAll
}

// connect is fairpool's Open.
func (p *Pool) connect(ctx context.Context) (*pgx.Conn, error) {
	cc := p.cfg.ConnConfig.Copy()
	if p.cfg.BeforeConnect != nil {
		if err := p.cfg.BeforeConnect(ctx, cc); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if p.cfg.AfterConnect != nil {
		if err := p.cfg.AfterConnect(ctx, conn); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	return conn, nil
}

// closeConn is fairpool's Close. It is bounded, so a server that stopped
// answering cannot hold a slot for long.
func (p *Pool) closeConn(conn *pgx.Conn) error {
	if p.cfg.BeforeClose != nil {
		p.cfg.BeforeClose(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return conn.Close(ctx)
}

// unclean says why conn must be closed rather than reused, or "" if it
// may be reused: it must be open, idle at the protocol level and outside
// any transaction, as in pgxpool, and pass AfterRelease. None of this
// touches the network.
func (p *Pool) unclean(conn *pgx.Conn) string {
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
	if p.cfg.AfterRelease != nil && !p.cfg.AfterRelease(conn) {
		return "AfterRelease returned false"
	}
	return ""
}

// discardAll is fairpool's Reset when Config.ResetSession is set.
func (p *Pool) discardAll(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "DISCARD ALL"); err != nil {
		return err
	}
	// DISCARD ALL dropped the server's prepared statements; this drops
	// pgx's record of them, so that it prepares them again.
	return conn.DeallocateAll(ctx)
}

// Config returns a copy of the pool's configuration, defaults applied.
func (p *Pool) Config() *Config { return p.cfg.Copy() }

// Close closes the pool: later acquires fail with fairpool.ErrClosed, idle
// connections are closed, and Close waits until every acquired connection
// has been released and closed, as pgxpool.Pool.Close does.
func (p *Pool) Close() { p.pool.Close(context.Background()) }

// Acquire returns a connection, waiting in line for it. The caller must
// Release it. Acquire is not reentrant; use With for nested code.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	l, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{p: p, l: l, conn: l.Value()}, nil
}

type ctxKey struct{ p *Pool }

// held returns the connection that ctx carries from an enclosing With on p,
// or nil.
func (p *Pool) held(ctx context.Context) *Conn {
	if c, ok := ctx.Value(ctxKey{p}).(*Conn); ok && !c.ended.Load() {
		return c
	}
	return nil
}

// With runs fn with a connection and releases it when fn returns, even if
// fn panics. ctx bounds only the wait for the connection.
//
// With is reentrant: With, Query, QueryRow, Exec, Begin, BeginTx,
// SendBatch, CopyFrom and Ping called with the context fn received (or one
// derived from it) use the same connection, so nesting cannot deadlock even
// a pool of one, and a transaction begun on it is seen by the nested calls.
// The outermost With releases it. A *pgx.Conn is not safe for concurrent
// use: do not pass that context to other goroutines.
//
// fn's error is returned unchanged, except when the connection broke
// during fn: then the error says so and errors.Is(err, fairpool.ErrBadConn)
// holds, while errors.Is and errors.As still see pgx's error. A panic or
// an error wrapping fairpool.ErrBadConn closes the connection; so does
// releasing it inside a transaction or with rows open.
func (p *Pool) With(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	if c := p.held(ctx); c != nil {
		return c.run(ctx, fn)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	// Deferred, so that a panic in fn releases too; run has then marked
	// the connection bad, and Release closes it before the panic goes on.
	defer c.Release()
	return c.run(context.WithValue(ctx, ctxKey{p}, c), fn)
}

// Ping acquires a connection and pings the server through it.
func (p *Pool) Ping(ctx context.Context) error {
	c, acquired, err := p.get(ctx)
	if err != nil {
		return err
	}
	err = c.Ping(ctx)
	if acquired {
		c.Release()
	}
	return err
}

// brokenConnError is what calls return when the connection broke under
// them: it says so first, and unwraps to pgx's error.
type brokenConnError struct {
	pool string
	err  error
}

func (e *brokenConnError) Error() string {
	return fmt.Sprintf("fairpgx: pool %q: connection broke: %v", e.pool, e.err)
}

func (e *brokenConnError) Unwrap() error { return e.err }

// Is makes errors.Is(err, fairpool.ErrBadConn) true.
func (e *brokenConnError) Is(target error) bool { return target == fairpool.ErrBadConn }
