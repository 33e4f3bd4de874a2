package fairpgx

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strconv"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults that ParseConfig applies, pgxpool's own so that a connection
// string means the same here.
const (
	DefaultMaxConnLifetime = time.Hour
	DefaultMaxConnIdleTime = 30 * time.Minute
)

// DefaultMaxConns is the MaxConns of a Config that leaves it zero: the
// greater of 4 and runtime.NumCPU(), as in pgxpool.
func DefaultMaxConns() int32 { return int32(max(4, runtime.NumCPU())) }

// Config describes a Pool. Create one with ParseConfig, which reads
// pgxpool's pool_* parameters; a Config with only ConnConfig set is valid.
type Config struct {
	// ConnConfig says how to connect. It must come from pgx.ParseConfig (or
	// ParseConfig here): NewWithConfig refuses one built by hand. Required.
	ConnConfig *pgx.ConnConfig

	// BeforeConnect may change the copy of ConnConfig used for one new
	// connection (a rotated password, say). An error fails that connect.
	BeforeConnect func(ctx context.Context, cfg *pgx.ConnConfig) error

	// AfterConnect runs on each new connection before first use, e.g. to
	// register types. An error closes it and fails that connect.
	AfterConnect func(ctx context.Context, conn *pgx.Conn) error

	// AfterRelease runs when a healthy connection is released; false
	// closes it instead of reusing it.
	AfterRelease func(conn *pgx.Conn) bool

	// BeforeClose runs just before a connection is closed.
	BeforeClose func(conn *pgx.Conn)

	// MaxConns is the most connections open at once, counting those being
	// opened and closed (pool_max_conns). Zero means DefaultMaxConns().
	MaxConns int32

	// MinConns and MinIdleConns (pool_min_conns, pool_min_idle_conns) keep
	// connections open ahead of need: the larger of the two is how many
	// idle connections the pool keeps when nobody uses them.
	MinConns     int32
	MinIdleConns int32

	// MaxConnLifetime (pool_max_conn_lifetime) retires a connection this
	// long after it was opened, plus a random share of
	// MaxConnLifetimeJitter (pool_max_conn_lifetime_jitter). Zero: forever.
	MaxConnLifetime       time.Duration
	MaxConnLifetimeJitter time.Duration

	// MaxConnIdleTime (pool_max_conn_idle_time) retires a connection idle
	// this long. Zero: forever.
	MaxConnIdleTime time.Duration

	// HealthCheckPeriod (pool_health_check_period): a connection idle
	// longer than this is pinged before it is handed out, and replaced if
	// the ping fails, within the caller's wait. Zero means 1 s. (pgxpool
	// pings a connection idle over 1 s on acquire too; its background sweep
	// is done here by fairpool's keeper, at a quarter of the shortest
	// lifetime limit.)
	HealthCheckPeriod time.Duration

	// AcquireTimeout (pool_acquire_timeout) bounds every wait for a
	// connection. Zero means 5 s; negative means only the context bounds it.
	AcquireTimeout time.Duration

	// ConnectTimeout bounds one connect, including BeforeConnect and
	// AfterConnect, and one session reset. Zero means 30 s.
	ConnectTimeout time.Duration

	// ResetSession (pool_reset_session=true) runs DISCARD ALL on every
	// release, and clears pgx's statement caches to match, so that no
	// setting, temporary table, advisory lock or LISTEN outlives a lease.
	// It costs two round trips per lease. Without it, as in pgxpool, a
	// connection released in a transaction or with a query unfinished is
	// closed, but session settings carry over.
	ResetSession bool

	// WaitOrder is fairpool.FIFO (the default) or fairpool.LIFO.
	WaitOrder fairpool.WaitOrder

	// Logger receives failed connects, closes and resets. Nil discards them.
	Logger *slog.Logger

	// Name (pool_name) identifies the pool in errors and log records.
	Name string
}

