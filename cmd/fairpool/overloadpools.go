package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5/pgconn"
)

// The pools of the overload experiment. They are the fairness experiment's
// (fairpools.go, dbpools.go), with one difference that matters here: a
// request's context carries its deadline, which bounds the wait for a
// connection, but not the work once it has one. A request that gets its
// connection late still finishes (and counts as served late) instead of
// being cancelled halfway, which on a server would also cost the
// connection.

// overloadPoolDef names a pool the overload experiment can run.
type overloadPoolDef struct {
	name  string   // the --pools value and the label in tables and plots
	desc  string   // one line for --help
	kinds []string // the servers it runs against (a --dsn run); nil: in-process only
	open  func(ctx context.Context, cfg *overloadConfig) (requester, error)
}

// overloadTimeout is every pool's own acquire timeout: far past any
// request's deadline, so that the deadline alone ends a wait.
const overloadTimeout = 5 * time.Second

// overloadPools lists the pools in the order they run and are shown.
var overloadPools = []overloadPoolDef{
	{"fairpool", "fairpool, default Config: FIFO, deadline-aware (turns away who cannot be served in time)",
		nil, openFairpoolVariant(fairpool.FIFO, false)},
	{"fairpool-adaptive", "fairpool, WaitOrder Adaptive: LIFO with 5ms timeouts while a line stands",
		nil, openFairpoolVariant(fairpool.Adaptive, false)},
	{"fairpool-plainfifo", "fairpool, IgnoreDeadlines: the old plain FIFO, every waiter waits its turn",
		nil, openFairpoolVariant(fairpool.FIFO, true)},
	{"chan", "a buffered channel of connections: receivers are served in order", nil, openSimPeer("chan")},
	{"puddle", "github.com/jackc/puddle/v2: waiters queue on a FIFO semaphore", nil, openSimPeer("puddle")},
	{"sql", "database/sql, no-op driver, MaxOpenConns=S: a random waiter is served", nil, openSimPeer("sql")},
}

// overloadDBPools lists the pools of a --dsn run, in order.
var overloadDBPools = []overloadPoolDef{
	{"fairpgx", "fairpgx (fairpool over pgx), default: deadline-aware FIFO", []string{kindPostgres}, openDBOver("fairpgx")},
	{"pgxpool", "github.com/jackc/pgx/v5/pgxpool v5.12: puddle's FIFO semaphore", []string{kindPostgres}, openDBOver("pgxpool")},
	{"sqlpool", "sqlpool (fairpool over database/sql), default Config", []string{kindPostgres, kindMySQL}, openDBOver("sqlpool")},
	{"sql", "database/sql over the same driver, MaxOpenConns=S", []string{kindPostgres, kindMySQL}, openDBOver("sql")},
}

func init() {
	// One colour per pool in every figure: the fairpool variants in greens.
	poolColors["fairpool-adaptive"] = rgb(0x98, 0xdf, 0x8a)
	poolColors["fairpool-plainfifo"] = rgb(0x8c, 0x56, 0x4b)
}

// overloadPoolNames returns the pools that run in-process (kind "") or
// against a server of kind.
func overloadPoolNames(kind string) []string {
	var names []string
	defs := overloadPools
	if kind != "" {
		defs = overloadDBPools
	}
	for _, p := range defs {
		if kind == "" || slices.Contains(p.kinds, kind) {
			names = append(names, p.name)
		}
	}
	return names
}

// lookupOverloadPool finds the pool called name, in-process or for a
// --dsn run.
func lookupOverloadPool(name string, db bool) (overloadPoolDef, bool) {
	defs := overloadPools
	if db {
		defs = overloadDBPools
	}
	i := slices.IndexFunc(defs, func(p overloadPoolDef) bool { return p.name == name })
	if i < 0 {
		return overloadPoolDef{}, false
	}
	return defs[i], true
}

