package fairpgx_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// The tests talk to the PostgreSQL at FAIRPOOL_PG_DSN. They skip when it
// does not answer, unless CI=true, where they fail.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dsn() string {
	if s := os.Getenv("FAIRPOOL_PG_DSN"); s != "" {
		return s
	}
	return defaultDSN
}

// requirePG skips the test, or fails it under CI, when PostgreSQL does not
// accept TCP connections.
func requirePG(t testing.TB) {
	t.Helper()
	cc, err := pgx.ParseConfig(dsn())
	if err != nil {
		t.Fatalf("FAIRPOOL_PG_DSN: %v", err)
	}
	addr := net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port))
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s does not answer (CI=true, so this fails): %v", addr, err)
		}
		t.Skipf("PostgreSQL at %s does not answer: %v", addr, err)
	}
	c.Close()
}

// destructiveEnv names the variable that lets a destructive test run
// outside CI.
const destructiveEnv = "FAIRPOOL_DESTRUCTIVE"

// destructive skips t unless CI=true or FAIRPOOL_DESTRUCTIVE=1. It guards
// the tests that reach beyond their own sessions, such as stopping the
// server: on a developer's machine that server is shared with whatever
// else they run, and running the tests must not take it away from them.
// CI's servers are there for the tests, so CI runs them.
func destructive(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv(destructiveEnv) == "1" {
		return
	}
	t.Skipf("this test %s: it runs only with CI=true or %s=1", what, destructiveEnv)
}

var appSeq atomic.Int64

// appName is a unique application_name, so that a test finds its own
// backends in pg_stat_activity and never touches anyone else's.
func appName(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("fairpgx_%d_%d_%s", os.Getpid(), appSeq.Add(1), name)
}

// testConfig returns a Config for the test server whose connections carry
// a unique application_name, which it also returns.
func testConfig(t testing.TB, maxConns int32) (*fairpgx.Config, string) {
	t.Helper()
	requirePG(t)
	cfg, err := fairpgx.ParseConfig(dsn())
	if err != nil {
		t.Fatal(err)
	}
	app := appName(t)
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.MaxConns = maxConns
	cfg.Name = app
	return cfg, app
}

// newPool makes a pool from cfg and closes it when the test ends, checking
// that every connection came back and that the server saw them all go.
func newPool(t testing.TB, cfg *fairpgx.Config) *fairpgx.Pool {
	t.Helper()
	p, err := fairpgx.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.ConnConfig.RuntimeParams["application_name"]
	t.Cleanup(func() {
		if s := p.Stats(); s.InUse != 0 {
			t.Errorf("%d connections still acquired at the end of the test", s.InUse)
		}
		p.Close()
		if s := p.Stats(); s.Open != 0 {
			t.Errorf("after Close: %d connections open", s.Open)
		}
		if app != "" {
			waitBackends(t, app, 0)
		}
	})
	return p
}

// adminConn is a connection outside any pool, for looking at and killing
// the pool's backends.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// backends counts the server's sessions with application_name app.
func backends(ctx context.Context, admin *pgx.Conn, app string) (int, error) {
	var n int
	err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n)
	return n, err
}

// waitBackends waits up to 5 s for the server to show want sessions of
// app: a backend leaves pg_stat_activity shortly after its client closes.
func waitBackends(t testing.TB, app string, want int) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn())
	if err != nil {
		t.Errorf("admin connection: %v", err)
		return
	}
	defer admin.Close(ctx)
	var n int
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err = backends(ctx, admin, app)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("server shows %d sessions of %s, want %d (err %v)", n, app, want, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backendPID is the server process of the connection that runs it.
func backendPID(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (uint32, error) {
	var pid uint32
	err := q.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	return pid, err
}
