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

// Defaults that ParseConfig applies. They are pgxpool's, so that a
// connection string means the same here, except DefaultAcquireTimeout,
// which pgxpool does not have (its waits end only with the context).
const (
	DefaultMaxConnLifetime   = time.Hour
	DefaultMaxConnIdleTime   = 30 * time.Minute
	DefaultHealthCheckPeriod = time.Minute
	DefaultPingTimeout       = time.Duration(0) // no timeout beyond the acquiring context's
	DefaultAcquireTimeout    = fairpool.DefaultAcquireTimeout
)

// DefaultMaxConns is the MaxConns that ParseConfig sets: the greater of 4
// and runtime.NumCPU(), as in pgxpool. NewWithConfig uses it for a zero
// MaxConns too.
func DefaultMaxConns() int32 { return int32(max(4, runtime.NumCPU())) }

// ShouldPingParams are what Config.ShouldPing decides on, as in pgxpool.
type ShouldPingParams struct {
	Conn         *pgx.Conn
	IdleDuration time.Duration // since the connection was opened or last released
}

// Config describes a Pool. Make one with ParseConfig, which reads the
// pool_* parameters and sets pgxpool's defaults, then change its fields.
// The hooks run on connections the pool owns: they must not keep them.
type Config struct {
	// ConnConfig says how to connect. It must come from ParseConfig (or
	// pgx.ParseConfig): NewWithConfig refuses one built by hand, because
	// pgx would panic on the first connect.
	ConnConfig *pgx.ConnConfig

	// BeforeConnect may change the copy of ConnConfig used for one new
	// connection (a rotated password, say). An error fails that connect.
	BeforeConnect func(context.Context, *pgx.ConnConfig) error

	// AfterConnect runs on each new connection before first use, e.g. to
	// register types. An error closes it and fails that connect.
	AfterConnect func(context.Context, *pgx.Conn) error

	// BeforeAcquire runs before a connection is handed out: false closes it
	// and another is tried.
	//
	// Deprecated: use PrepareConn, which wins when both are set (as in
	// pgxpool).
	BeforeAcquire func(context.Context, *pgx.Conn) bool

	// PrepareConn runs before a connection is handed out by Acquire (and
	// every method that acquires) or AcquireAllIdle, after the ping that
	// ShouldPing asked for:
	//
	//   - true, nil: the connection is handed out;
	//   - true, error: it goes back to the pool and the acquire fails with
	//     the error;
	//   - false, error: it is closed and the acquire fails with the error;
	//   - false, nil: it is closed and another is tried, up to MaxConns+1
	//     times in all.
	PrepareConn func(context.Context, *pgx.Conn) (bool, error)

	// AfterRelease runs when a connection that may be reused is released;
	// false closes it instead.
	AfterRelease func(*pgx.Conn) bool

	// BeforeClose runs just before the pool closes a connection.
	BeforeClose func(*pgx.Conn)

	// ShouldPing says whether a connection about to be handed out is pinged
	// first; one that fails the ping is closed and another is tried. Nil
	// pings those idle for more than a second, as pgxpool does.
	ShouldPing func(context.Context, ShouldPingParams) bool

	// PingTimeout (pool_ping_timeout) bounds that ping, on top of the
	// acquiring context. Zero: only the context bounds it. A ping whose
	// caller gave up is let run up to a minute more, so that a slow but
	// healthy connection is kept rather than closed.
	PingTimeout time.Duration

	// MaxConns (pool_max_conns) is the most connections open at once,
	// counting those being opened and closed. Zero means DefaultMaxConns().
	MaxConns int32

	// MinConns (pool_min_conns) is how many connections, idle or in use,
	// the health check keeps open. MinIdleConns (pool_min_idle_conns) is
	// how many idle ones it keeps. Both are topped up when the pool starts
	// and on every health check; the pool may dip below them in between.
	MinConns     int32
	MinIdleConns int32

	// MaxConnLifetime (pool_max_conn_lifetime) retires a connection this
	// long after it was opened, plus a random share of
	// MaxConnLifetimeJitter (pool_max_conn_lifetime_jitter): on release,
	// on acquire, and idle at the health check. Zero: forever.
	MaxConnLifetime       time.Duration
	MaxConnLifetimeJitter time.Duration

	// MaxConnIdleTime (pool_max_conn_idle_time) is how long a connection
	// may sit idle before the health check closes it, unless that would
	// leave fewer than MinConns. Zero: forever.
	MaxConnIdleTime time.Duration

	// HealthCheckPeriod (pool_health_check_period) is how often a
	// background check closes idle connections past MaxConnLifetime or
	// MaxConnIdleTime and opens connections up to MinConns and
	// MinIdleConns. Zero means DefaultHealthCheckPeriod.
	HealthCheckPeriod time.Duration

	// AcquireTimeout (pool_acquire_timeout) bounds every wait for a
	// connection, with an error that shows the pool's state. Zero means
	// DefaultAcquireTimeout; negative means only the context bounds it,
	// as in pgxpool.
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

	// TrackLeases records who acquired each connection out, for Holders,
	// for timeout errors that name the holders, and to reclaim a Conn
	// dropped without Release. It costs a stack capture per acquire. See
	// fairpool.Config.TrackLeases.
	TrackLeases bool

	// LeakThreshold, if set, logs a warning with the acquiring stack for
	// each connection held longer. It implies TrackLeases.
	LeakThreshold time.Duration

	// Logger receives failed connects, closes and resets. Nil discards them.
	Logger *slog.Logger

	// Name (pool_name) identifies the pool in errors and log records.
	Name string

	// Refused says whether a connect's error means the server is full
	// (see fairpool.Config.Refused): the pool then waits for the
	// connections it holds and probes for room with a jittered back-off
	// instead of failing a waiter. Nil means IsRefusal (SQLSTATE 53300
	// and ErrFleetFull); func(error) bool { return false } restores
	// pgxpool's behaviour, where a refused connect fails the acquire.
	Refused func(error) bool

	// FleetName (pool_fleet_name) and FleetSize (pool_fleet_size) share
	// one budget of FleetSize connections among every pool, in any
	// process, that connects to the same server with the same FleetName:
	// see the package documentation's "A fleet's budget". FleetSize is
	// required with FleetName and must be at least 1.
	FleetName string
	FleetSize int32
}

