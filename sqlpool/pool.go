package sqlpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/fairpool"
)

// Pool hands out the connections of a *sql.DB to goroutines strictly in
// arrival order. Create one with New; a Pool is safe for concurrent use.
type Pool struct {
	db      *sql.DB
	pool    *fairpool.Pool[*sqlConn]
	cfg     Config
	dialect Dialect
	mysql   atomic.Pointer[mysqlQuery] // chosen at the first open, for MySQL

	driverChecksTx bool // the driver's ResetSession refuses a session in a transaction

	// renewMu makes each renew's hand-back to the DB and take-back one
	// step, so that the take-back finds the driver connection just handed
	// back and no other.
	renewMu sync.Mutex
}

// sqlConn is one connection of the pool and what the dialect recorded
// about its session when it was opened. Each lease gets conn, a *sql.Conn
// of its own on the same driver connection: see renew.
type sqlConn struct {
	conn     *sql.Conn
	dc       any    // conn's driver connection, which every later conn must have
	baseline string // the session's fingerprint at open (MySQL); "" otherwise

	// pending, when renew gave up waiting for the lease's *sql.Conn to
	// close, ends when it has: closeConn then closes what it handed back.
	pending chan struct{}

	// release is what the session check needs from the WithConn that is
	// giving the connection back. WithConn sets it just before
	// Lease.Release, which runs Pool.reset in that same goroutine before
	// anyone else can get the connection; reset takes it and clears it.
	release *release
}

// release is one WithConn's hand-back of its connection: what Pool.reset
// needs to check and clean the session, and what it found, for WithConn.
type release struct {
	s      *session
	ctx    context.Context    // WithConn's context, for its values
	failed bool               // fn returned an error
	cancel context.CancelFunc // ends fn's context, once the check has seen the session

	broken bool // out: the connection no longer works
}

// New returns a Pool over db. It takes db's connection management over:
// MaxOpenConns becomes cfg.MaxSize, MaxIdleConns 1, and ConnMaxLifetime
// and ConnMaxIdleTime 0, so that every connection is held by the Pool and
// database/sql never chooses who is served next. (The one idle connection
// lets a released connection pass through the DB to come back under a new
// *sql.Conn; it is never idle there otherwise.) Use db only through the
// Pool from then on: direct db.Query calls compete for the same MaxSize
// connections without queuing in order, and once the Pool holds MaxSize
// connections, even idle ones, a direct call blocks until its context
// ends (forever without a deadline): the Pool keeps them all.
//
// No connection is opened until one is needed, except the MinIdle ones.
func New(db *sql.DB, cfg Config) (*Pool, error) {
	if db == nil {
		return nil, errors.New("sqlpool: New: db must not be nil")
	}
	if cfg.Dialect < AutoDialect || cfg.Dialect > OtherDialect {
		return nil, fmt.Errorf("sqlpool: Config.Dialect must be one of the Dialect constants, got %d", int(cfg.Dialect))
	}
	p := &Pool{db: db, cfg: cfg, dialect: cfg.Dialect}
	dialect, checksTx := dialectOf(db.Driver())
	if p.dialect == AutoDialect {
		p.dialect = dialect
	}
	p.driverChecksTx = checksTx
	refused := cfg.Refused
	if refused == nil {
		refused = IsRefusal
	}
	pool, err := fairpool.New(fairpool.Config[*sqlConn]{
		Open:              p.open,
		Refused:           refused,
		Close:             p.closeConn,
		Check:             func(ctx context.Context, c *sqlConn) error { return c.conn.PingContext(ctx) },
		Reset:             p.reset,
		CheckAfter:        cfg.CheckAfter,
		MaxSize:           cfg.MaxSize,
		MinIdle:           cfg.MinIdle,
		MaxIdle:           cfg.MaxIdle,
		MaxLifetime:       cfg.MaxLifetime,
		MaxLifetimeJitter: cfg.MaxLifetimeJitter,
		MaxIdleTime:       cfg.MaxIdleTime,
		AcquireTimeout:    cfg.AcquireTimeout,
		OpenTimeout:       cfg.OpenTimeout,
		WaitOrder:         cfg.WaitOrder,
		Logger:            cfg.Logger,
		Name:              cfg.Name,
		TrackLeases:       cfg.TrackLeases,
		LeakThreshold:     cfg.LeakThreshold,
	})
	if err != nil {
		return nil, configError(err)
	}
	p.pool = pool
	// The Pool holds every connection it uses, so database/sql's own idle
	// set, and with it its random hand-off to waiters, is never used but by
	// renew, for the instant between handing a connection back and taking
	// it again; closeConn closes driver connections itself.
	db.SetMaxOpenConns(cfg.MaxSize)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return p, nil
}

