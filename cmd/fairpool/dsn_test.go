package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every form of DSN the help promises parses to the right server, without
// touching the network, and never keeps the password where results.json
// would show it.
func TestParseDSN(t *testing.T) {
	for _, c := range []struct {
		dsn, kind, addr string
		user, pass, db  string
	}{
		{"postgres://app:s3cret@db.example:6543/shop?sslmode=disable", kindPostgres, "db.example:6543/shop", "app", "s3cret", "shop"},
		{"postgresql://app@127.0.0.1/shop", kindPostgres, "127.0.0.1:5432/shop", "app", "", "shop"},
		{"postgres://app@127.0.0.1/shop?pool_max_conns=4&pool_acquire_timeout=1s", kindPostgres, "127.0.0.1:5432/shop", "app", "", "shop"},
		{"host=127.0.0.1 port=5433 user=app password=s3cret dbname=shop", kindPostgres, "127.0.0.1:5433/shop", "app", "s3cret", "shop"},
		{"mysql://root:p%40ss:w@db.example:3307/shop?parseTime=true", kindMySQL, "db.example:3307/shop", "root", "p@ss:w", "shop"},
		{"mysql://root@127.0.0.1/test", kindMySQL, "127.0.0.1:3306/test", "root", "", "test"},
		{"mysql://root@[::1]/test", kindMySQL, "[::1]:3306/test", "root", "", "test"},
		{"root:s3cret@tcp(127.0.0.1:3306)/test", kindMySQL, "127.0.0.1:3306/test", "root", "s3cret", "test"},
		{"root@/test", kindMySQL, "127.0.0.1:3306/test", "root", "", "test"},
	} {
		tg, err := parseDSN(c.dsn)
		if err != nil {
			t.Errorf("%s: %v", c.dsn, err)
			continue
		}
		var user, pass, db string
		switch tg.Kind {
		case kindPostgres:
			user, pass, db = tg.pg.User, tg.pg.Password, tg.pg.Database
			for k := range tg.pg.RuntimeParams {
				if strings.HasPrefix(k, "pool_") {
					t.Errorf("%s: %s left as a server parameter", c.dsn, k)
				}
			}
		case kindMySQL:
			user, pass, db = tg.my.User, tg.my.Passwd, tg.my.DBName
		}
		if tg.Kind != c.kind || tg.Addr != c.addr || user != c.user || pass != c.pass || db != c.db {
			t.Errorf("%s: got %s %s user %q password %q db %q; want %s %s %q %q %q",
				c.dsn, tg.Kind, tg.Addr, user, pass, db, c.kind, c.addr, c.user, c.pass, c.db)
		}
		if c.kind == kindMySQL && c.dsn == "mysql://root:p%40ss:w@db.example:3307/shop?parseTime=true" && !tg.my.ParseTime {
			t.Errorf("%s: go-sql-driver's parameters were not applied", c.dsn)
		}
	}
}

func TestHoldStatement(t *testing.T) {
	pg, my := &dbTarget{Kind: kindPostgres}, &dbTarget{Kind: kindMySQL}
	for _, c := range []struct {
		t    *dbTarget
		h    time.Duration
		want string
	}{
		{pg, time.Millisecond, "SELECT pg_sleep(0.001)"},
		{pg, 1500 * time.Microsecond, "SELECT pg_sleep(0.0015)"},
		{my, 10 * time.Millisecond, "SELECT SLEEP(0.01)"},
		{my, 2 * time.Second, "SELECT SLEEP(2)"},
	} {
		if got := c.t.holdStatement(c.h); got != c.want {
			t.Errorf("%s, %v: %q, want %q", c.t.Kind, c.h, got, c.want)
		}
	}
}

