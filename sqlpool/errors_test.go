package sqlpool_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
)

// oneLine fails t if msg spans lines: log lines and alerts show only the
// first.
func oneLine(t *testing.T, msg string) {
	t.Helper()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error spans lines: %q", msg)
	}
}

// TestConfigErrorsNameSqlpoolsConfig: the fields the user set on
// sqlpool.Config are named as such, not as fairpool.Config's.
func TestConfigErrorsNameSqlpoolsConfig(t *testing.T) {
	db, _ := newFakeDB(t)
	for _, tc := range []struct {
		cfg  sqlpool.Config
		want string
	}{
		{sqlpool.Config{}, "sqlpool: Config.MaxSize must be >= 1, got 0"},
		{sqlpool.Config{MaxSize: 1, LeakThreshold: -1}, "sqlpool: Config.LeakThreshold must be >= 0"},
		{sqlpool.Config{MaxSize: 1, MinIdle: 2}, "sqlpool: Config.MinIdle"},
		{sqlpool.Config{MaxSize: 1, Dialect: 9}, "sqlpool: Config.Dialect"},
	} {
		_, err := sqlpool.New(db, tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "fairpool") {
			t.Errorf("New(%+v): %v, want %q...", tc.cfg, err, tc.want)
		}
	}
}

// TestErrorsOfAnUnnamedPool: a pool without a Name says nothing about its
// name, rather than `pool ""`; a named one names itself.
func TestErrorsOfAnUnnamedPool(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"", "app"} {
		db, _ := newFakeDB(t)
		p := newPool(t, db, sqlpool.Config{Name: name, MaxSize: 1, AcquireTimeout: 10 * time.Millisecond})
		var timeout, broken, nested error
		err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
			timeout = p.WithConn(context.Background(), func(context.Context, *sql.Conn) error { return nil })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		broken = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "BREAK")
			return err
		})
		nested = p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			return p.WithTx(ctx, &sql.TxOptions{ReadOnly: true}, func(context.Context, *sql.Tx) error { return nil })
		})
		for what, err := range map[string]error{"timeout": timeout, "broken": broken, "nested options": nested} {
			if err == nil {
				t.Errorf("%s %q: no error", what, name)
				continue
			}
			msg := err.Error()
			oneLine(t, msg)
			if strings.Contains(msg, `pool ""`) || strings.Contains(msg, "()") {
				t.Errorf("%s: %q shows an empty name", what, msg)
			}
			if name != "" && !strings.Contains(msg, `pool "app"`) {
				t.Errorf("%s: %q does not name the pool", what, msg)
			}
		}
		if !errors.Is(nested, sqlpool.ErrNestedTxOptions) || !errors.Is(broken, fairpool.ErrBadConn) || !errors.Is(timeout, fairpool.ErrTimeout) {
			t.Errorf("the errors no longer unwrap: %v; %v; %v", nested, broken, timeout)
		}
	}
}

// TestNestedTxErrorsNameThePool: a nested WithTx that fails or panics
// dooms the transaction, and the error the outermost returns names the
// pool once and still unwraps to the nested error.
func TestNestedTxErrorsNameThePool(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{Name: "app", MaxSize: 1})
	ctx := context.Background()
	errInner := errors.New("inner failed")
	err := p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		p.WithTx(ctx, &sql.TxOptions{ReadOnly: true}, func(context.Context, *sql.Tx) error { return errInner })
		return nil // swallowed: the transaction is doomed all the same
	})
	want := `sqlpool: pool "app": transaction rolled back: a nested WithTx failed: nested WithTx asks for TxOptions other than the enclosing transaction's`
	if err == nil || err.Error() != want || !errors.Is(err, sqlpool.ErrNestedTxOptions) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	err = p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		func() {
			defer func() { recover() }()
			p.WithTx(ctx, nil, func(context.Context, *sql.Tx) error { panic("boom") })
		}()
		return nil
	})
	want = `sqlpool: pool "app": transaction rolled back: a nested WithTx failed: a nested WithTx panicked`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	err = p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		p.WithTx(ctx, nil, func(context.Context, *sql.Tx) error { return errInner })
		return nil
	})
	want = `sqlpool: pool "app": transaction rolled back: a nested WithTx failed: inner failed`
	if err == nil || err.Error() != want || !errors.Is(err, errInner) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestCoreErrorsOfAnUnnamedPool: fairpool's own error types leave the name
// out when there is none.
func TestCoreErrorsOfAnUnnamedPool(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fairpool.TimeoutError{Err: fairpool.ErrTimeout, MaxSize: 1}, "fairpool: gave up after waiting 0s (timed out): MaxSize 1"},
		{&fairpool.TimeoutError{Pool: "app", Err: fairpool.ErrTimeout}, `fairpool: pool "app": gave up after`},
		{&fairpool.OpenError{Err: errors.New("refused")}, "fairpool: open: refused"},
		{&fairpool.OpenError{Pool: "app", Err: errors.New("refused")}, `fairpool: pool "app": open: refused`},
	} {
		if got := tc.err.Error(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("got %q, want %q...", got, tc.want)
		}
	}
	for _, name := range []string{"", "app"} {
		p, err := fairpool.New(fairpool.Config[int]{Name: name, MaxSize: 1, Open: func(context.Context) (int, error) { return 1, nil }})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Require(context.Background(), func(context.Context, int) error { return nil })
		want := "fairpool: no lease bound to the context"
		if name != "" {
			want += ` (pool "app")`
		}
		if !errors.Is(err, fairpool.ErrNoLease) || err.Error() != want {
			t.Errorf("Require: %q, want %q", err, want)
		}
		p.Close(context.Background())
	}
}
