package sqlpool

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/fairpool/fairpool"
)

// Config describes a Pool. Only MaxSize is required; the other fields mean
// what they mean in fairpool.Config, with the same defaults.
type Config struct {
	// MaxSize is the most connections open at once. Required. New also sets
	// it as the DB's MaxOpenConns, so the DB can never exceed it either.
	MaxSize int

	// MinIdle, MaxIdle, MaxLifetime, MaxLifetimeJitter, MaxIdleTime,
	// AcquireTimeout (default 5 s), OpenTimeout (default 30 s), CheckAfter
	// (default 1 s), WaitOrder, Logger and Name: see fairpool.Config.
	MinIdle           int
	MaxIdle           int
	MaxLifetime       time.Duration
	MaxLifetimeJitter time.Duration
	MaxIdleTime       time.Duration
	AcquireTimeout    time.Duration
	OpenTimeout       time.Duration
	CheckAfter        time.Duration
	WaitOrder         fairpool.WaitOrder
	Logger            *slog.Logger
	Name              string

	// TrackLeases records who holds each connection: Holders lists them,
	// with the file:line of the code that called WithConn or WithTx (not
	// a line of sqlpool's), and timeout errors name the oldest. It costs a
	// stack capture per lease. LeakThreshold logs a warning for each lease
	// held longer, and counts it in Stats.Leaks; it implies TrackLeases.
	// See fairpool.Config.
	TrackLeases   bool
	LeakThreshold time.Duration

	// Dialect says how sessions are cleaned between leases. Zero
	// (AutoDialect) picks it from the DB's driver.
	Dialect Dialect

	// SkipSessionReset keeps only the driver's own check between leases (a
	// transaction left open or a broken connection is still discarded with
	// pgx's stdlib driver), and skips the dialect's SQL reset, which costs a
	// round trip per lease: more than half the throughput with a query as
	// short as SELECT 1, a tenth with a 1 ms one. Without it sessions are
	// treated as database/sql and pgxpool treat them. Set it
	// when no code changes session settings, and close every Rows: without
	// the reset, rows left open go unnoticed, and the release waits for
	// them to close, as fn's context ends or, for rows on another context,
	// up to OpenTimeout, after which the connection is not reused.
	SkipSessionReset bool

	// Refused says whether an error from opening a connection means the
	// server is full: such an open fails no caller; the pool waits for
	// the connections it holds and probes for room with back-off (see
	// fairpool.Config.Refused). Nil means IsRefusal, which knows
	// PostgreSQL's 53300 and MySQL's 1040 and 1203.
	Refused func(error) bool

	// Reset, if set, runs on release after the dialect's reset, with the
	// connection's session otherwise clean. An error closes the connection,
	// counted in Stats.ClosedReset.
	Reset func(ctx context.Context, conn *sql.Conn) error
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
