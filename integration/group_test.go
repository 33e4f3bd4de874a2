package integration

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The Group test: a fairpool.Group keyed by database name, over four
// databases that the test creates and drops. Each connection is a
// database/sql/driver connection opened on its key's database, so one test
// body serves both servers.

const (
	groupShards = 4
	groupPerKey = 2
	groupGlobal = 3 // under 4 shards x 2: the global limit binds and connections move between databases
)

// shardConn is one session on one shard's database.
type shardConn struct {
	driver.Conn
	db string
}

const groupTable = "CREATE TABLE items (id int PRIMARY KEY, writer int NOT NULL)"

// shardDB is what differs per server for the Group test.
type shardDB struct {
	connector func(db string) (driver.Connector, error)
	currentDB string                 // SQL returning the session's database
	sessions  func(db string) string // SQL counting the server's sessions on db
	dropDB    func(db string) string
}

func groupServer(s *server) (*shardDB, error) {
	switch s.name {
	case "postgres":
		return &shardDB{
			connector: func(db string) (driver.Connector, error) {
				cc, err := pgx.ParseConfig(s.dsn)
				if err != nil {
					return nil, err
				}
				cc.Database = db
				return stdlib.GetConnector(*cc), nil
			},
			currentDB: "SELECT current_database()",
			sessions: func(db string) string {
				return "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db + "'"
			},
			dropDB: func(db string) string { return "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)" },
		}, nil
	case "mariadb":
		return &shardDB{
			connector: func(db string) (driver.Connector, error) {
				mc, err := mysql.ParseDSN(s.dsn)
				if err != nil {
					return nil, err
				}
				mc.DBName = db
				return mysql.NewConnector(mc)
			},
			currentDB: "SELECT DATABASE()",
			sessions: func(db string) string {
				return "SELECT count(*) FROM information_schema.processlist WHERE db = '" + db + "'"
			},
			dropDB: func(db string) string { return "DROP DATABASE IF EXISTS " + db },
		}, nil
	}
	return nil, fmt.Errorf("no shard SQL for %s", s.name)
}

