package fairpgx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
)

// pingGrace is how long a ping whose caller gave up may still finish, so
// that a slow but healthy connection goes back to the pool instead of
// being closed; pgxpool allows the same.
const pingGrace = time.Minute

// errTooManyAttempts ends an Acquire whose every try was refused by
// PrepareConn, BeforeAcquire or a failed ping.
var errTooManyAttempts = errors.New("too many failed attempts acquiring connection; likely bug in PrepareConn, BeforeAcquire, or ShouldPing hook")

// Acquire returns a connection, waiting in line for it; the caller must
// Release it. It gives up when ctx ends or AcquireTimeout passes, whichever
// comes first (a *fairpool.TimeoutError that shows the pool's state). A
// connection past MaxConnLifetime is closed instead of handed out; one that
// ShouldPing picks is pinged first and closed if the ping fails; then
// PrepareConn (or BeforeAcquire) runs. A connection they refuse is replaced.
//
// Acquire is not reentrant: code that already holds a connection and
// acquires again waits like anyone else. Use With for nested code.
func (p *Pool) Acquire(ctx context.Context) (c *Conn, err error) {
	if p.acquireTracer != nil {
		ctx = p.acquireTracer.TraceAcquireStart(ctx, p, TraceAcquireStartData{})
		defer func() {
			var conn *pgx.Conn
			if c != nil {
				conn = c.conn
			}
			p.acquireTracer.TraceAcquireEnd(ctx, p, TraceAcquireEndData{Conn: conn, Err: err})
		}()
	}
	for range int(p.cfg.MaxConns) + 1 {
		start := time.Now()
		l, err := p.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		p.acquireNanos.Add(int64(now.Sub(start)))
		r := l.Value()
		if r.gen != p.gen.Load() {
			l.Discard()
			continue
		}
		if p.expired(r, now) {
			p.lifetimeCloses.Add(1)
			l.Discard()
			continue
		}
		if p.shouldPing(ctx, ShouldPingParams{Conn: r.conn, IdleDuration: r.idleFor(now)}) {
			ok, err := p.ping(ctx, l)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		if p.prepareConn != nil {
			ok, err := p.prepareConn(ctx, r.conn)
			if !ok {
				l.Discard()
			}
			if err != nil {
				if ok {
					l.Release()
				}
				return nil, err
			}
			if !ok {
				continue
			}
		}
		return &Conn{p: p, l: l, r: r, conn: r.conn}, nil
	}
	return nil, fmt.Errorf("%s%w", prefix(p.cfg.Name), errTooManyAttempts)
}

// ping pings l's connection before hand-out, bounded by ctx and
// PingTimeout. A failed ping closes the connection (false). If ctx ends
// first, the ping runs on in the background for up to pingGrace and
// settles the connection, and ping returns ctx's error.
func (p *Pool) ping(ctx context.Context, l *fairpool.Lease[*connRes]) (bool, error) {
	conn := l.Value().conn
	pingCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if d, ok := ctx.Deadline(); ok {
		pingCtx, cancel = withDeadline(pingCtx, cancel, d)
	}
	if p.cfg.PingTimeout > 0 {
		pingCtx, cancel = withDeadline(pingCtx, cancel, time.Now().Add(p.cfg.PingTimeout))
	}
	result := make(chan error, 1)
	go func() { result <- conn.Ping(pingCtx) }()
	select {
	case err := <-result:
		cancel()
		if err != nil {
			l.Discard()
			return false, nil
		}
		return true, nil
	case <-ctx.Done():
		go func() {
			t := time.AfterFunc(pingGrace, cancel)
			defer t.Stop()
			defer cancel()
			if err := <-result; err != nil {
				l.Discard()
			} else {
				l.Release()
			}
		}()
		return false, ctx.Err()
	}
}

// withDeadline narrows ctx to d, with a cancel that also ends the one
// before.
func withDeadline(ctx context.Context, prev context.CancelFunc, d time.Time) (context.Context, context.CancelFunc) {
	c, cancel := context.WithDeadline(ctx, d)
	return c, func() { cancel(); prev() }
}

// AcquireFunc acquires a connection, calls f with it and releases it when
// f returns, even if f panics. ctx bounds only the acquire. It returns the
// acquire's error or f's.
func (p *Pool) AcquireFunc(ctx context.Context, f func(*Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c)
}

// AcquireAllIdle acquires every connection idle now, without waiting, for
// keep-alive or health checks of your own. PrepareConn (or BeforeAcquire)
// vets each; refused ones are closed. It calls no tracer and, as in
// pgxpool, does not count in Stat. Release each Conn.
func (p *Pool) AcquireAllIdle(ctx context.Context) []*Conn {
	ls := p.takeIdle()
	conns := make([]*Conn, 0, len(ls))
	for _, l := range ls {
		r := l.Value()
		if p.prepareConn != nil {
			if ok, err := p.prepareConn(ctx, r.conn); !ok || err != nil {
				l.Discard()
				continue
			}
		}
		conns = append(conns, &Conn{p: p, l: l, r: r, conn: r.conn})
	}
	return conns
}

type ctxKey struct{ p *Pool }

// held returns the connection that ctx carries from an enclosing With on p,
// or nil.
func (p *Pool) held(ctx context.Context) *Conn {
	if c, ok := ctx.Value(ctxKey{p}).(*Conn); ok && c != nil && !c.ended.Load() {
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
// The outermost With releases it.
//
// A connection runs one statement at a time. A call made with that context
// while another call on the connection has not finished (rows or batch
// results still open, or the context shared by goroutines running at
// once, as in an errgroup) fails at once with an error wrapping
// ErrConnInUse, instead of running elsewhere, outside the transaction.
// To fan out, give each goroutine Detach(ctx): it acquires connections of
// its own, outside the With's transaction.
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

// Detach returns a context with ctx's values and deadline but without the
// connection an enclosing With bound to it: calls on p with it acquire
// connections of their own, outside that With's transaction. Give it to
// goroutines that query in parallel.
func (p *Pool) Detach(ctx context.Context) context.Context {
	if p.held(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{p}, (*Conn)(nil))
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

// get returns the connection ctx holds, or acquires one (acquired true)
// that the caller must release.
func (p *Pool) get(ctx context.Context) (c *Conn, acquired bool, err error) {
	if c := p.held(ctx); c != nil {
		return c, false, nil
	}
	c, err = p.Acquire(ctx)
	return c, err == nil, err
}

// callerOf finds, in a runtime.Stack text, the file:line of the first frame
// that belongs to neither the runtime, fairpool's pool nor this package:
// the code that asked for the connection.
func callerOf(stack string) string {
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i += 2 {
		fn := lines[i]
		if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "github.com/fairpool/fairpool.") ||
			strings.HasPrefix(fn, "github.com/fairpool/fairpool/fairpgx.") {
			continue
		}
		loc := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(loc, " +0x"); j >= 0 {
			loc = loc[:j]
		}
		return loc
	}
	return "unknown"
}
