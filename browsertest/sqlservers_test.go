package browsertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// These tests need the local PostgreSQL and MariaDB (FAIRPOOL_PG_DSN and
// FAIRPOOL_MYSQL_DSN override where). They run no statement but SELECTs
// and sleeps of their own sessions.

func init() {
	// The driver logs a connection it finds closed; none is expected, and
	// the tests assert on what callers see.
	mysql.SetLogger(log.New(io.Discard, "", 0))
}

type sqlServer struct {
	name, driver, dsn, addr string
}

func envOr(key, def string) string {
	if s := os.Getenv(key); s != "" {
		return s
	}
	return def
}

func postgres() sqlServer {
	return sqlServer{name: "postgres", driver: "pgx", addr: "127.0.0.1:5432",
		dsn: envOr("FAIRPOOL_PG_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")}
}

func mariadb() sqlServer {
	return sqlServer{name: "mariadb", driver: "mysql", addr: "127.0.0.1:3306",
		dsn: envOr("FAIRPOOL_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")}
}

// open returns a DB on s, closed when the test ends. Without the server
// the test is skipped, or fails under CI=true.
func (s sqlServer) open(t *testing.T) *sql.DB {
	t.Helper()
	addr := s.addr
	if s.driver == "mysql" {
		if c, err := mysql.ParseDSN(s.dsn); err == nil {
			addr = c.Addr
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s at %s does not answer (CI=true, so this fails): %v", s.name, addr, err)
		}
		t.Skipf("%s at %s does not answer: %v", s.name, addr, err)
	} else {
		c.Close()
	}
	db, err := sql.Open(s.driver, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSQLPool returns a Pool on a new DB on s, closed when the test ends.
func (s sqlServer) newSQLPool(t *testing.T, cfg sqlpool.Config) *sqlpool.Pool {
	t.Helper()
	p, err := sqlpool.New(s.open(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func eachSQLServer(t *testing.T, test func(t *testing.T, s sqlServer)) {
	for _, s := range []sqlServer{postgres(), mariadb()} {
		t.Run(s.name, func(t *testing.T) { test(t, s) })
	}
}

// logRecorder keeps the warnings about leases held too long, each with
// the caller it names.
type logRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelWarn && strings.Contains(rec.Message, "held too long") {
		msg := rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "caller" {
				msg += " at " + a.Value.String()
			}
			return true
		})
		r.mu.Lock()
		r.warnings = append(r.warnings, msg)
		r.mu.Unlock()
	}
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.warnings...)
}

// TestSQLPoolTracksLeasesOnRealServers: through sqlpool, on PostgreSQL and
// MariaDB, a holder's Caller is this file's line that called WithTx (not
// sqlpool's, nor database/sql's), a waiter is listed, a timeout names the
// holder, and a lease held past LeakThreshold is warned about once, at
// that line, and counted.
func TestSQLPoolTracksLeasesOnRealServers(t *testing.T) {
	eachSQLServer(t, func(t *testing.T, s sqlServer) {
		rec := &logRecorder{}
		p := s.newSQLPool(t, sqlpool.Config{
			Name: "app", MaxSize: 1, AcquireTimeout: 300 * time.Millisecond,
			LeakThreshold: 100 * time.Millisecond, Logger: slog.New(rec),
		})
		ctx := context.Background()
		site := here()
		err := p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				return err
			}
			if hs := p.Holders(); len(hs) != 1 || hs[0].Caller != site {
				return fmt.Errorf("holders %+v, want one at %s", hs, site)
			}
			// Another goroutine waits, and times out naming the holder.
			done := make(chan error, 1)
			go func() {
				done <- p.WithConn(context.Background(), func(context.Context, *sql.Conn) error { return nil })
			}()
			spinUntil(t, "a waiter", func() bool { return len(p.Waiters()) == 1 })
			err := <-done
			var te *fairpool.TimeoutError
			if !errors.As(err, &te) || len(te.Holders) != 1 || te.Holders[0].Caller != site || !strings.Contains(err.Error(), `pool "app"`) {
				return fmt.Errorf("waiter: %v, want a timeout naming the holder at %s", err, site)
			}
			spinUntil(t, "the leak warning", func() bool { return p.Stats().Leaks == 1 })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ws := rec.list(); len(ws) != 1 || !strings.HasSuffix(ws[0], " at "+site) {
			t.Errorf("warnings %q, want one at %s", ws, site)
		}
		if hs, ws := p.Holders(), p.Waiters(); len(hs) != 0 || len(ws) != 0 {
			t.Errorf("after the lease: holders %v, waiters %v", hs, ws)
		}
	})
}

// TestDirectQueryBlocksOnceThePoolIsFull shows on the real servers what
// sqlpool's doc warns of: with the Pool holding MaxSize connections, all
// idle, a query on the DB itself waits until its context ends.
func TestDirectQueryBlocksOnceThePoolIsFull(t *testing.T) {
	eachSQLServer(t, func(t *testing.T, s sqlServer) {
		p := s.newSQLPool(t, sqlpool.Config{Name: "app", MaxSize: 2})
		ctx := context.Background()
		var wg, holding sync.WaitGroup
		release := make(chan struct{})
		holding.Add(2)
		for range 2 { // two leases at once, so the Pool opens two
			wg.Go(func() {
				err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error {
					holding.Done()
					<-release
					return c.PingContext(ctx)
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		holding.Wait()
		close(release)
		wg.Wait()
		if st := p.Stats(); st.Open != 2 || st.Idle != 2 {
			t.Fatalf("open %d, idle %d; want both connections idle in the Pool", st.Open, st.Idle)
		}
		const limit = 200 * time.Millisecond
		qctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		start := time.Now()
		var one int
		err := p.DB().QueryRowContext(qctx, "SELECT 1").Scan(&one)
		if waited := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || waited < limit {
			t.Errorf("direct query: %v after %v, want context.DeadlineExceeded after %v", err, waited, limit)
		}
		if err := p.WithConn(ctx, func(ctx context.Context, c *sql.Conn) error { return c.QueryRowContext(ctx, "SELECT 1").Scan(&one) }); err != nil {
			t.Errorf("through the Pool: %v", err)
		}
	})
}
