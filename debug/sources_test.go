package debug_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/debug"
	"github.com/fairpool/fairpool/sqlpool"
)

var callerRE = regexp.MustCompile(`<summary class="caller">([^<]*)</summary>`)

// Every kind of pool of the module is a Source as it is.
var (
	_ debug.Source = (*fairpool.Group[string, int])(nil)
	_ debug.Source = (*sqlpool.Pool)(nil)
)

// pgxShaped has exactly the methods *fairpgx.Pool offers the page: a
// value of it stands in for one, since fairpgx is another module.
type pgxShaped interface {
	Stats() fairpool.Stats
	Holders() []fairpool.Holder
	Waiters() []time.Duration
}

// nullDriver is a database/sql driver whose sessions do nothing: enough
// for a sqlpool.Pool to lease them.
type nullDriver struct{}

type nullConn struct{}

func (nullDriver) Open(string) (driver.Conn, error)             { return nullConn{}, nil }
func (nullConn) Prepare(string) (driver.Stmt, error)            { return nil, errors.New("null: no statements") }
func (nullConn) Close() error                                   { return nil }
func (nullConn) Begin() (driver.Tx, error)                      { return nil, errors.New("null: no transactions") }
func (nullDriver) Connect(context.Context) (driver.Conn, error) { return nullConn{}, nil }
func (d nullDriver) Driver() driver.Driver                      { return d }

func newSQLPool(t *testing.T) *sqlpool.Pool {
	t.Helper()
	db := sql.OpenDB(nullDriver{})
	p, err := sqlpool.New(db, sqlpool.Config{Name: "app", MaxSize: 2, TrackLeases: true, AcquireTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		db.Close()
	})
	return p
}

