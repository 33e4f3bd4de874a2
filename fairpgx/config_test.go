package fairpgx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

func TestParseConfigReadsPoolParameters(t *testing.T) {
	for _, cs := range []string{
		"postgres://u@h/db?pool_max_conns=16&pool_min_conns=2&pool_min_idle_conns=3&pool_max_conn_lifetime=90m" +
			"&pool_max_conn_lifetime_jitter=5m&pool_max_conn_idle_time=1m&pool_health_check_period=250ms" +
			"&pool_acquire_timeout=2s&pool_reset_session=true&pool_name=orders&application_name=app",
		"host=h user=u dbname=db pool_max_conns=16 pool_min_conns=2 pool_min_idle_conns=3 pool_max_conn_lifetime=90m " +
			"pool_max_conn_lifetime_jitter=5m pool_max_conn_idle_time=1m pool_health_check_period=250ms " +
			"pool_acquire_timeout=2s pool_reset_session=true pool_name=orders application_name=app",
	} {
		cfg, err := fairpgx.ParseConfig(cs)
		if err != nil {
			t.Fatalf("%s: %v", cs, err)
		}
		type settings struct {
			MaxConns, MinConns, MinIdleConns                              int32
			Lifetime, Jitter, IdleTime, HealthCheckPeriod, AcquireTimeout time.Duration
			ResetSession                                                  bool
			Name                                                          string
		}
		want := settings{16, 2, 3, 90 * time.Minute, 5 * time.Minute, time.Minute, 250 * time.Millisecond, 2 * time.Second, true, "orders"}
		got := settings{cfg.MaxConns, cfg.MinConns, cfg.MinIdleConns, cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter,
			cfg.MaxConnIdleTime, cfg.HealthCheckPeriod, cfg.AcquireTimeout, cfg.ResetSession, cfg.Name}
		if got != want {
			t.Errorf("%s:\ngot  %+v\nwant %+v", cs, got, want)
		}
		for k := range cfg.ConnConfig.RuntimeParams {
			if strings.HasPrefix(k, "pool_") {
				t.Errorf("%s: %s left in RuntimeParams, would be sent to the server", cs, k)
			}
		}
		if cfg.ConnConfig.RuntimeParams["application_name"] != "app" {
			t.Errorf("%s: application_name lost: %v", cs, cfg.ConnConfig.RuntimeParams)
		}
	}
}

func TestParseConfigDefaultsArePgxpools(t *testing.T) {
	cfg, err := fairpgx.ParseConfig("postgres://u@h/db")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConnLifetime != time.Hour || cfg.MaxConnIdleTime != 30*time.Minute || cfg.MaxConns != 0 {
		t.Errorf("defaults: lifetime %v, idle time %v, MaxConns %d; want 1h, 30m, 0 (= DefaultMaxConns at New)",
			cfg.MaxConnLifetime, cfg.MaxConnIdleTime, cfg.MaxConns)
	}
	p, err := fairpgx.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, want := p.Config().MaxConns, fairpgx.DefaultMaxConns(); got != want || want < 4 {
		t.Errorf("MaxConns %d, want DefaultMaxConns() = %d (>= 4)", got, want)
	}
	if got := p.Stat().TotalConns(); got != 0 {
		t.Errorf("New opened %d connections, want none until first use", got)
	}
}

func TestParseConfigRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ param, want string }{
		{"pool_max_conns=0", "pool_max_conns"},
		{"pool_max_conns=x", "pool_max_conns"},
		{"pool_min_conns=-1", "pool_min_conns"},
		{"pool_max_conn_lifetime=soon", "pool_max_conn_lifetime"},
		{"pool_max_conn_idle_time=-1s", "pool_max_conn_idle_time"},
		{"pool_acquire_timeout=5", "pool_acquire_timeout"},
		{"pool_reset_session=maybe", "pool_reset_session"},
	} {
		_, err := fairpgx.ParseConfig("postgres://u:secret@h/db?" + tc.param)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one naming %s", tc.param, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error shows the password: %v", tc.param, err)
		}
	}
}

func TestNewWithConfigValidates(t *testing.T) {
	cc, err := pgx.ParseConfig("postgres://u@h/db")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  *fairpgx.Config
		want string
	}{
		{nil, "ConnConfig"},
		{&fairpgx.Config{}, "ConnConfig"},
		{&fairpgx.Config{ConnConfig: cc, MaxConns: 2, MinConns: 3}, "MinConns"},
		{&fairpgx.Config{ConnConfig: cc, MaxConns: 2, MinIdleConns: 3}, "MinIdleConns"},
		{&fairpgx.Config{ConnConfig: cc, MaxConns: -1}, "MaxConns"},
		{&fairpgx.Config{ConnConfig: cc, MaxConnLifetime: time.Second, MaxConnLifetimeJitter: time.Minute}, "MaxLifetimeJitter"},
	} {
		p, err := fairpgx.NewWithConfig(context.Background(), tc.cfg)
		if err == nil {
			p.Close()
			t.Errorf("%+v: no error, want one naming %s", tc.cfg, tc.want)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

// TestNewWithConfigRefusesHandBuiltConnConfig: pgx connects only with a
// ConnConfig made by ParseConfig and panics otherwise, on whichever
// goroutine opens the first connection, which in a pool is one of the
// pool's own. NewWithConfig must say so at once, as an error, for a
// ConnConfig built by hand at either level (pgx's or pgconn's), and must
// still take one that ParseConfig made and Copy copied.
func TestNewWithConfigRefusesHandBuiltConnConfig(t *testing.T) {
	parsed, err := pgx.ParseConfig("postgres://u@h/db")
	if err != nil {
		t.Fatal(err)
	}
	pgconnOnly := &pgx.ConnConfig{Config: *parsed.Config.Copy()} // pgconn's part parsed, pgx's not
	for name, cc := range map[string]*pgx.ConnConfig{
		"zero pgx.ConnConfig":                          {},
		"pgx.ConnConfig around a parsed pgconn.Config": pgconnOnly,
	} {
		p, err := fairpgx.NewWithConfig(context.Background(), &fairpgx.Config{ConnConfig: cc})
		if err == nil {
			p.Close()
			t.Errorf("%s: NewWithConfig took it; want an error, not pgx's panic on the first connect", name)
		} else if !strings.Contains(err.Error(), "ConnConfig") || !strings.Contains(err.Error(), "ParseConfig") {
			t.Errorf("%s: %v; want an error naming ConnConfig and ParseConfig", name, err)
		}
	}
	p, err := fairpgx.NewWithConfig(context.Background(), &fairpgx.Config{ConnConfig: parsed.Copy()})
	if err != nil {
		t.Fatalf("a copy of a parsed ConnConfig: %v", err)
	}
	p.Close()
}