// openFairpoolVariant opens a fairpool.Pool of no-op connections, all
// open, with the given wait order and deadline handling.
func openFairpoolVariant(order fairpool.WaitOrder, ignoreDeadlines bool) func(context.Context, *overloadConfig) (requester, error) {
	return func(ctx context.Context, cfg *overloadConfig) (requester, error) {
		var n atomic.Int64 // Open runs in goroutines of its own
		p, err := fairpool.New(fairpool.Config[*noop]{
			Name:            "overload",
			Open:            func(context.Context) (*noop, error) { return &noop{id: int(n.Add(1))}, nil },
			MaxSize:         cfg.Size,
			AcquireTimeout:  overloadTimeout,
			WaitOrder:       order,
			IgnoreDeadlines: ignoreDeadlines,
		})
		if err != nil {
			return nil, err
		}
		s := &fairpoolSim{p}
		leases := make([]*fairpool.Lease[*noop], cfg.Size)
		for i := range leases {
			if leases[i], err = p.Acquire(ctx); err != nil {
				return nil, errors.Join(err, s.close())
			}
		}
		for _, l := range leases {
			l.Release()
		}
		return sleepHold{s, cfg.Hold}, nil
	}
}

// openSimPeer opens the fairness experiment's in-process pool called name.
// Each ends its wait at the request context's deadline.
func openSimPeer(name string) func(context.Context, *overloadConfig) (requester, error) {
	return func(_ context.Context, cfg *overloadConfig) (requester, error) {
		fp, ok := lookupFairnessPool(name)
		if !ok {
			return nil, fmt.Errorf("no in-process pool %q", name)
		}
		p, err := fp.open(cfg.Size, overloadTimeout)
		if err != nil {
			return nil, err
		}
		return sleepHold{p, cfg.Hold}, nil
	}
}

// openDBOver opens the --dsn pool called name with its connections open,
// and wraps it so that the deadline bounds only the wait (see the top of
// this file).
func openDBOver(name string) func(context.Context, *overloadConfig) (requester, error) {
	return func(ctx context.Context, cfg *overloadConfig) (requester, error) {
		dp, ok := lookupDBPool(name)
		if !ok {
			return nil, fmt.Errorf("no --dsn pool %q", name)
		}
		r, err := dp.open(ctx, cfg.DB, cfg.Size, overloadTimeout, cfg.DB.HoldSQL)
		if err != nil {
			return nil, err
		}
		switch s := r.(type) {
		case *fairpgxSim:
			return fairpgxOver{s}, nil
		case *pgxpoolSim:
			return pgxpoolOver{s}, nil
		case *sqlPoolSim:
			return sqlPoolOver{s}, nil
		case *dbSQLSim:
			return dbSQLOver{s}, nil
		}
		return nil, errors.Join(fmt.Errorf("%s: no overload adapter for %T", name, r), r.close())
	}
}

// Each adapter waits with ctx and works with context.WithoutCancel(ctx):
// the deadline ends the wait, never the statement.

type fairpgxOver struct{ *fairpgxSim }

func (s fairpgxOver) request(ctx context.Context) (time.Time, error) {
	return pgxRequest(ctx, s.p.Acquire, s.hold)
}

type pgxpoolOver struct{ *pgxpoolSim }

func (s pgxpoolOver) request(ctx context.Context) (time.Time, error) {
	return pgxRequest(ctx, s.p.Acquire, s.hold)
}

// pgxConn is what fairpgx's and pgxpool's Conn have alike for a request.
type pgxConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Release()
}

// pgxRequest is one request on a pgx pool: acquire, run hold, release.
func pgxRequest[C pgxConn](ctx context.Context, acquire func(context.Context) (C, error), hold string) (time.Time, error) {
	c, err := acquire(ctx)
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	_, err = c.Exec(context.WithoutCancel(ctx), hold)
	c.Release()
	return got, err
}

type sqlPoolOver struct{ *sqlPoolSim }

func (s sqlPoolOver) request(ctx context.Context) (got time.Time, err error) {
	err = s.p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		got = time.Now()
		_, err := c.ExecContext(context.WithoutCancel(ctx), s.hold)
		return err
	})
	return got, err
}

type dbSQLOver struct{ *dbSQLSim }

func (s dbSQLOver) request(ctx context.Context) (time.Time, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	_, err = c.ExecContext(context.WithoutCancel(ctx), s.hold)
	return got, errors.Join(err, c.Close())
}