// TestSQLPoolAddedDirectly: a *sqlpool.Pool shows its figures, its holders
// at the caller's line (not sqlpool's), and its waiters.
func TestSQLPoolAddedDirectly(t *testing.T) {
	p := newSQLPool(t)
	h := debug.NewHandler()
	if err := h.Add("app", p); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	site := here()
	err := p.WithConn(ctx, func(context.Context, *sql.Conn) error {
		// Not fn's context: a WithConn on it would share this lease.
		wctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		held := make(chan struct{})
		wg.Go(func() {
			p.WithConn(context.Background(), func(context.Context, *sql.Conn) error {
				close(held)
				<-wctx.Done()
				return nil
			})
		})
		<-held
		wg.Go(func() { p.WithConn(wctx, func(context.Context, *sql.Conn) error { return nil }) })
		waitFor(t, "a waiter", func() bool { return p.Stats().Waiting == 1 })

		sec := section(t, getPage(t, h, "/"), "app")
		got := stats(sec)
		for k, v := range map[string]string{"size": "2", "in-use": "2", "waiting": "1", "holders": "2", "waiters": "1"} {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		callers := callerRE.FindAllStringSubmatch(sec, -1)
		if len(callers) != 2 || callers[0][1] != site || !strings.Contains(callers[1][1], "debug/sources_test.go:") {
			t.Errorf("holders acquired at %q, want %s and another line of this file", callers, site)
		}
		pg, _ := getJSON(t, h)
		if len(pg.Pools) != 1 || len(pg.Pools[0].Holders) != 2 || pg.Pools[0].Holders[0].Caller != site || len(pg.Pools[0].Waiters) != 1 {
			t.Errorf("JSON %+v, want 2 holders, the first at %s, and 1 waiter", pg.Pools, site)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupAddedDirectly: a *fairpool.Group, added as it is, gets the same
// page and JSON as through the Group wrapper.
func TestGroupAddedDirectly(t *testing.T) {
	g := newGroup(t, "tenants", 3)
	knownGroupState(t, g)
	direct, wrapped := debug.NewHandler(), debug.NewHandler()
	if err := direct.Add("tenants", g); err != nil {
		t.Fatal(err)
	}
	if err := wrapped.Add("tenants", debug.Group(g)); err != nil {
		t.Fatal(err)
	}
	sec := groupSection(t, getPage(t, direct, "/"), "tenants")
	keys, rows, tot := keyRows(t, sec)
	if strings.Join(keys, ",") != "a,b,c" || rows[0]["waiting"] != "2" || rows[2]["waiting"] != "1" || tot["in-use"] != "3" {
		t.Errorf("rows %v %v, total %v", keys, rows, tot)
	}
	if got := stats(sec); got["waiting-for-key"] != "2" || got["waiting-for-global"] != "1" {
		t.Errorf("group figures %v", got)
	}
	// The two differ only by the instant they were read at.
	_, a := get(t, direct, "/?format=json")
	_, b := get(t, wrapped, "/?format=json")
	if ca, cb := timeless(t, a), timeless(t, b); ca != cb {
		t.Errorf("direct and wrapped JSON differ:\n%s\n%s", ca, cb)
	}
}

// TestPgxShapedSourceAccepted: a value with fairpgx.Pool's methods
// (Stats, Holders, Waiters) is shown as a pool.
func TestPgxShapedSourceAccepted(t *testing.T) {
	var src pgxShaped = fakeSource{
		stats:   fairpool.Stats{MaxSize: 4, Open: 1, InUse: 1},
		holders: []fairpool.Holder{{HeldFor: time.Second, Caller: "/src/app/q.go:7", Goroutine: 9}},
		waiters: []time.Duration{time.Millisecond},
	}
	h := debug.NewHandler()
	if err := h.Add("pgx", src); err != nil {
		t.Fatal(err)
	}
	sec := section(t, getPage(t, h, "/"), "pgx")
	if got := stats(sec); got["size"] != "4" || got["in-use"] != "1" || got["holders"] != "1" || got["waiters"] != "1" || !strings.Contains(sec, "/src/app/q.go:7") {
		t.Errorf("stats %v in\n%s", got, sec)
	}
}

// holdersOnly has a Source's methods but no figures.
type holdersOnly struct{}

func (holdersOnly) Holders() []fairpool.Holder { return nil }
func (holdersOnly) Waiters() []time.Duration   { return nil }

// TestAddRefusesSourcesWithoutFigures: a Source without Stats or Summary,
// and a nil pointer of a pool type, are refused with an error that says
// why; nothing is added.
func TestAddRefusesSourcesWithoutFigures(t *testing.T) {
	h := debug.NewHandler()
	err := h.Add("x", holdersOnly{})
	if err == nil || !strings.Contains(err.Error(), "debug_test.holdersOnly") || !strings.Contains(err.Error(), "Stats() fairpool.Stats") ||
		!strings.Contains(err.Error(), "Summary() fairpool.GroupSummary") {
		t.Errorf("Add(holdersOnly): %v", err)
	}
	for _, s := range []debug.Source{(*fairpool.Pool[int])(nil), (*fairpool.Group[string, int])(nil), (*sqlpool.Pool)(nil), nil} {
		if err := h.Add("nil", s); err == nil || !strings.Contains(err.Error(), "nil Source") {
			t.Errorf("Add(%T nil): %v", s, err)
		}
	}
	if pg, _ := getJSON(t, h); len(pg.Pools) != 0 {
		t.Errorf("refused sources shown: %+v", pg.Pools)
	}
}

// TestSummaryOrdersKeysAsK: Group.Summary lists keys in K's order, not in
// the order of their text, with each busy key's waiters.
func TestSummaryOrdersKeysAsK(t *testing.T) {
	g, err := fairpool.NewGroup(fairpool.GroupConfig[int, *conn]{
		PerKeyMax: 1, AcquireTimeout: -1, KeyIdleTime: -1,
		Open: func(context.Context, int) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	ctx := context.Background()
	for _, k := range []int{10, 9, 100} {
		l, err := g.Acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { g.Acquire(wctx, 9) })
	waitFor(t, "a waiter for 9", func() bool { return g.Stats().Total.Waiting == 1 })
	sum := g.Summary()
	var keys []string
	for _, k := range sum.Keys {
		keys = append(keys, k.Key+":"+strconv.Itoa(len(k.Waiters)))
		if k.Waiters == nil {
			t.Errorf("key %s: nil Waiters", k.Key)
		}
	}
	if strings.Join(keys, ",") != "9:1,10:0,100:0" || sum.KeyPools != 3 || sum.Total.InUse != 3 || sum.WaitingForKey != 1 {
		t.Errorf("keys %v, summary %+v", keys, sum)
	}
}

// timeless returns the JSON page with every duration and time zeroed.
func timeless(t *testing.T, raw string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, timed bool) any
	walk = func(v any, timed bool) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = walk(x, k == "Time" || k == "WaitDuration" || k == "HeldFor" || k == "Waiters")
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x, timed)
			}
		default:
			if timed {
				return 0
			}
		}
		return v
	}
	b, _ := json.Marshal(walk(v, false))
	return string(b)
}
