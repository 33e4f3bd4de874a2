package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/fairpool/fairpool/sqlpool"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The pools of a --dsn run. Each is the real pool over real connections
// to the server; a request waits for a connection, runs the hold statement
// on it (pg_sleep or SLEEP) and gives it back. Every pool opens its S
// connections before it is measured.

// dbPool names a pool the fairness experiment can run against a server.
type dbPool struct {
	name  string   // the --pools value and the label in tables and plots
	desc  string   // one line for --help
	kinds []string // the servers it runs against
	open  func(ctx context.Context, t *dbTarget, size int, timeout time.Duration, hold string) (requester, error)
}

// dbPools lists the pools in the order they run and are shown.
var dbPools = []dbPool{
	{"fairpgx", "fairpgx (fairpool over pgx), FIFO, AcquireTimeout --timeout",
		[]string{kindPostgres}, openFairpgx},
	{"sqlpool", "sqlpool (fairpool over database/sql), FIFO, default Config: session reset on release",
		[]string{kindPostgres, kindMySQL}, openSQLPool},
	{"sql", "database/sql over the same driver, MaxOpenConns=S: a random waiter is served",
		[]string{kindPostgres, kindMySQL}, openDBSQL},
	{"pgxpool", "github.com/jackc/pgx/v5/pgxpool v5.12, MaxConns=S: waiters queue on puddle's FIFO semaphore",
		[]string{kindPostgres}, openPgxpool},
}

// lookupDBPool finds a pool by its --pools name.
func lookupDBPool(name string) (dbPool, bool) {
	i := slices.IndexFunc(dbPools, func(p dbPool) bool { return p.name == name })
	if i < 0 {
		return dbPool{}, false
	}
	return dbPools[i], true
}

// dbPoolNames returns the pools that run against kind, or all with "".
func dbPoolNames(kind string) []string {
	var names []string
	for _, p := range dbPools {
		if kind == "" || slices.Contains(p.kinds, kind) {
			names = append(names, p.name)
		}
	}
	return names
}

// warmUp takes size connections at once through take, which runs the hold
// statement on each (so it is prepared, or its plan cached, before the
// measured run), then gives them all back. take returns the release of a
// connection it got even when the statement failed.
func warmUp(size int, take func() (release func(), err error)) error {
	releases := make([]func(), 0, size)
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	for range size {
		release, err := take()
		if release != nil {
			releases = append(releases, release)
		}
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

// fairpgxSim is a fairpgx.Pool of S connections.
type fairpgxSim struct {
	p    *fairpgx.Pool
	hold string
}

func openFairpgx(ctx context.Context, t *dbTarget, size int, timeout time.Duration, hold string) (requester, error) {
	p, err := fairpgx.NewWithConfig(ctx, &fairpgx.Config{ConnConfig: t.pg.Copy(), MaxConns: int32(size),
		AcquireTimeout: timeout, Name: "sim"})
	if err != nil {
		return nil, err
	}
	s := &fairpgxSim{p, hold}
	err = warmUp(size, func() (func(), error) {
		c, err := p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		_, err = c.Exec(ctx, hold)
		return c.Release, err
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return s, nil
}

func (s *fairpgxSim) request(ctx context.Context) (time.Time, error) {
	c, err := s.p.Acquire(ctx) // the pool's AcquireTimeout bounds the wait
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	_, err = c.Exec(ctx, s.hold)
	c.Release()
	return got, err
}

func (s *fairpgxSim) close() error {
	s.p.Close() // waits for every connection to come back and be closed
	return nil
}

// pgxpoolSim is a pgxpool.Pool of S connections.
type pgxpoolSim struct {
	p       *pgxpool.Pool
	timeout time.Duration
	hold    string
}

func openPgxpool(ctx context.Context, t *dbTarget, size int, timeout time.Duration, hold string) (requester, error) {
	// NewWithConfig takes only a Config made by ParseConfig; the connection
	// settings then come from the --dsn, without its pool_* parameters,
	// which pgxpool would not all know.
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig, cfg.MaxConns = t.pg.Copy(), int32(size)
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &pgxpoolSim{p, timeout, hold}
	err = warmUp(size, func() (func(), error) {
		c, err := p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		_, err = c.Exec(ctx, hold)
		return c.Release, err
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return s, nil
}

func (s *pgxpoolSim) request(ctx context.Context) (time.Time, error) {
	wctx, cancel := context.WithTimeout(ctx, s.timeout) // pgxpool has no acquire timeout of its own
	c, err := s.p.Acquire(wctx)
	cancel() // bounds only the wait: the connection outlives wctx
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	_, err = c.Exec(ctx, s.hold)
	c.Release()
	return got, err
}

func (s *pgxpoolSim) close() error {
	s.p.Close()
	return nil
}

// dbSQLSim is a *sql.DB limited to S open connections, all kept idle
// between requests.
type dbSQLSim struct {
	db      *sql.DB
	timeout time.Duration
	hold    string
}

func openDBSQL(ctx context.Context, t *dbTarget, size int, timeout time.Duration, hold string) (requester, error) {
	db, err := t.openDB()
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	s := &dbSQLSim{db, timeout, hold}
	err = warmUp(size, func() (func(), error) {
		c, err := db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		_, err = c.ExecContext(ctx, hold)
		return func() { c.Close() }, err
	})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return s, nil
}

func (s *dbSQLSim) request(ctx context.Context) (time.Time, error) {
	wctx, cancel := context.WithTimeout(ctx, s.timeout)
	c, err := s.db.Conn(wctx)
	cancel() // bounds only the wait: the *sql.Conn outlives wctx
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	_, err = c.ExecContext(ctx, s.hold)
	return got, errors.Join(err, c.Close())
}

func (s *dbSQLSim) close() error { return s.db.Close() }

// sqlPoolSim is a sqlpool.Pool of S connections over a *sql.DB, with
// sqlpool's defaults: the session is checked and reset on every release.
type sqlPoolSim struct {
	p    *sqlpool.Pool
	hold string
}

func openSQLPool(ctx context.Context, t *dbTarget, size int, timeout time.Duration, hold string) (requester, error) {
	db, err := t.openDB()
	if err != nil {
		return nil, err
	}
	p, err := sqlpool.New(db, sqlpool.Config{MaxSize: size, AcquireTimeout: timeout, Name: "sim"})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s := &sqlPoolSim{p, hold}
	if err := s.warmUp(ctx, size); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// warmUp holds size connections at once, one per goroutine: WithConn
// gives its connection back when fn returns, so each fn waits until all
// have one.
func (s *sqlPoolSim) warmUp(ctx context.Context, size int) error {
	var taken, done sync.WaitGroup
	all := make(chan struct{})
	errs := make([]error, size)
	taken.Add(size)
	for i := range size {
		done.Go(func() {
			took := false
			errs[i] = s.p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
				took = true
				_, err := c.ExecContext(ctx, s.hold)
				taken.Done()
				<-all
				return err
			})
			if !took {
				taken.Done()
			}
		})
	}
	taken.Wait()
	close(all)
	done.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

func (s *sqlPoolSim) request(ctx context.Context) (got time.Time, err error) {
	err = s.p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		got = time.Now()
		_, err := c.ExecContext(ctx, s.hold)
		return err
	})
	return got, err
}

func (s *sqlPoolSim) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(s.p.Close(ctx), s.p.DB().Close())
}