// ParseConfig reads a connection string, URL or keyword/value, as
// pgxpool.ParseConfig does: the pool_* parameters below set the pool and
// everything else is pgx's. Unset ones get pgxpool's defaults.
//
//	pool_max_conns                 int > 0      MaxConns (default: max(4, NumCPU))
//	pool_min_conns                 int >= 0     MinConns
//	pool_min_idle_conns            int >= 0     MinIdleConns
//	pool_max_conn_lifetime         duration     MaxConnLifetime (default 1h)
//	pool_max_conn_lifetime_jitter  duration     MaxConnLifetimeJitter
//	pool_max_conn_idle_time        duration     MaxConnIdleTime (default 30m)
//	pool_health_check_period       duration     HealthCheckPeriod (default 1s)
//	pool_acquire_timeout           duration     AcquireTimeout (default 5s)
//	pool_reset_session             bool         ResetSession
//	pool_name                      string       Name
//
// For example:
//
//	postgres://app@db.example.com/app?pool_max_conns=16&pool_acquire_timeout=2s
func ParseConfig(connString string) (*Config, error) {
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		ConnConfig:      cc,
		MaxConnLifetime: DefaultMaxConnLifetime,
		MaxConnIdleTime: DefaultMaxConnIdleTime,
	}
	var perr error
	param := func(key string, parse func(string) error) {
		s, ok := cc.RuntimeParams[key]
		if !ok || perr != nil {
			return
		}
		delete(cc.RuntimeParams, key) // a pool setting, not a server one
		if err := parse(s); err != nil {
			perr = pgconn.NewParseConfigError(connString, "cannot parse "+key, err)
		}
	}
	count := func(dst *int32, least int64) func(string) error {
		return func(s string) error {
			n, err := strconv.ParseInt(s, 10, 32)
			if err == nil && n < least {
				err = fmt.Errorf("must be >= %d, got %d", least, n)
			}
			*dst = int32(n)
			return err
		}
	}
	duration := func(dst *time.Duration) func(string) error {
		return func(s string) (err error) {
			*dst, err = time.ParseDuration(s)
			if err == nil && *dst < 0 {
				err = fmt.Errorf("must be >= 0, got %v", *dst)
			}
			return err
		}
	}
	param("pool_max_conns", count(&cfg.MaxConns, 1))
	param("pool_min_conns", count(&cfg.MinConns, 0))
	param("pool_min_idle_conns", count(&cfg.MinIdleConns, 0))
	param("pool_max_conn_lifetime", duration(&cfg.MaxConnLifetime))
	param("pool_max_conn_lifetime_jitter", duration(&cfg.MaxConnLifetimeJitter))
	param("pool_max_conn_idle_time", duration(&cfg.MaxConnIdleTime))
	param("pool_health_check_period", duration(&cfg.HealthCheckPeriod))
	param("pool_acquire_timeout", func(s string) (err error) {
		cfg.AcquireTimeout, err = time.ParseDuration(s)
		return err
	})
	param("pool_reset_session", func(s string) (err error) {
		cfg.ResetSession, err = strconv.ParseBool(s)
		return err
	})
	param("pool_name", func(s string) error { cfg.Name = s; return nil })
	if perr != nil {
		return nil, perr
	}
	return cfg, nil
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// madeByParseConfig reports whether cc, and the pgconn.Config inside it,
// came from ParseConfig (directly or through Copy). pgx connects with no
// other: it panics instead, and in a pool the first connect runs on a pool
// goroutine, long after NewWithConfig returned, where the panic takes the
// whole program down. Checking here turns that into an error from the
// constructor. pgx keeps the mark in an unexported field and offers no way
// to ask, so reflection reads it; should a later pgx rename the field, the
// check lets the config through and pgx's own panic is what remains.
func madeByParseConfig(cc *pgx.ConnConfig) bool {
	v := reflect.ValueOf(cc).Elem()
	for _, mark := range []reflect.Value{
		v.FieldByName("createdByParseConfig"),                       // pgx's own (the shallower of the two)
		v.FieldByName("Config").FieldByName("createdByParseConfig"), // pgconn's
	} {
		if mark.IsValid() && mark.Kind() == reflect.Bool && !mark.Bool() {
			return false
		}
	}
	return true
}

// Copy returns a copy of c with its own ConnConfig.
func (c *Config) Copy() *Config {
	n := *c
	if c.ConnConfig != nil {
		n.ConnConfig = c.ConnConfig.Copy()
	}
	return &n
}
