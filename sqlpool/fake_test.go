package sqlpool_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/fairpool/fairpool/sqlpool"
)

// A fake database/sql driver that records what happens to each session:
// enough to test sqlpool's leases, transactions and session checks without
// a server. The real servers are tested in the integration module.

type fakeDriver struct {
	mu     sync.Mutex
	nextID int
	conns  []*fakeConn
}

func (d *fakeDriver) Open(string) (driver.Conn, error) { return d.Connect(context.Background()) }

// Connect and Driver make fakeDriver its own driver.Connector.
func (d *fakeDriver) Connect(context.Context) (driver.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	c := &fakeConn{d: d, id: d.nextID}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *fakeDriver) Driver() driver.Driver { return d }

// open counts the driver connections not closed.
func (d *fakeDriver) open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.conns {
		if !c.closed {
			n++
		}
	}
	return n
}

// log returns the statements every session ran, "id:stmt", in order per
// session.
func (d *fakeDriver) log() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var all []string
	for _, c := range d.conns {
		for _, s := range c.log {
			all = append(all, fmt.Sprintf("%d:%s", c.id, s))
		}
	}
	return all
}

type fakeConn struct {
	d      *fakeDriver
	id     int
	inTx   bool
	bad    bool // the server went away: every call fails with ErrBadConn
	closed bool
	log    []string
}

var (
	_ driver.ConnBeginTx       = (*fakeConn)(nil)
	_ driver.ExecerContext     = (*fakeConn)(nil)
	_ driver.QueryerContext    = (*fakeConn)(nil)
	_ driver.Pinger            = (*fakeConn)(nil)
	_ driver.SessionResetter   = (*fakeConn)(nil)
	_ driver.Validator         = (*fakeConn)(nil)
	_ driver.Connector         = (*fakeDriver)(nil)
	_ driver.NamedValueChecker = (*fakeConn)(nil)
)

func (c *fakeConn) record(s string) {
	c.d.mu.Lock()
	c.log = append(c.log, s)
	c.d.mu.Unlock()
}

func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("fake: no Prepare") }

func (c *fakeConn) Close() error {
	c.d.mu.Lock()
	c.closed = true
	c.d.mu.Unlock()
	return nil
}

func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *fakeConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.bad {
		return nil, driver.ErrBadConn
	}
	c.inTx = true
	c.record(fmt.Sprintf("BEGIN ro=%v", opts.ReadOnly))
	return fakeTx{c}, nil
}

func (c *fakeConn) ExecContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	if c.bad || query == "BREAK" {
		c.bad = true
		return nil, driver.ErrBadConn
	}
	c.record(query)
	if query == "BEGIN" {
		c.inTx = true
	}
	return driver.RowsAffected(0), nil
}

// QueryContext answers any query with one row: the session's id.
func (c *fakeConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	if c.bad {
		return nil, driver.ErrBadConn
	}
	return &idRows{id: int64(c.id)}, nil
}

func (c *fakeConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (c *fakeConn) Ping(context.Context) error {
	if c.bad {
		return driver.ErrBadConn
	}
	return nil
}

// ResetSession is what pgx's stdlib driver does: a session left in a
// transaction, or broken, is bad.
func (c *fakeConn) ResetSession(context.Context) error {
	if c.bad || c.inTx {
		return driver.ErrBadConn
	}
	return nil
}

func (c *fakeConn) IsValid() bool { return !c.bad && !c.closed }

type fakeTx struct{ c *fakeConn }

func (tx fakeTx) Commit() error {
	tx.c.inTx = false
	tx.c.record("COMMIT")
	return nil
}

func (tx fakeTx) Rollback() error {
	tx.c.inTx = false
	tx.c.record("ROLLBACK")
	return nil
}

type idRows struct {
	id   int64
	done bool
}

func (r *idRows) Columns() []string { return []string{"id"} }
func (r *idRows) Close() error      { return nil }
func (r *idRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = r.id
	return nil
}

// newFakeDB returns a DB on a fresh fake driver, closed at the end of the
// test, which then also checks that every session was closed.
func newFakeDB(t *testing.T) (*sql.DB, *fakeDriver) {
	t.Helper()
	d := &fakeDriver{}
	db := sql.OpenDB(d)
	t.Cleanup(func() {
		db.Close()
		if n := d.open(); n != 0 {
			t.Errorf("%d driver connections still open after the test", n)
		}
	})
	return db, d
}

// sessionID is the id of the session a lease of p gets.
func sessionID(ctx context.Context, p *sqlpool.Pool) (id int, err error) {
	err = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT id").Scan(&id)
	})
	return id, err
}

func hasAll(log []string, want ...string) error {
	joined := strings.Join(log, ";")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			return fmt.Errorf("log %q lacks %q", joined, w)
		}
	}
	return nil
}
