package integration

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool/sqlpool"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The driver logs each connection it finds dead; the fault tests kill
	// them on purpose, and assert on what callers see instead.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	goleak.VerifyTestMain(m)
}

// server is one database the tests run against, with the SQL that differs.
type server struct {
	name     string
	driver   string
	dsn      string
	addr     string // host:port, to see whether it answers
	pidSQL   string // the session's id on the server
	sleepSQL string // holds the connection about 2 ms and returns the session's id
	killSQL  func(ids []int64) []string
}

func env(key, def string) string {
	if s := os.Getenv(key); s != "" {
		return s
	}
	return def
}

func postgres(t testing.TB) *server {
	t.Helper()
	dsn := env("FAIRPOOL_PG_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("FAIRPOOL_PG_DSN: %v", err)
	}
	s := &server{
		name: "postgres", driver: "pgx", dsn: dsn,
		addr:     net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)),
		pidSQL:   "SELECT pg_backend_pid()",
		sleepSQL: "SELECT pg_backend_pid() FROM pg_sleep(0.002)",
		killSQL: func(ids []int64) []string {
			var list []string
			for _, id := range ids {
				list = append(list, fmt.Sprint(id))
			}
			return []string{"SELECT pg_terminate_backend(p) FROM unnest(ARRAY[" + strings.Join(list, ",") + "]::int4[]) AS p"}
		},
	}
	s.require(t)
	return s
}

func mariadb(t testing.TB) *server {
	t.Helper()
	dsn := env("FAIRPOOL_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("FAIRPOOL_MYSQL_DSN: %v", err)
	}
	s := &server{
		name: "mariadb", driver: "mysql", dsn: dsn, addr: mc.Addr,
		pidSQL:   "SELECT CONNECTION_ID()",
		sleepSQL: "SELECT CONNECTION_ID() FROM (SELECT SLEEP(0.002)) AS s",
		killSQL: func(ids []int64) []string {
			var stmts []string
			for _, id := range ids {
				stmts = append(stmts, fmt.Sprintf("KILL CONNECTION %d", id))
			}
			return stmts
		},
	}
	s.require(t)
	return s
}

// require skips the test, or fails it under CI, when the server does not
// accept TCP connections.
func (s *server) require(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s at %s does not answer (CI=true, so this fails): %v", s.name, s.addr, err)
		}
		t.Skipf("%s at %s does not answer: %v", s.name, s.addr, err)
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

// open returns a *sql.DB on the server, closed when the test ends.
func (s *server) open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(s.driver, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newPool returns a sqlpool.Pool over a new DB, and checks when the test
// ends that every connection came back and was closed.
func (s *server) newPool(t testing.TB, cfg sqlpool.Config) *sqlpool.Pool {
	t.Helper()
	db := s.open(t)
	if cfg.AcquireTimeout == 0 {
		cfg.AcquireTimeout = 3 * time.Second
	}
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	p, err := sqlpool.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if st := p.Stats(); st.InUse != 0 {
			t.Errorf("%d connections leased at the end of the test", st.InUse)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := db.Stats().OpenConnections; n != 0 {
			t.Errorf("the DB still has %d connections open after Close", n)
		}
	})
	return p
}

var tableSeq atomic.Int64

// table creates a table of (id int, v text) for the test and drops it at
// the end.
func (s *server) table(t testing.TB, admin *sql.DB) string {
	t.Helper()
	name := fmt.Sprintf("fairpool_it_%d_%d", os.Getpid(), tableSeq.Add(1))
	if _, err := admin.Exec("CREATE TABLE " + name + " (id int PRIMARY KEY, v varchar(20))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP TABLE " + name) })
	return name
}

// sessionID returns the server's id of the session a lease of p gets.
func (s *server) sessionID(ctx context.Context, p *sqlpool.Pool) (id int64, err error) {
	err = p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
		return c.QueryRowContext(ctx, s.pidSQL).Scan(&id)
	})
	return id, err
}

// eachServer runs test as a subtest on each server.
func eachServer(t *testing.T, test func(t *testing.T, s *server)) {
	for _, srv := range []struct {
		name string
		mk   func(testing.TB) *server
	}{{"postgres", postgres}, {"mariadb", mariadb}} {
		t.Run(srv.name, func(t *testing.T) { test(t, srv.mk(t)) })
	}
}
