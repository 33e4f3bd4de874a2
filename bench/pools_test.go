package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/fairpool/fairpool"
	"github.com/jackc/puddle/v2"
)

// conn is the no-op connection every pool hands out.
type conn struct{ id int }

// newChan returns the floor: a buffered channel pre-filled with size conns.
func newChan(size int) chan *conn {
	ch := make(chan *conn, size)
	for i := range size {
		ch <- &conn{id: i}
	}
	return ch
}

// newFairpool returns a fairpool.Pool of size connections, all opened.
func newFairpool(tb testing.TB, size int, cfg fairpool.Config[*conn]) *fairpool.Pool[*conn] {
	tb.Helper()
	var n atomic.Int64 // Open runs in goroutines of its own
	cfg.Open = func(context.Context) (*conn, error) { return &conn{id: int(n.Add(1))}, nil }
	cfg.MaxSize = size
	p, err := fairpool.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	leases := make([]*fairpool.Lease[*conn], size)
	for i := range leases {
		if leases[i], err = p.Acquire(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	for _, l := range leases {
		l.Release()
	}
	tb.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// newPuddle returns a puddle pool of size resources, all constructed.
func newPuddle(tb testing.TB, size int) *puddle.Pool[*conn] {
	tb.Helper()
	var n atomic.Int64
	p, err := puddle.NewPool(&puddle.Config[*conn]{
		Constructor: func(context.Context) (*conn, error) { return &conn{id: int(n.Add(1))}, nil },
		Destructor:  func(*conn) {},
		MaxSize:     int32(size),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	res := make([]*puddle.Resource[*conn], size)
	for i := range res {
		if res[i], err = p.Acquire(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	for _, r := range res {
		r.Release()
	}
	tb.Cleanup(p.Close)
	return p
}

// newSQL returns a database/sql pool of size no-op connections, all open.
func newSQL(tb testing.TB, size int) *sql.DB {
	tb.Helper()
	db := sql.OpenDB(noopConnector{})
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	ctx := context.Background()
	conns := make([]*sql.Conn, size)
	for i := range conns {
		var err error
		if conns[i], err = db.Conn(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	if s := db.Stats(); s.OpenConnections != size || s.Idle != size {
		tb.Fatalf("database/sql not warm: %+v", s)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// The no-op driver: connections that do nothing and never fail.
type (
	noopConnector struct{}
	noopDriver    struct{}
	noopConn      struct{ id int }
)

var errNoop = errors.New("noop driver: not supported")

func (noopConnector) Connect(context.Context) (driver.Conn, error) { return &noopConn{}, nil }
func (noopConnector) Driver() driver.Driver                        { return noopDriver{} }
func (noopDriver) Open(string) (driver.Conn, error)                { return &noopConn{}, nil }
func (*noopConn) Prepare(string) (driver.Stmt, error)              { return nil, errNoop }
func (*noopConn) Close() error                                     { return nil }
func (*noopConn) Begin() (driver.Tx, error)                        { return nil, errNoop }
