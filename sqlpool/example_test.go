package sqlpool_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/fairpool/fairpool/sqlpool"
)

// A Pool over a DB opened with any driver; with pgx's stdlib driver that
// is sql.Open("pgx", "postgres://..."). Nested WithTx calls join the
// outer transaction.
func Example() {
	db, err := sql.Open("pgx", "postgres://app@localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	pool, err := sqlpool.New(db, sqlpool.Config{MaxSize: 8, Name: "app"})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(context.Background())

	ctx := context.Background()
	err = pool.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE stock SET n = n - 1 WHERE item = $1", 42); err != nil {
			return err
		}
		return recordSale(ctx, pool, 42) // joins this transaction
	})
	if err != nil {
		log.Print(err)
	}
}

func recordSale(ctx context.Context, pool *sqlpool.Pool, item int) error {
	return pool.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO sales (item) VALUES ($1)", item)
		return err
	})
}