// open is fairpool's Open: a connection from db, and its session's
// baseline for the dialect's reset.
func (p *Pool) open(ctx context.Context) (*sqlConn, error) {
	// Under renewMu: between a renew's hand-back and take-back the
	// released connection sits idle in the DB, where this would take it
	// and leave renew another. A connect holds renews up meanwhile, but
	// opens are rare next to releases.
	p.renewMu.Lock()
	conn, err := p.db.Conn(ctx)
	p.renewMu.Unlock()
	if err != nil {
		return nil, err
	}
	c := &sqlConn{conn: conn, dc: driverConn(conn)}
	if p.dialect == MySQL && !p.cfg.SkipSessionReset {
		if c.baseline, err = p.mysqlBaseline(ctx, conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

// closeConn is fairpool's Close. *sql.Conn.Close would leave the driver
// connection idle in the DB; driver.ErrBadConn from Raw makes database/sql
// close it, once whatever still uses the *sql.Conn is done. ErrConnDone
// means database/sql closed it already, after the driver reported it bad,
// or that renew could not take it back.
func (p *Pool) closeConn(c *sqlConn) error {
	if c.pending != nil {
		// Until the lease's *sql.Conn has closed, the driver connection is
		// in use, and its slot stays taken as fairpool's are while closing.
		<-c.pending
		p.closeHandedBack(c)
		return nil
	}
	err := c.conn.Raw(func(any) error { return driver.ErrBadConn })
	if err != nil && !errors.Is(err, driver.ErrBadConn) && !errors.Is(err, sql.ErrConnDone) {
		return err
	}
	return nil
}

// handBackTimeout bounds closeHandedBack's take-back from the DB.
const handBackTimeout = 5 * time.Second

// closeHandedBack closes c's driver connection, which the close of a
// lease's *sql.Conn that renew gave up waiting for has handed to the DB:
// it waits idle there, unless the DB had no room and closed it.
func (p *Pool) closeHandedBack(c *sqlConn) {
	p.renewMu.Lock()
	defer p.renewMu.Unlock()
	if p.db.Stats().Idle == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
	defer cancel()
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return
	}
	if sameConn(driverConn(conn), c.dc) {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	} else {
		conn.Close() // not the Pool's: leave it to whoever left it there
	}
}

// driverConn returns conn's driver connection, only to compare it.
func driverConn(conn *sql.Conn) (dc any) {
	conn.Raw(func(d any) error {
		dc = d
		return nil
	})
	return dc
}

// renew gives c a new *sql.Conn on the same driver connection, so that
// the one the lease handed to fn, kept past WithConn, fails with
// sql.ErrConnDone rather than run on the next holder's session: it closes
// that *sql.Conn, which hands the driver connection back to the DB, and
// takes it back at once. Holding renewMu, nothing else of the Pool's can
// take it in between. The session is already checked and clean, and fn's
// context ended, so what fn left on it does not hold the close up; what it
// left on other contexts does, up to ctx's end.
func (p *Pool) renew(ctx context.Context, c *sqlConn) error {
	p.renewMu.Lock()
	defer p.renewMu.Unlock()
	closed := make(chan struct{})
	go func(old *sql.Conn) {
		old.Close()
		close(closed)
	}(c.conn)
	select {
	case <-closed:
	case <-ctx.Done():
		c.pending = closed
		return fmt.Errorf("sqlpool: closing the lease's *sql.Conn: rows, a transaction or a call fn started on another context still use it: %w", ctx.Err())
	}
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlpool: taking the connection back from the DB: %w", err)
	}
	c.conn = conn // closeConn closes it, whichever it is
	if dc := driverConn(conn); !sameConn(dc, c.dc) {
		return errors.New("sqlpool: the DB gave back another connection than the one released: the DB is used directly, or dropped it as bad")
	}
	return nil
}

// sameConn says whether a and b are the same driver connection. Driver
// connections are pointers in practice; one that cannot be compared is
// taken for the same, which renewMu makes it as long as only the Pool uses
// the DB.
func sameConn(a, b any) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	switch {
	case ta != tb:
		return false
	case ta == nil || !ta.Comparable():
		return true
	}
	return a == b
}

