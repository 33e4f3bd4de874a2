package fairpgx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// call is one request of a load run: which backend served it, or why not.
type call struct {
	start, end time.Time
	pid        uint32
	err        error
}

// load runs workers goroutines that call the pool in a loop, through
// QueryRow, With and a transaction in turn, each holding its connection
// about 2 ms, and watches the pool's size all along.
type load struct {
	p       *fairpgx.Pool
	stop    atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	calls   []call
	maxOpen atomic.Int64 // most connections the pool counted at once
}

func startLoad(p *fairpgx.Pool, workers int) *load {
	l := &load{p: p}
	ctx := context.Background()
	ops := []func() (uint32, error){
		func() (uint32, error) {
			var pid uint32
			err := p.QueryRow(ctx, "SELECT pg_backend_pid() FROM pg_sleep(0.002)").Scan(&pid)
			return pid, err
		},
		func() (pid uint32, err error) {
			err = p.With(ctx, func(ctx context.Context, c *pgx.Conn) error {
				if _, err := c.Exec(ctx, "SELECT pg_sleep(0.002)"); err != nil {
					return err
				}
				return c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
			})
			return pid, err
		},
		func() (pid uint32, err error) {
			err = pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM pg_sleep(0.002)").Scan(&pid)
			})
			return pid, err
		},
	}
	for w := range workers {
		l.wg.Go(func() {
			for i := w; !l.stop.Load(); i++ {
				c := call{start: time.Now()}
				c.pid, c.err = ops[i%len(ops)]()
				c.end = time.Now()
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
				if c.err != nil {
					time.Sleep(5 * time.Millisecond) // as a client backs off; keeps the outage from spinning
				}
			}
		})
	}
	l.wg.Go(func() {
		for !l.stop.Load() {
			if n := int64(p.Stats().Open); n > l.maxOpen.Load() {
				l.maxOpen.Store(n)
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	return l
}

// finish stops the load and returns every call, in no order.
func (l *load) finish() []call {
	l.stop.Store(true)
	l.wg.Wait()
	return l.calls
}

// checkLoad asserts what must hold after any fault: the pool never
// counted more than max connections, no call hung past the acquire
// timeout, every connection came back, and the pool served again within
// 1 s of back (the instant the server answered again).
func checkLoad(t *testing.T, l *load, calls []call, max int, timeout time.Duration, back time.Time) {
	t.Helper()
	if m := l.maxOpen.Load(); m > int64(max) {
		t.Errorf("the pool had %d connections at once, MaxConns %d", m, max)
	}
	var first time.Time
	for _, c := range calls {
		if d := c.end.Sub(c.start); d > timeout+time.Second {
			t.Errorf("a call took %v (acquire timeout %v): %v", d, timeout, c.err)
		}
		if c.err == nil && !c.start.Before(back) && (first.IsZero() || c.end.Before(first)) {
			first = c.end
		}
	}
	if first.IsZero() {
		t.Errorf("no call succeeded after the server answered again")
	} else if d := first.Sub(back); d > time.Second {
		t.Errorf("the pool served again %v after the server answered, want within 1s", d)
	} else {
		t.Logf("served again %v after the server answered", d.Round(time.Microsecond))
	}
	s := l.p.Stats()
	if s.InUse != 0 || s.Waiting != 0 || s.Open > max {
		t.Errorf("after the load: in use %d, waiting %d, open %d (max %d)", s.InUse, s.Waiting, s.Open, max)
	}
}

// brokeErr reports whether err says the connection broke.
func brokeErr(err error) bool {
	return errors.Is(err, fairpool.ErrBadConn) && strings.Contains(err.Error(), "connection broke")
}

func summary(calls []call) string {
	var ok, broke, other int
	for _, c := range calls {
		switch {
		case c.err == nil:
			ok++
		case brokeErr(c.err):
			broke++
		default:
			other++
		}
	}
	return fmt.Sprintf("%d calls: %d ok, %d connection broke, %d other errors", len(calls), ok, broke, other)
}

// pgCluster returns the cluster version that pg_ctlcluster manages here,
// or skips the test (fails it under CI) when the server cannot be
// restarted from the test.
func pgCluster(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("restarting PostgreSQL needs root")
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		skip("restarting PostgreSQL needs pg_ctlcluster: %v", err)
	}
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(entries) != 1 {
		skip("want exactly one cluster version in /etc/postgresql: %v %v", entries, err)
	}
	return entries[0].Name()
}

// pgCtl runs pg_ctlcluster on the main cluster.
func pgCtl(version string, args ...string) error {
	args = append([]string{"--skip-systemctl-redirect", version, "main"}, args...)
	out, err := exec.Command("pg_ctlcluster", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// waitAnswering waits until a new connection to the server succeeds and
// returns that instant.
func waitAnswering(limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, dsn())
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
