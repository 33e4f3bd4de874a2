package fairpgx_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// allPoolParams sets every pool_* parameter pgxpool v5.12 reads, plus
// fairpgx's own, to values other than the defaults.
const allPoolParams = "pool_max_conns=16&pool_min_conns=2&pool_min_idle_conns=3&pool_max_conn_lifetime=90m" +
	"&pool_max_conn_lifetime_jitter=5m&pool_max_conn_idle_time=1m&pool_health_check_period=250ms" +
	"&pool_ping_timeout=750ms&pool_acquire_timeout=2s&pool_reset_session=true&pool_name=orders"

func TestParseConfigReadsPoolParameters(t *testing.T) {
	kv := strings.ReplaceAll(allPoolParams, "&", " ")
	for _, cs := range []string{
		"postgres://u@h/db?" + allPoolParams + "&application_name=app",
		"host=h user=u dbname=db " + kv + " application_name=app",
	} {
		cfg, err := fairpgx.ParseConfig(cs)
		if err != nil {
			t.Fatalf("%s: %v", cs, err)
		}
		type settings struct {
			MaxConns, MinConns, MinIdleConns                                           int32
			Lifetime, Jitter, IdleTime, HealthCheckPeriod, PingTimeout, AcquireTimeout time.Duration
			ResetSession                                                               bool
			Name                                                                       string
		}
		want := settings{16, 2, 3, 90 * time.Minute, 5 * time.Minute, time.Minute, 250 * time.Millisecond,
			750 * time.Millisecond, 2 * time.Second, true, "orders"}
		got := settings{cfg.MaxConns, cfg.MinConns, cfg.MinIdleConns, cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter,
			cfg.MaxConnIdleTime, cfg.HealthCheckPeriod, cfg.PingTimeout, cfg.AcquireTimeout, cfg.ResetSession, cfg.Name}
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
		if cfg.ConnString() != cs {
			t.Errorf("ConnString() = %q, want %q", cfg.ConnString(), cs)
		}
	}
}

// TestParseConfigMatchesPgxpool parses the same strings with pgxpool and
// fairpgx: every pool setting pgxpool has comes out the same, and the
// defaults are pgxpool's.
func TestParseConfigMatchesPgxpool(t *testing.T) {
	for _, cs := range []string{
		"postgres://u@h/db",
		"postgres://u@h/db?pool_max_conns=16&pool_min_conns=2&pool_min_idle_conns=3&pool_max_conn_lifetime=90m" +
			"&pool_max_conn_lifetime_jitter=5m&pool_max_conn_idle_time=1m&pool_health_check_period=250ms&pool_ping_timeout=750ms",
		"postgres://u@h/db?pool_min_conns=-1&pool_max_conn_idle_time=-1s", // pgxpool takes these as they are
	} {
		f, err := fairpgx.ParseConfig(cs)
		if err != nil {
			t.Fatalf("fairpgx: %s: %v", cs, err)
		}
		x, err := pgxpool.ParseConfig(cs)
		if err != nil {
			t.Fatalf("pgxpool: %s: %v", cs, err)
		}
		type common struct {
			MaxConns, MinConns, MinIdleConns                           int32
			Lifetime, Jitter, IdleTime, HealthCheckPeriod, PingTimeout time.Duration
			Params                                                     string
		}
		pick := func(mc, mn, mi int32, l, j, i, h, pt time.Duration, rp map[string]string) common {
			return common{mc, mn, mi, l, j, i, h, pt, fmt.Sprint(rp)}
		}
		got := pick(f.MaxConns, f.MinConns, f.MinIdleConns, f.MaxConnLifetime, f.MaxConnLifetimeJitter,
			f.MaxConnIdleTime, f.HealthCheckPeriod, f.PingTimeout, f.ConnConfig.RuntimeParams)
		want := pick(x.MaxConns, x.MinConns, x.MinIdleConns, x.MaxConnLifetime, x.MaxConnLifetimeJitter,
			x.MaxConnIdleTime, x.HealthCheckPeriod, x.PingTimeout, x.ConnConfig.RuntimeParams)
		if got != want {
			t.Errorf("%s:\nfairpgx %+v\npgxpool %+v", cs, got, want)
		}
		if f.AcquireTimeout != fairpgx.DefaultAcquireTimeout {
			t.Errorf("%s: AcquireTimeout %v, want the default %v", cs, f.AcquireTimeout, fairpgx.DefaultAcquireTimeout)
		}
	}
	f, _ := fairpgx.ParseConfig("postgres://u@h/db")
	if f.MaxConns != fairpgx.DefaultMaxConns() || f.MaxConns < 4 || f.HealthCheckPeriod != time.Minute ||
		f.MaxConnLifetime != time.Hour || f.MaxConnIdleTime != 30*time.Minute || f.PingTimeout != 0 {
		t.Errorf("defaults: %+v", f)
	}
}