// DB returns the *sql.DB the Pool was made with, for its Stats, Driver
// and Close. Do not run statements on it: once the Pool holds MaxSize
// connections, even idle ones, such a call blocks until its context ends
// (see New).
func (p *Pool) DB() *sql.DB { return p.db }

// Dialect returns the dialect in use: Config.Dialect, or the one picked
// from the driver.
func (p *Pool) Dialect() Dialect { return p.dialect }

// Stats returns the pool's gauges and counters.
func (p *Pool) Stats() fairpool.Stats { return p.pool.Stats() }

// Holders lists the leases out, oldest first, each with how long it has
// been held and the file:line of the code that called WithConn or WithTx.
// It is empty unless Config.TrackLeases (or LeakThreshold) is set.
func (p *Pool) Holders() []fairpool.Holder { return p.pool.Holders() }

// Waiters returns how long each goroutine now waiting for a connection has
// waited, in the order they will be served.
func (p *Pool) Waiters() []time.Duration { return p.pool.Waiters() }

// Observe reports each wait, open and use of the pool's connections to o
// until stop is called; see fairpool.Pool.Observe. A lease here is one
// WithConn or WithTx, its session reset included.
func (p *Pool) Observe(o fairpool.Observer) (stop func()) { return p.pool.Observe(o) }

// Close closes the Pool's connections, waiting for leased ones to come
// back, until ctx ends: see fairpool.Pool.Close. It does not close the DB.
func (p *Pool) Close(ctx context.Context) error { return p.pool.Close(ctx) }

// session is one lease on a connection, bound to the context that WithConn
// passes to its function so that nested calls find it.
type session struct {
	c      *sqlConn
	conn   *sql.Conn   // the lease's, which renew closes after it
	ended  atomic.Bool // set when the outermost WithConn returns
	broken atomic.Bool // fn said the connection is bad, or panicked
}

type sessionKey struct{ p *Pool }