// checkFleet validates the fleet's fields.
func (c *Config) checkFleet() error {
	switch {
	case c.FleetName == "" && c.FleetSize != 0:
		return fmt.Errorf("fairpgx: Config.FleetSize (%d) needs a FleetName", c.FleetSize)
	case c.FleetName != "" && c.FleetSize < 1:
		return fmt.Errorf("fairpgx: Config.FleetSize must be >= 1 with FleetName %q, got %d", c.FleetName, c.FleetSize)
	}
	return nil
}

// ParseConfig reads a connection string, URL or keyword/value, as
// pgxpool.ParseConfig does: the pool_* parameters below set the pool and
// are not sent to the server; everything else is pgx's. Unset ones get
// the defaults shown, pgxpool's.
//
//	pool_max_conns                 int > 0      MaxConns (default: max(4, NumCPU))
//	pool_min_conns                 int          MinConns (default 0)
//	pool_min_idle_conns            int          MinIdleConns (default 0)
//	pool_max_conn_lifetime         duration     MaxConnLifetime (default 1h)
//	pool_max_conn_lifetime_jitter  duration     MaxConnLifetimeJitter (default 0)
//	pool_max_conn_idle_time        duration     MaxConnIdleTime (default 30m)
//	pool_health_check_period       duration     HealthCheckPeriod (default 1m)
//	pool_ping_timeout              duration     PingTimeout (default 0: none)
//
// and fairpgx's own:
//
//	pool_acquire_timeout           duration     AcquireTimeout (default 5s)
//	pool_reset_session             bool         ResetSession
//	pool_name                      string       Name
//	pool_fleet_name                string       FleetName
//	pool_fleet_size                int          FleetSize
//
// A value that does not parse is an error that names the parameter, as in
// pgxpool ("cannot parse pool_max_conns", "pool_max_conns too small").
// For example:
//
//	postgres://app@db.example.com/app?pool_max_conns=16&pool_acquire_timeout=2s
func ParseConfig(connString string) (*Config, error) {
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		ConnConfig:        cc,
		MaxConns:          DefaultMaxConns(),
		MaxConnLifetime:   DefaultMaxConnLifetime,
		MaxConnIdleTime:   DefaultMaxConnIdleTime,
		HealthCheckPeriod: DefaultHealthCheckPeriod,
		PingTimeout:       DefaultPingTimeout,
		AcquireTimeout:    DefaultAcquireTimeout,
	}
	var perr error
	// param takes key out of the server's parameters, whether or not it
	// parses: pgxpool does so, and a pool setting must never reach the
	// server, where it fails every connect.
	param := func(key string, parse func(string) error) {
		s, ok := cc.RuntimeParams[key]
		if !ok {
			return
		}
		delete(cc.RuntimeParams, key)
		if err := parse(s); err != nil && perr == nil {
			perr = pgconn.NewParseConfigError(connString, "cannot parse "+key, err)
		}
	}
	count := func(dst *int32) func(string) error {
		return func(s string) error {
			n, err := strconv.ParseInt(s, 10, 32)
			*dst = int32(n)
			return err
		}
	}
	duration := func(dst *time.Duration) func(string) (err error) {
		return func(s string) (err error) {
			*dst, err = time.ParseDuration(s)
			return err
		}
	}
	param("pool_max_conns", count(&cfg.MaxConns))
	if perr == nil && cfg.MaxConns < 1 {
		perr = pgconn.NewParseConfigError(connString, "pool_max_conns too small", nil)
	}
	param("pool_min_conns", count(&cfg.MinConns))
	param("pool_min_idle_conns", count(&cfg.MinIdleConns))
	param("pool_max_conn_lifetime", duration(&cfg.MaxConnLifetime))
	param("pool_max_conn_idle_time", duration(&cfg.MaxConnIdleTime))
	param("pool_health_check_period", duration(&cfg.HealthCheckPeriod))
	param("pool_max_conn_lifetime_jitter", duration(&cfg.MaxConnLifetimeJitter))
	param("pool_ping_timeout", duration(&cfg.PingTimeout))
	param("pool_acquire_timeout", duration(&cfg.AcquireTimeout))
	param("pool_reset_session", func(s string) (err error) {
		cfg.ResetSession, err = strconv.ParseBool(s)
		return err
	})
	param("pool_name", func(s string) error { cfg.Name = s; return nil })
	param("pool_fleet_name", func(s string) error { cfg.FleetName = s; return nil })
	param("pool_fleet_size", count(&cfg.FleetSize))
	if perr != nil {
		return nil, perr
	}
	return cfg, nil
}

// Copy returns a copy of c with its own ConnConfig, safe to change.
func (c *Config) Copy() *Config {
	n := *c
	if c.ConnConfig != nil {
		n.ConnConfig = c.ConnConfig.Copy()
	}
	return &n
}

// ConnString returns the connection string ParseConfig read.
func (c *Config) ConnString() string { return c.ConnConfig.ConnString() }

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
