//go:build pgxpool

package dropin_test

import "github.com/jackc/pgx/v5/pgxpool"

// The names the drop-in test uses, from pgxpool.
type (
	Pool             = pgxpool.Pool
	Conn             = pgxpool.Conn
	Config           = pgxpool.Config
	ShouldPingParams = pgxpool.ShouldPingParams
)

var (
	New           = pgxpool.New
	NewWithConfig = pgxpool.NewWithConfig
	ParseConfig   = pgxpool.ParseConfig
)

const impl = "pgxpool"
