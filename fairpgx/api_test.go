package fairpgx_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// recordingTracer is a ConnConfig.Tracer that records the pool calls.
type recordingTracer struct {
	mu     sync.Mutex
	events []string
	pools  []*fairpgx.Pool
	conns  []*pgx.Conn
}

type traceKey struct{}

// pgx accepts only a QueryTracer as ConnConfig.Tracer; the pool looks for
// the other interfaces on it, as pgxpool does.
func (*recordingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (*recordingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recordingTracer) add(ev string, p *fairpgx.Pool, c *pgx.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.pools = append(r.pools, p)
	r.conns = append(r.conns, c)
}

func (r *recordingTracer) TraceAcquireStart(ctx context.Context, p *fairpgx.Pool, _ fairpgx.TraceAcquireStartData) context.Context {
	r.add("start", p, nil)
	return context.WithValue(ctx, traceKey{}, "span")
}

func (r *recordingTracer) TraceAcquireEnd(ctx context.Context, p *fairpgx.Pool, d fairpgx.TraceAcquireEndData) {
	ev := "end"
	if ctx.Value(traceKey{}) != "span" {
		ev = "end without start's context"
	}
	if d.Err != nil {
		ev += " error"
	}
	r.add(ev, p, d.Conn)
}

func (r *recordingTracer) TraceRelease(p *fairpgx.Pool, d fairpgx.TraceReleaseData) {
	r.add("release", p, d.Conn)
}

func TestTracersSeeAcquireAndRelease(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	tr := &recordingTracer{}
	cfg.ConnConfig.Tracer = tr
	cfg.AcquireTimeout = 100 * time.Millisecond
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Conn()
	if _, err := p.Acquire(ctx); err == nil { // times out: the pool has one
		t.Fatal("second Acquire on a pool of one succeeded")
	}
	c.Release()
	c.Release() // traced once
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// Calls nested in With reuse its connection: one acquire, one release.
	if err := p.With(ctx, func(ctx context.Context, _ *pgx.Conn) error {
		_, err := p.Exec(ctx, "SELECT 1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"start", "end", "start", "end error", "release", "start", "end", "release", "start", "end", "release"}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.events) != len(want) {
		t.Fatalf("events %q, want %q", tr.events, want)
	}
	for i := range want {
		if tr.events[i] != want[i] || tr.pools[i] != p {
			t.Errorf("event %d: %q on pool %p, want %q on %p", i, tr.events[i], tr.pools[i], want[i], p)
		}
	}
	if tr.conns[1] != conn || tr.conns[4] != conn || tr.conns[3] != nil {
		t.Errorf("conns seen %v; want the acquired %p at end and release, nil on the failed acquire", tr.conns, conn)
	}
}

func TestAcquireFuncAndAllIdle(t *testing.T) {
	cfg, _ := testConfig(t, 3)
	p := newPool(t, cfg)
	ctx := context.Background()
	errFn := errors.New("fn failed")
	if err := p.AcquireFunc(ctx, func(c *fairpgx.Conn) error {
		if p.Stat().AcquiredConns() != 1 {
			t.Error("AcquireFunc: connection not acquired during f")
		}
		return errFn
	}); err != errFn {
		t.Errorf("AcquireFunc returned %v, want f's error", err)
	}
	if p.Stat().AcquiredConns() != 0 {
		t.Error("AcquireFunc did not release")
	}
	var cs []*fairpgx.Conn
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.Release()
	}
	acquires := p.Stat().AcquireCount()
	all := p.AcquireAllIdle(ctx)
	if len(all) != 3 || p.Stat().IdleConns() != 0 || p.Stat().AcquiredConns() != 3 {
		t.Errorf("AcquireAllIdle: %d conns, idle %d, acquired %d; want 3, 0, 3", len(all), p.Stat().IdleConns(), p.Stat().AcquiredConns())
	}
	if got := p.Stat().AcquireCount(); got != acquires {
		t.Errorf("AcquireAllIdle changed AcquireCount %d -> %d; pgxpool's does not count", acquires, got)
	}
	for _, c := range all {
		if err := c.Ping(ctx); err != nil {
			t.Error(err)
		}
		c.Release()
	}
	again := p.AcquireAllIdle(ctx)
	if len(again) != 3 {
		t.Errorf("second AcquireAllIdle: %d, want 3", len(again))
	}
	for _, c := range again {
		c.Release()
	}
}

func TestResetClosesEveryConnection(t *testing.T) {
	cfg, app := testConfig(t, 3)
	p := newPool(t, cfg)
	ctx := context.Background()
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	old := held.Conn()
	p.Reset()
	waitFor(t, "idle connections closed by Reset", func() bool { return p.Stat().TotalConns() == 1 })
	held.Release() // acquired before Reset: closed on release
	waitFor(t, "held connection closed on release", func() bool { return p.Stat().TotalConns() == 0 })
	waitBackends(t, app, 0)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after Reset: %v", err)
	}
	defer c.Release()
	if c.Conn() == old {
		t.Error("a connection from before Reset was handed out")
	}
}

func TestHijackTakesConnectionOut(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	var closes int
	cfg.BeforeClose = func(*pgx.Conn) { closes++ }
	p := newPool(t, cfg)
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Hijack()
	defer conn.Close(ctx)
	waitFor(t, "hijacked connection's slot freed", func() bool { return p.Stat().TotalConns() == 0 })
	if err := conn.Ping(ctx); err != nil || conn.IsClosed() {
		t.Fatalf("the pool closed the hijacked connection: %v", err)
	}
	c2, err := p.Acquire(ctx) // the pool of one has its slot back
	if err != nil {
		t.Fatal(err)
	}
	if c2.Conn() == conn {
		t.Error("the hijacked connection was handed out again")
	}
	c2.Release()
	c.Release() // does nothing
	func() {
		defer func() {
			if recover() == nil {
				t.Error("second Hijack did not panic")
			}
		}()
		c.Hijack()
	}()
	if closes != 0 {
		t.Errorf("BeforeClose ran %d times for a hijacked connection", closes)
	}
}

// TestBeginReturnsATx: as pgxpool's Begin returns a *pgxpool.Tx, fairpgx's
// returns a *fairpgx.Tx, so code that asserts the type compiles and works
// with the import changed; once committed, it fails as a closed pgx.Tx.
func TestBeginReturnsATx(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	p := newPool(t, cfg)
	ctx := context.Background()
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ptx, ok := tx.(*fairpgx.Tx)
	if !ok {
		t.Fatalf("Begin returned a %T, want a *fairpgx.Tx", tx)
	}
	if _, err := ptx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := ptx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ptx.Exec(ctx, "SELECT 1"); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after Commit: %v, want pgx.ErrTxClosed", err)
	}
}
