package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/puddle/v2"
)

// simPool is one in-process pool under test in the fairness experiment,
// reduced to acquire and release; sleepHold makes it a requester. Every
// implementation is the real pool, driven by real goroutines; the
// connections are no-ops. (The pools of a --dsn run are in dbpools.go.)
type simPool interface {
	// acquire waits for a connection, at most the pool's acquire timeout,
	// and returns the function that gives it back.
	acquire(ctx context.Context) (release func(), err error)
	// close shuts the pool down once every connection is back.
	close() error
}

// requester is a pool as one request of the fairness experiment uses it.
type requester interface {
	// request waits for a connection, at most the acquire timeout, holds it
	// for the experiment's hold and gives it back. It returns when it got
	// the connection, or the zero time if it never did.
	request(ctx context.Context) (got time.Time, err error)
	// close shuts the pool down once every connection is back.
	close() error
}

// sleepHold is an in-process pool whose requests hold their no-op
// connection by sleeping.
type sleepHold struct {
	simPool
	hold time.Duration
}

func (s sleepHold) request(ctx context.Context) (time.Time, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return time.Time{}, err
	}
	got := time.Now()
	time.Sleep(s.hold)
	release()
	return got, nil
}

// fairnessPool names a pool the fairness experiment can run in-process.
type fairnessPool struct {
	name string // the --pools value and the label in tables and plots
	desc string // one line for --help
	open func(size int, timeout time.Duration) (simPool, error)
}

// fairnessPools lists the pools in the order they run and are shown.
var fairnessPools = []fairnessPool{
	{"fairpool", "fairpool, FIFO (its default): a released connection goes to the oldest waiter",
		func(size int, timeout time.Duration) (simPool, error) {
			return newFairpoolSim(size, timeout, fairpool.FIFO)
		}},
	{"fairpool-lifo", "fairpool with WaitOrder LIFO: the newest waiter is served first",
		func(size int, timeout time.Duration) (simPool, error) {
			return newFairpoolSim(size, timeout, fairpool.LIFO)
		}},
	{"sql", "database/sql, no-op driver, MaxOpenConns=S: a random waiter is served",
		newSQLSim},
	{"puddle", "github.com/jackc/puddle/v2: waiters queue on a FIFO semaphore",
		newPuddleSim},
	{"chan", "a buffered channel of connections: receivers are served in order",
		newChanSim},
	{"unfair", "the unfair queue: a newcomer takes an idle connection while others wait",
		newUnfairSim},
}

// isTimeout reports whether err means a pool gave up at its acquire timeout,
// whichever way that pool says it.
func isTimeout(err error) bool {
	return errors.Is(err, fairpool.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errUnfairTimeout)
}

// noop is the connection every pool but database/sql hands out.
type noop struct{ id int }

// fairpoolSim is fairpool.Pool with every connection opened up front.
type fairpoolSim struct{ p *fairpool.Pool[*noop] }

func newFairpoolSim(size int, timeout time.Duration, order fairpool.WaitOrder) (simPool, error) {
	var n atomic.Int64 // Open runs in goroutines of its own
	p, err := fairpool.New(fairpool.Config[*noop]{
		Name:           "sim",
		Open:           func(context.Context) (*noop, error) { return &noop{id: int(n.Add(1))}, nil },
		MaxSize:        size,
		AcquireTimeout: timeout,
		WaitOrder:      order,
	})
	if err != nil {
		return nil, err
	}
	s := &fairpoolSim{p}
	ctx := context.Background()
	leases := make([]*fairpool.Lease[*noop], size)
	for i := range leases {
		if leases[i], err = p.Acquire(ctx); err != nil {
			return nil, errors.Join(err, s.close())
		}
	}
	for _, l := range leases {
		l.Release()
	}
	return s, nil
}

func (s *fairpoolSim) acquire(ctx context.Context) (func(), error) {
	l, err := s.p.Acquire(ctx) // the pool's own AcquireTimeout bounds the wait
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

func (s *fairpoolSim) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.p.Close(ctx)
}

// sqlSim is database/sql over the no-op driver, warm.
type sqlSim struct {
	db      *sql.DB
	timeout time.Duration
}

func newSQLSim(size int, timeout time.Duration) (simPool, error) {
	db := sql.OpenDB(noopConnector{})
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	s := &sqlSim{db, timeout}
	ctx := context.Background()
	conns := make([]*sql.Conn, size)
	for i := range conns {
		var err error
		if conns[i], err = db.Conn(ctx); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	return s, nil
}

func (s *sqlSim) acquire(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel() // bounds only the wait: the *sql.Conn outlives ctx
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return func() { c.Close() }, nil
}

func (s *sqlSim) close() error { return s.db.Close() }

// puddleSim is a puddle pool with every resource constructed.
type puddleSim struct {
	p       *puddle.Pool[*noop]
	timeout time.Duration
}

func newPuddleSim(size int, timeout time.Duration) (simPool, error) {
	var n atomic.Int64
	p, err := puddle.NewPool(&puddle.Config[*noop]{
		Constructor: func(context.Context) (*noop, error) { return &noop{id: int(n.Add(1))}, nil },
		Destructor:  func(*noop) {},
		MaxSize:     int32(size),
	})
	if err != nil {
		return nil, err
	}
	s := &puddleSim{p, timeout}
	ctx := context.Background()
	res := make([]*puddle.Resource[*noop], size)
	for i := range res {
		if res[i], err = p.Acquire(ctx); err != nil {
			p.Close()
			return nil, err
		}
	}
	for _, r := range res {
		r.Release()
	}
	return s, nil
}

func (s *puddleSim) acquire(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return r.Release, nil
}

func (s *puddleSim) close() error {
	s.p.Close() // waits for every resource to come back and be destroyed
	return nil
}

// chanSim is a buffered channel filled with the connections: the floor of
// a FIFO pool.
type chanSim struct {
	ch      chan *noop
	timeout time.Duration
}

func newChanSim(size int, timeout time.Duration) (simPool, error) {
	ch := make(chan *noop, size)
	for i := range size {
		ch <- &noop{id: i}
	}
	return &chanSim{ch, timeout}, nil
}

func (s *chanSim) acquire(ctx context.Context) (func(), error) {
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case c := <-s.ch:
		return func() { s.ch <- c }, nil
	case <-t.C:
		return nil, fmt.Errorf("chan: %w", context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *chanSim) close() error { return nil }

// unfairSim adapts unfairQueue.
type unfairSim struct{ q *unfairQueue }

func newUnfairSim(size int, timeout time.Duration) (simPool, error) {
	return &unfairSim{newUnfairQueue(size, timeout)}, nil
}

func (s *unfairSim) acquire(ctx context.Context) (func(), error) {
	c, err := s.q.poll(ctx)
	if err != nil {
		return nil, err
	}
	return func() { s.q.add(c) }, nil
}

func (s *unfairSim) close() error { return nil }
