package sqlpool_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
)

// here returns "file:line" of the line after the caller's, where the tests
// put the WithConn or WithTx whose call site they check.
func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line+1)
}

// TestHoldersNameTheCallerNotSqlpool: with TrackLeases, a holder's Caller
// is the line that called WithConn or WithTx, not a line of sqlpool or of
// database/sql; Waiters lists a goroutine waiting behind it.
func TestHoldersNameTheCallerNotSqlpool(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1, TrackLeases: true, AcquireTimeout: -1})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		with func(site *string, fn func() error) error
	}{
		{"WithConn", func(site *string, fn func() error) error {
			*site = here()
			return p.WithConn(ctx, func(context.Context, *sql.Conn) error { return fn() })
		}},
		{"WithTx", func(site *string, fn func() error) error {
			*site = here()
			return p.WithTx(ctx, nil, func(context.Context, *sql.Tx) error { return fn() })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var site string
			err := tc.with(&site, func() error {
				hs := p.Holders()
				if len(hs) != 1 || hs[0].Caller != site || hs[0].Goroutine == 0 {
					return fmt.Errorf("holders %+v, want one at %s", hs, site)
				}
				wctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- p.WithConn(wctx, func(context.Context, *sql.Conn) error { return nil }) }()
				for len(p.Waiters()) == 0 {
					runtime.Gosched()
				}
				ws := p.Waiters()
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					return fmt.Errorf("waiter: %v, want context.Canceled", err)
				}
				if len(ws) != 1 || ws[0] <= 0 {
					return fmt.Errorf("waiters %v, want one", ws)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if hs := p.Holders(); len(hs) != 0 {
				t.Errorf("holders after the lease ended: %+v", hs)
			}
		})
	}
}

// TestHoldersNeedTracking: without TrackLeases nothing is recorded.
func TestHoldersNeedTracking(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	err := p.WithConn(context.Background(), func(context.Context, *sql.Conn) error {
		if hs := p.Holders(); len(hs) != 0 {
			return fmt.Errorf("holders %+v without TrackLeases", hs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a slog.Handler that keeps the records it gets.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// leakWarnings returns the text of each warning about a lease held too
// long, with its attributes.
func (r *recorder) leakWarnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level != slog.LevelWarn {
			continue
		}
		var b strings.Builder
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// TestLeakThresholdWarnsWithTheCaller: a lease held past LeakThreshold is
// logged once, naming the line that called WithConn, and counted in
// Stats.Leaks.
func TestLeakThresholdWarnsWithTheCaller(t *testing.T) {
	db, _ := newFakeDB(t)
	rec := &recorder{}
	p := newPool(t, db, sqlpool.Config{MaxSize: 1, LeakThreshold: 20 * time.Millisecond, Logger: slog.New(rec)})
	site := here()
	err := p.WithConn(context.Background(), func(context.Context, *sql.Conn) error {
		deadline := time.Now().Add(10 * time.Second)
		for p.Stats().Leaks == 0 {
			if time.Now().After(deadline) {
				return errors.New("no leak counted within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ws := rec.leakWarnings()
	if len(ws) != 1 || !strings.Contains(ws[0], site) {
		t.Errorf("warnings %q, want one naming %s", ws, site)
	}
	if hs := p.Holders(); len(hs) != 0 {
		t.Errorf("LeakThreshold alone should track, and forget the lease once released: %+v", hs)
	}
}

// TestTimeoutNamesTheHolder: with TrackLeases, a WithConn that times out
// says which line holds the connection.
func TestTimeoutNamesTheHolder(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{Name: "app", MaxSize: 1, TrackLeases: true, AcquireTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	site := here()
	err := p.WithConn(ctx, func(context.Context, *sql.Conn) error {
		done := make(chan error)
		go func() { done <- p.WithConn(ctx, func(context.Context, *sql.Conn) error { return nil }) }()
		return <-done
	})
	var te *fairpool.TimeoutError
	if !errors.As(err, &te) || len(te.Holders) != 1 || te.Holders[0].Caller != site || !strings.Contains(err.Error(), site) {
		t.Errorf("err %v, want a timeout naming the holder at %s", err, site)
	}
}