// TestParseConfigRejectsBadValuesAsPgxpool: a value that does not parse
// fails with pgxpool's very error, which names the parameter and hides
// the password; fairpgx's own parameters fail the same way.
func TestParseConfigRejectsBadValuesAsPgxpool(t *testing.T) {
	for _, param := range []string{
		"pool_max_conns=0", "pool_max_conns=x", "pool_min_conns=x", "pool_min_idle_conns=1.5",
		"pool_max_conn_lifetime=soon", "pool_max_conn_idle_time=5", "pool_health_check_period=x",
		"pool_max_conn_lifetime_jitter=x", "pool_ping_timeout=x",
	} {
		cs := "postgres://u:secret@h/db?" + param
		_, ferr := fairpgx.ParseConfig(cs)
		_, xerr := pgxpool.ParseConfig(cs)
		if ferr == nil || xerr == nil || ferr.Error() != xerr.Error() {
			t.Errorf("%s:\nfairpgx %v\npgxpool %v", param, ferr, xerr)
		}
		if ferr != nil && (strings.Contains(ferr.Error(), "secret") || !strings.Contains(ferr.Error(), strings.Split(param, "=")[0])) {
			t.Errorf("%s: %v: want the parameter named and the password hidden", param, ferr)
		}
	}
	for _, param := range []string{"pool_acquire_timeout=5", "pool_reset_session=maybe"} {
		_, err := fairpgx.ParseConfig("postgres://u:secret@h/db?" + param)
		if err == nil || !strings.Contains(err.Error(), "cannot parse "+strings.Split(param, "=")[0]) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v", param, err)
		}
	}
}

// TestPoolParametersNeverReachServer connects with every pool_* parameter
// in the string: the server would refuse any of them ("unrecognized
// configuration parameter"), and Config returns them parsed, defaults
// applied.
func TestPoolParametersNeverReachServer(t *testing.T) {
	requirePG(t)
	cs := dsn()
	sep := "?"
	if strings.Contains(cs, "?") {
		sep = "&"
	}
	p, err := fairpgx.New(context.Background(), cs+sep+strings.Replace(allPoolParams, "pool_min_conns=2&pool_min_idle_conns=3&", "", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with every pool_* parameter set: %v", err)
	}
	cfg := p.Config()
	if cfg.MaxConns != 16 || cfg.PingTimeout != 750*time.Millisecond || cfg.HealthCheckPeriod != 250*time.Millisecond || cfg.Name != "orders" {
		t.Errorf("Config(): %+v", cfg)
	}
	cfg.MaxConns = 1
	if p.Config().MaxConns != 16 {
		t.Error("Config() returned the pool's own Config, not a copy")
	}
}

func TestConfigCopyIsDeep(t *testing.T) {
	cfg, err := fairpgx.ParseConfig("postgres://u@h/db?application_name=a")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Copy()
	c.ConnConfig.RuntimeParams["application_name"] = "b"
	c.MaxConns = 99
	if cfg.ConnConfig.RuntimeParams["application_name"] != "a" || cfg.MaxConns == 99 {
		t.Errorf("Copy shares state with the original: %+v", cfg)
	}
	if c.ConnString() != cfg.ConnString() {
		t.Errorf("Copy's ConnString %q, want %q", c.ConnString(), cfg.ConnString())
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
		{&fairpgx.Config{ConnConfig: cc, HealthCheckPeriod: -time.Second}, "HealthCheckPeriod"},
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
