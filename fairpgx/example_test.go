package fairpgx_test

import (
	"context"
	"log"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// Replacing pgxpool: the same connection string, and the same calls.
func Example() {
	ctx := context.Background()
	pool, err := fairpgx.New(ctx, "postgres://app@localhost/app?pool_max_conns=8&pool_acquire_timeout=2s")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		log.Print(err) // a *fairpool.TimeoutError says why when the pool is busy
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE stock SET n = n - 1 WHERE item = $1", 42)
		return err
	})
	if err != nil {
		log.Print(err)
	}
}

// With shares one connection with nested code: calls on the context it
// passes run on the same connection, in the same transaction.
func ExamplePool_With() {
	ctx := context.Background()
	pool, err := fairpgx.New(ctx, "postgres://app@localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	err = pool.With(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SET LOCAL statement_timeout = '1s'"); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, "SELECT 1") // same connection: no second acquire
		return err
	})
	if err != nil {
		log.Print(err)
	}
}