// TestGroupShardsByDatabase runs 16 goroutines over a Group of PerKeyMax 2
// and GlobalMax 3, keyed by database: each takes two random shards with
// WithAll (in any order), checks each connection is on its key's
// database, writes a row to each, and re-enters With on one of them. It
// checks, on every open, that no database has more than PerKeyMax and the
// group more than GlobalMax connections; that no call times out; that
// every row landed in its shard; that the server's sessions on each
// database match the Group's count once the load stops; and that Close
// leaves none.
func TestGroupShardsByDatabase(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		sd, err := groupServer(s)
		if err != nil {
			t.Fatal(err)
		}
		admin := s.open(t)
		ctx := context.Background()
		shards := make([]string, groupShards)
		for i := range shards {
			// Named for this process, because dropping one ends every
			// session on it (WITH (FORCE)): a common name such as shard_0
			// could be someone else's database on a developer's server, or
			// another test run's.
			shards[i] = fmt.Sprintf("fairpool_it_%d_shard_%d", os.Getpid(), i)
			if _, err := admin.ExecContext(ctx, sd.dropDB(shards[i])); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+shards[i]); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			for _, db := range shards {
				if _, err := admin.ExecContext(context.Background(), sd.dropDB(db)); err != nil {
					t.Errorf("dropping %s: %v", db, err)
				}
			}
		})

		// An oracle of the limits independent of the Group: connections
		// counted from the start of Open to the end of Close.
		var mu sync.Mutex
		live := map[string]int{}
		total := 0
		connectors := map[string]driver.Connector{}
		for _, db := range shards {
			if connectors[db], err = sd.connector(db); err != nil {
				t.Fatal(err)
			}
		}
		var opens atomic.Int64
		g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *shardConn]{
			Name: "shards",
			Open: func(ctx context.Context, db string) (*shardConn, error) {
				mu.Lock()
				live[db]++
				total++
				if live[db] > groupPerKey || total > groupGlobal {
					t.Errorf("opening on %s: %d connections to it, %d in all", db, live[db], total)
				}
				mu.Unlock()
				c, err := connectors[db].Connect(ctx)
				if err != nil {
					mu.Lock()
					live[db]--
					total--
					mu.Unlock()
					return nil, err
				}
				opens.Add(1)
				return &shardConn{c, db}, nil
			},
			Close: func(c *shardConn) error {
				err := c.Close()
				mu.Lock()
				live[c.db]--
				total--
				mu.Unlock()
				return err
			},
			Check:          func(ctx context.Context, c *shardConn) error { return c.Conn.(driver.Pinger).Ping(ctx) },
			PerKeyMax:      groupPerKey,
			GlobalMax:      groupGlobal,
			AcquireTimeout: 30 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		closed := false
		t.Cleanup(func() {
			if !closed {
				g.Close(context.Background())
			}
		})

		err = g.WithAll(ctx, shards[:groupGlobal], func(ctx context.Context, conns []*shardConn) error {
			for _, c := range conns {
				if err := execSQL(ctx, c, groupTable); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = g.With(ctx, shards[groupGlobal], func(ctx context.Context, c *shardConn) error {
				return execSQL(ctx, c, groupTable)
			})
		}
		if err != nil {
			t.Fatal(err)
		}

		const workers, rounds = 16, 25
		var written [groupShards]atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 6))
				for i := range rounds {
					perm := r.Perm(groupShards)[:2]
					keys := []string{shards[perm[0]], shards[perm[1]]}
					id := w*rounds + i
					err := g.WithAll(ctx, keys, func(ctx context.Context, conns []*shardConn) error {
						for j, c := range conns {
							db, err := queryValue(ctx, c, sd.currentDB)
							if err != nil {
								return err
							}
							if db != keys[j] {
								return fmt.Errorf("connection for %s is on %s", keys[j], db)
							}
							if err := execSQL(ctx, c, fmt.Sprintf("INSERT INTO items VALUES (%d, %d)", id, w)); err != nil {
								return err
							}
							written[perm[j]].Add(1)
						}
						// Re-entry: code holding the shard takes it again.
						return g.With(ctx, keys[0], func(ctx context.Context, c *shardConn) error {
							if c != conns[0] {
								return errors.New("re-entry got another connection")
							}
							_, err := queryValue(ctx, c, "SELECT 1")
							return err
						})
					})
					if err != nil {
						t.Errorf("worker %d round %d: %v", w, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}

		st := g.Stats()
		if st.Total.Timeouts != 0 || st.Total.Cancels != 0 || st.Total.InUse != 0 || st.Total.Open > groupGlobal {
			t.Errorf("stats after the load: %+v", st.Total)
		}
		for i, db := range shards {
			var n int64
			err := g.With(ctx, db, func(ctx context.Context, c *shardConn) error {
				v, err := queryValue(ctx, c, "SELECT count(*) FROM items")
				if err == nil {
					_, err = fmt.Sscan(v, &n)
				}
				return err
			})
			if err != nil || n != written[i].Load() {
				t.Errorf("%s holds %d rows, %d were written (%v)", db, n, written[i].Load(), err)
			}
		}
		// The server agrees with the Group once closed sessions are gone.
		for _, db := range shards {
			ks, _ := g.KeyStats(db)
			waitSessions(t, admin, sd.sessions(db), int64(ks.Open), db)
		}
		t.Logf("%s: %d acquires, %d waits, %d opens, %d evictions, p99 wait <= %v",
			s.name, st.Total.Acquires, st.Total.Waits, opens.Load(), st.Evictions, st.Total.WaitHistogram.Quantile(0.99))

		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := g.Close(closeCtx); err != nil {
			t.Fatal(err)
		}
		closed = true
		mu.Lock()
		if total != 0 {
			t.Errorf("%d connections open after Close", total)
		}
		mu.Unlock()
		for _, db := range shards {
			waitSessions(t, admin, sd.sessions(db), 0, db)
		}
	})
}

// waitSessions waits, up to five seconds, for the server to count want
// sessions with sessionsSQL: a backend can outlive its client's Close by a
// moment.
func waitSessions(t *testing.T, admin *sql.DB, sessionsSQL string, want int64, db string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int64
		if err := admin.QueryRow(sessionsSQL).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the server has %d sessions, want %d", db, n, want)
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the server: nothing to wait on
	}
}

func execSQL(ctx context.Context, c *shardConn, stmt string) error {
	_, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, stmt, nil)
	return err
}

// queryValue returns the first column of the first row of q, as text.
func queryValue(ctx context.Context, c *shardConn, q string) (string, error) {
	rows, err := c.Conn.(driver.QueryerContext).QueryContext(ctx, q, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		if err == io.EOF {
			return "", errors.New("no rows")
		}
		return "", err
	}
	switch v := dest[0].(type) {
	case []byte:
		return string(v), nil
	default:
		return fmt.Sprint(v), nil
	}
}
