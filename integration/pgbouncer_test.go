package integration

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// bouncerPool is a fairpgx pool through PgBouncer in transaction mode
// (FAIRPOOL_PGBOUNCER_DSN; .ci/run starts one on :6432). It skips when
// PgBouncer does not answer, and fails under CI=true.
func bouncerPool(t *testing.T) *fairpgx.Pool {
	t.Helper()
	dsn := env("FAIRPOOL_PGBOUNCER_DSN", "postgres://postgres@127.0.0.1:6432/test?sslmode=disable&default_query_exec_mode=exec")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PgBouncer at %s does not answer (CI=true, so this fails): %v", u.Host, err)
		}
		t.Skipf("PgBouncer at %s does not answer: %v", u.Host, err)
	}
	c.Close()
	p, err := fairpgx.New(context.Background(), dsn+"&pool_max_conns=4")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestPgBouncerTransactionMode(t *testing.T) {
	p := bouncerPool(t)
	ctx := context.Background()
	var n int
	if err := p.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %d, %v", n, err)
	}
	// A transaction sees its own work and nobody else's, and rolls back.
	if _, err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS fairpool_bouncer (id int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Exec(context.Background(), "DROP TABLE IF EXISTS fairpool_bouncer") })
	err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO fairpool_bouncer VALUES (1), (2)"); err != nil {
			return err
		}
		var in int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM fairpool_bouncer").Scan(&in); err != nil || in != 2 {
			t.Errorf("inside the transaction: %d rows, %v", in, err)
		}
		return context.Canceled // roll back
	})
	if err != context.Canceled {
		t.Fatalf("BeginFunc = %v", err)
	}
	if err := p.QueryRow(ctx, "SELECT count(*) FROM fairpool_bouncer").Scan(&n); err != nil || n != 0 {
		t.Errorf("after rollback: %d rows, %v", n, err)
	}

	// A batch runs in one round trip.
	b := &pgx.Batch{}
	for i := range 5 {
		b.Queue("SELECT $1::int * 2", i)
	}
	br := p.SendBatch(ctx, b)
	for i := range 5 {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil || v != i*2 {
			t.Errorf("batch %d: %d, %v", i, v, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// Calls with a With's context reuse its connection, nested included,
	// and its transaction holds across them.
	err = p.With(ctx, func(ctx context.Context, c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var a, b int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&a); err != nil {
			return err
		}
		if err := p.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&b); err != nil {
			return err
		}
		if a != b {
			t.Errorf("a call with the With's context ran on backend %d, the With's transaction on %d", b, a)
		}
		return p.With(ctx, func(_ context.Context, inner *pgx.Conn) error {
			if inner != c {
				t.Error("nested With got another connection")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Open > 4 || st.InUse != 0 {
		t.Errorf("stats after: %+v", st)
	}
}