// WithConn runs fn with a connection and gives it back when fn returns,
// even if fn panics. Waiters are served strictly in arrival order; ctx
// bounds only the wait, like fairpool.Pool.With.
//
// WithConn is reentrant: called with the context fn received (or one
// derived from it), it runs the nested fn on the same connection, inside
// the transaction of an enclosing WithTx if there is one. The outermost
// call gives the connection back.
//
// fn's context ends when fn returns: database/sql then rolls back a
// transaction and closes rows that fn opened with it and left open. Before
// the connection is reused, its session is checked and reset (see
// Config.SkipSessionReset and Dialect); a connection that fails, was left
// in a transaction, or had its session settings changed where they cannot
// be reset, is closed instead.
//
// conn is for this lease only: once the outermost WithConn returns it is
// closed, so a copy kept past fn fails with sql.ErrConnDone instead of
// running on the next holder's session, while the session itself, checked
// and clean, is reused under a new *sql.Conn. Closing it waits for what
// still uses it: rows, a transaction or a call fn started on a context
// other than its own and left running hold the release up, at most
// OpenTimeout; the connection is then not reused, and closes once they
// end. A transaction begun on another context and left open keeps the
// connection until it ends.
//
// fn's error is returned unchanged, except when the connection broke
// during fn: then the error says so and errors.Is(err, fairpool.ErrBadConn)
// holds, while errors.Is and errors.As still see the driver's error. An
// error from fn that wraps fairpool.ErrBadConn or driver.ErrBadConn, or a
// panic, closes the connection rather than reuse it; a panic keeps
// propagating.
func (p *Pool) WithConn(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	if s, ok := ctx.Value(sessionKey{p}).(*session); ok && !s.ended.Load() {
		return s.run(ctx, fn)
	}
	l, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	c := l.Value()
	s := &session{c: c, conn: c.conn}
	fctx, cancel := context.WithCancel(context.WithValue(ctx, sessionKey{p}, s))
	returned := false
	defer func() {
		if !returned { // fn panicked: the panic goes on after this
			s.ended.Store(true)
			cancel() // ends what fn left open, so that closing does not wait on it
			l.Discard()
		}
	}()
	err = s.run(fctx, fn)
	returned = true
	s.ended.Store(true)
	if s.broken.Load() { // fn said the connection is bad: nothing to clean
		p.cfg.logger().Info("sqlpool: connection not reused", "pool", p.cfg.Name, "error", "the connection was reported bad")
		cancel()
		l.Discard()
		if err != nil {
			return &brokenConnError{pool: p.cfg.Name, err: err}
		}
		return err
	}
	// The session check and clean run inside Release, in this goroutine, as
	// fairpool's Config.Reset (see reset): a connection whose session cannot
	// be cleaned is then closed by the pool as a failed reset, and counted
	// in Stats.ClosedReset, apart from the ones fn discarded.
	r := &release{s: s, ctx: ctx, failed: err != nil, cancel: cancel}
	s.c.release = r
	l.Release()
	cancel() // reset did already, unless it never ran
	if r.broken && err != nil {
		return &brokenConnError{pool: p.cfg.Name, err: err}
	}
	return err
}

// reset is fairpool's Config.Reset. Lease.Release runs it in the goroutine
// of the WithConn that releases, with a context bounded by OpenTimeout;
// an error makes the pool close the connection. It checks and cleans the
// session (see clean) before it ends fn's context: a transaction fn left
// open is still open now, where the check sees it, rather than rolled back
// by database/sql at some later instant, possibly under the next holder.
// A clean session then goes on under a new *sql.Conn (see renew).
func (p *Pool) reset(ctx context.Context, c *sqlConn) error {
	r := c.release
	c.release = nil
	if r == nil { // released other than by WithConn: the session is unknown
		return errors.New("sqlpool: connection released without its session check")
	}
	defer r.cancel()
	// The pool's context bounds the check; WithConn's gives the values
	// (a driver's or tracer's), as the rest of the lease had them.
	cctx := context.WithoutCancel(r.ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadline(cctx, d)
		defer cancel()
	}
	var err error
	if r.broken, err = p.clean(cctx, r.s, r.failed); err != nil {
		return err
	}
	r.cancel() // what fn left open on its context must end before renew closes its *sql.Conn
	return p.renew(cctx, c)
}

// run calls fn and marks the session broken if fn says so or panics.
func (s *session) run(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	returned := false
	defer func() {
		if !returned {
			s.broken.Store(true)
		}
	}()
	err := fn(ctx, s.conn)
	returned = true
	if err != nil && (errors.Is(err, fairpool.ErrBadConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)) {
		s.broken.Store(true)
	}
	return err
}