// --dsn runs the fairness experiment alone at its own defaults, with the
// pools that run against that server; flags given keep their values.
func TestParseDSNFlags(t *testing.T) {
	opts, _, err := parseArgs([]string{"sim", "--dsn", "postgres://postgres@127.0.0.1/test"})
	if err != nil {
		t.Fatal(err)
	}
	f := opts.fairness
	if opts.pinned != nil || f == nil || f.DB == nil || f.DB.Kind != kindPostgres {
		t.Fatalf("sim --dsn: fairness %+v, pinned %+v; want the fairness experiment alone, on PostgreSQL", f, opts.pinned)
	}
	if !slices.Equal(f.Workers, []int{64}) || f.Size != 8 || f.Hold != time.Millisecond || f.Requests != 5000 ||
		f.Timeout != 5*time.Second || !slices.Equal(f.Pools, []string{"fairpgx", "sqlpool", "sql", "pgxpool"}) ||
		f.DB.HoldSQL != "SELECT pg_sleep(0.001)" {
		t.Errorf("sim --dsn defaults = %+v, %+v", *f, *f.DB)
	}

	opts, _, err = parseArgs(strings.Fields("sim fairness --dsn mysql://root@127.0.0.1/test -n 10 -s 2 --hold 3ms --requests 99"))
	if err != nil {
		t.Fatal(err)
	}
	f = opts.fairness
	if !slices.Equal(f.Workers, []int{10}) || f.Size != 2 || f.Hold != 3*time.Millisecond || f.Requests != 99 ||
		!slices.Equal(f.Pools, []string{"sqlpool", "sql"}) || f.DB.HoldSQL != "SELECT SLEEP(0.003)" {
		t.Errorf("sim fairness --dsn mysql://... with flags = %+v, %+v", *f, *f.DB)
	}

	// --full: the experiment's original scale, S=5 included, for what was not given.
	opts, _, err = parseArgs(strings.Fields("sim fairness --dsn postgres://x@y/z --full --pools sql,fairpgx"))
	if err != nil {
		t.Fatal(err)
	}
	if f := opts.fairness; f.Size != 5 || f.Hold != 10*time.Millisecond || f.Requests != 100000 ||
		len(f.Workers) != 5 || !slices.Equal(f.Pools, []string{"sql", "fairpgx"}) {
		t.Errorf("--dsn --full = %+v", *f)
	}
}

// A --dsn that cannot be right gets one line and exit status 2, and never
// shows its password.
func TestParseDSNRejects(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"sim --dsn=", "--dsn must not be empty"},
		{"sim --dsn redis://h/0", `unknown scheme "redis://"`},
		{"sim --dsn postgres://u:s3cret@h:x/db", "cannot parse `postgres://u:xxxxx@h:x/db`: invalid port"},
		{"sim --dsn host=h~port=x~password=s3cret", "cannot parse"},
		{"sim --dsn postgres://h/db?pool_max_conns=0", "pool_max_conns"},
		{"sim --dsn mysql://u:s3cret@h:3306/a/b", `"a/b" is not a database name`},
		{"sim --dsn mysql://u:s3cret@h/db?x=%zz", "invalid URL escape"},
		{"sim --dsn u:s3cret@tcp(h:3306", "missing the slash"},
		{"sim fairness --pools fairpgx", "fairpgx runs against a server: give --dsn"},
		{"sim fairness --dsn mysql://root@h/db --pools sql,pgxpool", "pgxpool does not run against MySQL/MariaDB"},
		{"sim fairness --dsn mysql://root@h/db --pools fairpgx", "fairpgx does not run against MySQL/MariaDB"},
		{"sim fairness --dsn postgres://h/db --pools chan", "chan does not run against PostgreSQL"},
		{"sim pinned --dsn postgres://h/db", "--dsn runs the fairness experiment alone"},
	} {
		args := strings.Fields(c.args)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "~", " ") // keyword DSNs have spaces
		}
		opts, _, err := parseArgs(args)
		var ue *usageError
		if !errors.As(err, &ue) || opts != nil {
			t.Errorf("%q: got %v, %v; want a usage error", c.args, opts, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "s3cret") {
			t.Errorf("%q: error %q, want one line containing %q and no password", c.args, msg, c.want)
		}
	}
}

// A server that refuses the connection fails the run with exit status 1,
// one line naming the server and the cause, and nothing written.
func TestRunDSNUnreachable(t *testing.T) {
	for _, dsn := range []string{
		"postgres://postgres:s3cret@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
		"mysql://root:s3cret@127.0.0.1:1/test?timeout=2s",
	} {
		out := filepath.Join(t.TempDir(), "out")
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := run(context.Background(), []string{"sim", "--dsn", dsn, "--out", out}, &stdout, newProgress(&stderr, false, 80))
		msg := stderr.String()
		if code != exitFailed || strings.Count(msg, "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want 1 and one line on stderr", dsn, code, msg, stdout.String())
		}
		if !strings.Contains(msg, "cannot connect to") || !strings.Contains(msg, "127.0.0.1:1/test") ||
			!strings.Contains(msg, "refused") || strings.Contains(msg, "s3cret") {
			t.Errorf("%s: %q does not name the server and the cause, or shows the password", dsn, msg)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v to fail on a refused connection", dsn, d)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: --out was created by a run that could not reach its server: %v", dsn, err)
		}
	}
}
