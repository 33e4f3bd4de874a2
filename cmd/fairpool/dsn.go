package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The server a --dsn names. Parsing never touches the network, so a DSN
// that does not parse is a bad flag (exit status 2); reaching the server is
// the first thing a run does (exit status 1 when it fails).

// The kinds of server the fairness experiment runs against.
const (
	kindPostgres = "postgres"
	kindMySQL    = "mysql"
)

// dbTarget is the server of a --dsn run: how to reach it and what it is. It
// never holds the password in an exported field, so results.json does not
// either.
type dbTarget struct {
	Kind    string `json:"kind"`     // kindPostgres or kindMySQL
	Addr    string `json:"addr"`     // host:port/database, without user or password
	Server  string `json:"server"`   // product and version, read when the run starts
	HoldSQL string `json:"hold_sql"` // the statement each request holds its connection with

	pg *pgx.ConnConfig // kindPostgres: pool_* parameters removed
	my *mysql.Config   // kindMySQL
}

func init() {
	// go-sql-driver/mysql logs every connection it finds dead on stderr. The
	// sim counts failed requests and prints the first error of each pool.
	mysql.SetLogger(log.New(io.Discard, "", 0))
}

// urlScheme is the scheme of a URL-form DSN; a go-sql-driver DSN whose
// password holds "://" does not match, as its "scheme" has a colon or @.
var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// keywordDSN matches pgx's keyword/value form ("host=db user=app ..."),
// which a go-sql-driver DSN ("user:pass@tcp(host:port)/db") never starts
// like.
var keywordDSN = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// parseDSN reads a --dsn: a postgres:// or postgresql:// URL or pgx's
// keyword/value form for PostgreSQL; a mysql://user:pass@host:port/db URL
// or go-sql-driver's user:pass@tcp(host:port)/db for MySQL and MariaDB.
// pgxpool's pool_* parameters are accepted and ignored: -s sizes every
// pool. The error is one line, without the password.
func parseDSN(dsn string) (*dbTarget, error) {
	m := urlScheme.FindStringSubmatch(dsn)
	switch {
	case m != nil && (m[1] == "postgres" || m[1] == "postgresql"), m == nil && keywordDSN.MatchString(dsn):
		return parsePostgres(dsn)
	case m != nil && m[1] == "mysql":
		return parseMySQLURL(dsn)
	case m != nil:
		return nil, fmt.Errorf("unknown scheme %q (want postgres://, postgresql:// or mysql://, "+
			"pgx's key=value form or go-sql-driver's user@tcp(host:port)/db)", m[1]+"://")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a DSN go-sql-driver/mysql takes (user:pass@tcp(host:port)/db): %v", err)
	}
	return newMySQLTarget(cfg), nil
}

// parsePostgres reads a DSN the way fairpgx.ParseConfig does, which is
// pgx's syntax plus pgxpool's and fairpgx's pool_* parameters.
func parsePostgres(dsn string) (*dbTarget, error) {
	cfg, err := fairpgx.ParseConfig(dsn) // pgconn's error redacts the password
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	return &dbTarget{Kind: kindPostgres, pg: cc,
		Addr: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database}, nil
}

// parseMySQLURL translates mysql://user:pass@host:port/db?params to
// go-sql-driver's user:pass@tcp(host:port)/db?params. The port defaults to
// 3306 and the host to 127.0.0.1; params are go-sql-driver's.
func parseMySQLURL(dsn string) (*dbTarget, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("not a mysql:// URL: %v", err)
	}
	host := u.Host
	if host != "" && u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if strings.Contains(db, "/") {
		return nil, fmt.Errorf("mysql:// URL: %q is not a database name", db)
	}
	native := "tcp(" + host + ")/" + db
	if u.RawQuery != "" {
		native += "?" + u.RawQuery
	}
	cfg, err := mysql.ParseDSN(native) // no user or password in it, so none in the error
	if err != nil {
		return nil, fmt.Errorf("mysql:// URL: %v", err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	return newMySQLTarget(cfg), nil
}

func newMySQLTarget(cfg *mysql.Config) *dbTarget {
	return &dbTarget{Kind: kindMySQL, my: cfg, Addr: cfg.Addr + "/" + cfg.DBName}
}

// product names the kind of server for messages, before its version is known.
func (t *dbTarget) product() string {
	if t.Kind == kindPostgres {
		return "PostgreSQL"
	}
	return "MySQL/MariaDB"
}

// name is what reports call the server: "PostgreSQL 15.20 at 127.0.0.1:5432/test".
func (t *dbTarget) name() string {
	s := t.Server
	if s == "" {
		s = t.product()
	}
	return s + " at " + t.Addr
}

// holdStatement is the statement that keeps a connection busy on the
// server for h.
func (t *dbTarget) holdStatement(h time.Duration) string {
	secs := strconv.FormatFloat(h.Seconds(), 'f', -1, 64)
	if t.Kind == kindPostgres {
		return "SELECT pg_sleep(" + secs + ")"
	}
	return "SELECT SLEEP(" + secs + ")"
}

// openDB returns a *sql.DB on the server through its driver: pgx's stdlib
// driver or go-sql-driver/mysql. It connects to nothing yet.
func (t *dbTarget) openDB() (*sql.DB, error) {
	if t.Kind == kindPostgres {
		return stdlib.OpenDB(*t.pg.Copy()), nil
	}
	c, err := mysql.NewConnector(t.my.Clone())
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// check connects once, reads the server's version into Server and
// disconnects, so that a server that does not answer within timeout, or
// refuses the login, fails the run in one line before any pool runs.
func (t *dbTarget) check(ctx context.Context, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var version string
	var err error
	if t.Kind == kindPostgres {
		var c *pgx.Conn
		if c, err = pgx.ConnectConfig(cctx, t.pg.Copy()); err == nil {
			err = c.QueryRow(cctx, "SELECT version()").Scan(&version)
			err = errors.Join(err, c.Close(cctx))
		}
	} else {
		var db *sql.DB
		if db, err = t.openDB(); err == nil {
			err = db.QueryRowContext(cctx, "SELECT VERSION()").Scan(&version)
			err = errors.Join(err, db.Close())
		}
	}
	switch {
	case err == nil:
		t.Server = serverName(t.Kind, version)
		return nil
	case ctx.Err() != nil:
		return ctx.Err() // interrupted
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("--dsn: %s at %s did not answer within %v (--timeout): %s", t.product(), t.Addr, timeout, oneLine(err))
	}
	return fmt.Errorf("--dsn: cannot connect to %s at %s: %s", t.product(), t.Addr, oneLine(err))
}

// serverName shortens a version string to product and version:
// "PostgreSQL 15.20 (Debian ...) on x86_64..." gives "PostgreSQL 15.20",
// MariaDB's "10.11.19-MariaDB-0+deb12u1" gives "MariaDB 10.11.19".
func serverName(kind, version string) string {
	if kind == kindPostgres {
		if f := strings.Fields(version); len(f) >= 2 {
			return f[0] + " " + f[1]
		}
		return version
	}
	num, _, _ := strings.Cut(version, "-")
	if strings.Contains(version, "MariaDB") {
		return "MariaDB " + num
	}
	return "MySQL " + num
}

// oneLine joins the lines of err's message for a one-line report, each
// distinct line once: pgx reports every address and TLS mode it tried on a
// line of its own, and they often fail the same way.
func oneLine(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return strings.ReplaceAll(strings.Join(lines, "; "), ":; ", ": ")
}
