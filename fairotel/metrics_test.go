package fairotel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairotel"
	"github.com/fairpool/fairpool/sqlpool"
)

// The sources the package doc names; fairpgx.Pool has the same Stats
// method but a module of its own.
var (
	_ fairotel.Source              = (*fairpool.Pool[*conn])(nil)
	_ fairotel.Source              = (*sqlpool.Pool)(nil)
	_ fairotel.GroupSource[string] = (*fairpool.Group[string, *conn])(nil)
)

// TestValuesAfterScriptedSequence drives a pool through a known sequence
// and reads every figure back through the SDK: four failed opens, two
// acquires that fill the pool, two timeouts, a wait cut short by its
// context, a wait of 250 ms ended by a release, a discard, and two more
// acquires (one idle, one new) released to idle. The counters all differ,
// so a figure read from the wrong field shows.
func TestValuesAfterScriptedSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, r := newMetrics(t)
		var fail atomic.Bool
		p, err := fairpool.New(fairpool.Config[*conn]{
			MaxSize: 2, AcquireTimeout: time.Second,
			Open: func(context.Context) (*conn, error) {
				if fail.Load() {
					return nil, errors.New("refused")
				}
				return &conn{}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		if err := m.Add("orders", p); err != nil {
			t.Fatal(err)
		}
		if err := m.Add("orders", p); err == nil {
			t.Error("a second pool named orders was accepted")
		}
		ctx := context.Background()
		fail.Store(true)
		for range 4 {
			if _, err := p.Acquire(ctx); err == nil {
				t.Fatal("open should fail")
			}
		}
		fail.Store(false)
		a, _ := p.Acquire(ctx)
		b, _ := p.Acquire(ctx)
		for range 2 {
			if _, err := p.Acquire(ctx); !errors.Is(err, fairpool.ErrTimeout) {
				t.Fatalf("want a timeout, got %v", err)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		canceled := make(chan error)
		go func() {
			_, err := p.Acquire(cctx)
			canceled <- err
		}()
		got := make(chan *fairpool.Lease[*conn])
		go func() {
			l, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		synctest.Wait()
		collect(t, r).check(t,
			expect{"db.client.connection.pending_requests", []attribute.KeyValue{pool("orders")}, 2},
			expect{"db.client.connection.count", []attribute.KeyValue{pool("orders"), state("used")}, 2},
			expect{"db.client.connection.count", []attribute.KeyValue{pool("orders"), state("idle")}, 0},
			expect{"db.client.connection.timeouts", []attribute.KeyValue{pool("orders")}, 2},
		)
		cancel()
		if err := <-canceled; !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		time.Sleep(250 * time.Millisecond)
		a.Release()
		(<-got).Release()
		b.Discard()
		c1, _ := p.Acquire(ctx)
		c2, _ := p.Acquire(ctx)
		c1.Release()
		c2.Release()
		synctest.Wait()

		c := collect(t, r)
		orders := []attribute.KeyValue{pool("orders")}
		c.check(t,
			expect{"db.client.connection.count", []attribute.KeyValue{pool("orders"), state("idle")}, 2},
			expect{"db.client.connection.count", []attribute.KeyValue{pool("orders"), state("used")}, 0},
			expect{"db.client.connection.max", orders, 2},
			expect{"db.client.connection.pending_requests", orders, 0},
			expect{"db.client.connection.timeouts", orders, 2},
			expect{"fairpool.connection.opening", orders, 0},
			expect{"fairpool.connection.closing", orders, 0},
			expect{"fairpool.acquires", orders, 5},
			// Every acquire but the one served from idle queued: for an
			// open, for a release, or until it gave up.
			expect{"fairpool.acquire.waits", orders, 11},
			expect{"fairpool.acquire.cancels", orders, 1},
			expect{"fairpool.acquire.wait_time", orders, 0.25},
			expect{"fairpool.connection.opens", orders, 3},
			expect{"fairpool.connection.open_errors", orders, 4},
			expect{"fairpool.connection.leaks", orders, 0},
			expect{"fairpool.connection.reclaims", orders, 0},
		)
		reasons := []string{"lifetime", "idle_time", "check_failed", "reset_failed", "discarded",
			"over_max_idle", "pool_closed", "evicted", "reclaimed"}
		for _, reason := range reasons {
			want := 0.0
			if reason == "discarded" {
				want = 1
			}
			c.check(t, expect{"fairpool.connection.closed",
				[]attribute.KeyValue{pool("orders"), fairotel.CloseReasonKey.String(reason)}, want})
		}
		if n := len(c.sets("fairpool.connection.closed")); n != len(reasons) {
			t.Errorf("%d closed series, want one per reason (%d)", n, len(reasons))
		}
	})
}

// TestInstrumentKinds checks what a backend is told of each metric: its
// kind, monotonicity, temporality and attribute keys.
func TestInstrumentKinds(t *testing.T) {
	m, r := newMetrics(t)
	p := newPool(t, 3)
	m.Add("orders", p)
	c := collect(t, r)
	for name, monotonic := range map[string]bool{
		"db.client.connection.count":            false,
		"db.client.connection.max":              false,
		"db.client.connection.idle.max":         false,
		"db.client.connection.idle.min":         false,
		"db.client.connection.pending_requests": false,
		"db.client.connection.timeouts":         true,
		"fairpool.connection.opening":           false,
		"fairpool.connection.closing":           false,
		"fairpool.acquires":                     true,
		"fairpool.acquire.waits":                true,
		"fairpool.acquire.cancels":              true,
		"fairpool.connection.opens":             true,
		"fairpool.connection.open_errors":       true,
		"fairpool.connection.closed":            true,
		"fairpool.connection.leaks":             true,
		"fairpool.connection.reclaims":          true,
	} {
		d, ok := c[name].Data.(metricdata.Sum[int64])
		if !ok {
			t.Errorf("%s: %T, want an int64 sum", name, c[name].Data)
			continue
		}
		if d.IsMonotonic != monotonic || d.Temporality != metricdata.CumulativeTemporality {
			t.Errorf("%s: monotonic %v %v, want %v cumulative", name, d.IsMonotonic, d.Temporality, monotonic)
		}
		if c[name].Description == "" || c[name].Unit == "" {
			t.Errorf("%s: no description or unit", name)
		}
	}
	if d, ok := c["fairpool.acquire.wait_time"].Data.(metricdata.Sum[float64]); !ok || !d.IsMonotonic || c["fairpool.acquire.wait_time"].Unit != "s" {
		t.Errorf("fairpool.acquire.wait_time: %#v, want a monotonic float sum in s", c["fairpool.acquire.wait_time"])
	}
	keys := func(s attribute.Set) []attribute.Key {
		var ks []attribute.Key
		for _, kv := range s.ToSlice() {
			ks = append(ks, kv.Key)
		}
		return ks
	}
	for _, s := range c.sets("db.client.connection.count") {
		if ks := keys(s); len(ks) != 2 || ks[0] != fairotel.PoolNameKey || ks[1] != fairotel.StateKey {
			t.Errorf("count attributes %v, want pool.name and state", ks)
		}
	}
	for _, s := range c.sets("db.client.connection.max") {
		if ks := keys(s); len(ks) != 1 || ks[0] != "db.client.connection.pool.name" {
			t.Errorf("max attributes %v, want db.client.connection.pool.name alone", ks)
		}
	}
}

func newPool(t *testing.T, size int) *fairpool.Pool[*conn] {
	t.Helper()
	p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: size, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// TestTwoPoolsRemoveAndClose: each pool is its own series; Remove drops
// one pool's series from the next collection; Close drops them all.
func TestTwoPoolsRemoveAndClose(t *testing.T) {
	m, r := newMetrics(t)
	m.Add("orders", newPool(t, 2))
	m.Add("cache", newPool(t, 5))
	c := collect(t, r)
	c.check(t,
		expect{"db.client.connection.max", []attribute.KeyValue{pool("orders")}, 2},
		expect{"db.client.connection.max", []attribute.KeyValue{pool("cache")}, 5},
	)
	if n := len(c.sets("db.client.connection.max")); n != 2 {
		t.Errorf("%d max series, want 2", n)
	}

	m.Remove("cache")
	c = collect(t, r)
	for name := range c {
		for _, s := range c.sets(name) {
			if v, _ := s.Value(fairotel.PoolNameKey); v.AsString() == "cache" {
				t.Errorf("%s still reports the removed pool: %v", name, s)
			}
		}
	}
	c.check(t, expect{"db.client.connection.max", []attribute.KeyValue{pool("orders")}, 2})
	if err := m.Add("cache", newPool(t, 7)); err != nil {
		t.Errorf("the name of a removed pool cannot be reused: %v", err)
	}
	collect(t, r).check(t, expect{"db.client.connection.max", []attribute.KeyValue{pool("cache")}, 7})

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c = collect(t, r)
	for name := range c {
		if sets := c.sets(name); len(sets) > 0 {
			t.Errorf("%s reported after Close: %v", name, sets)
		}
	}
}

// TestGroupTotalsAndOptInKeys: a group reports its totals without
// fairpool.key, and one series per key with it only when asked.
func TestGroupTotalsAndOptInKeys(t *testing.T) {
	g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
		PerKeyMax: 2, GlobalMax: 3,
		Open: func(context.Context, string) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	ctx := context.Background()
	for _, k := range []string{"a", "a", "b"} {
		l, err := g.Acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
	}
	key := fairotel.GroupKeyKey.String
	used := state("used")

	totals, r := newMetrics(t)
	if err := fairotel.AddGroup(totals, "tenants", g, false); err != nil {
		t.Fatal(err)
	}
	c := collect(t, r)
	c.check(t,
		expect{"db.client.connection.count", []attribute.KeyValue{pool("tenants"), used}, 3},
		expect{"db.client.connection.max", []attribute.KeyValue{pool("tenants")}, 3},
	)
	for _, s := range c.sets("db.client.connection.count") {
		if s.HasValue(fairotel.GroupKeyKey) {
			t.Errorf("a per-key series without opting in: %v", s)
		}
	}

	perKey, r := newMetrics(t)
	fairotel.AddGroup(perKey, "tenants", g, true)
	c = collect(t, r)
	c.check(t,
		expect{"db.client.connection.count", []attribute.KeyValue{pool("tenants"), used}, 3},
		expect{"db.client.connection.count", []attribute.KeyValue{pool("tenants"), key("a"), used}, 2},
		expect{"db.client.connection.count", []attribute.KeyValue{pool("tenants"), key("b"), used}, 1},
		expect{"db.client.connection.max", []attribute.KeyValue{pool("tenants")}, 3},
		expect{"db.client.connection.max", []attribute.KeyValue{pool("tenants"), key("a")}, 2},
		expect{"fairpool.acquires", []attribute.KeyValue{pool("tenants"), key("a")}, 2},
	)
	if n := len(c.sets("db.client.connection.count")); n != 6 {
		t.Errorf("%d count series, want idle and used for the totals and two keys (6)", n)
	}
}

// TestGroupWithoutGlobalMax: a group with no GlobalMax has no maximum,
// and reporting max=0 would say no connection is allowed.
func TestGroupWithoutGlobalMax(t *testing.T) {
	g, err := fairpool.NewGroup(fairpool.GroupConfig[int, *conn]{
		PerKeyMax: 2,
		Open:      func(context.Context, int) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	l, err := g.Acquire(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	m, r := newMetrics(t)
	fairotel.AddGroup(m, "shards", g, true)
	c := collect(t, r)
	if _, ok := c.value("db.client.connection.max", pool("shards")); ok {
		t.Error("the totals of a group without GlobalMax report a max")
	}
	c.check(t, expect{"db.client.connection.max", []attribute.KeyValue{pool("shards"), fairotel.GroupKeyKey.String("7")}, 2})
}

func TestNewRejectsNilProvider(t *testing.T) {
	if m, err := fairotel.New(nil); err == nil || m != nil {
		t.Errorf("New(nil) = %v, %v; want an error", m, err)
	}
}

// TestAddRacesCollect adds, removes and collects at once, for the race
// detector.
func TestAddRacesCollect(t *testing.T) {
	m, r := newMetrics(t)
	p := newPool(t, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			m.Add("p", p)
			m.Remove("p")
		}
	}()
	for range 20 {
		collect(t, r)
	}
	<-done
}

// TestIdleBounds: idle.max and idle.min are the bounds as the pool applies
// them (MaxIdle 0 in the Config means MaxSize), with MinIdle 0 reported as
// the setting it is; a group's keys have the GroupConfig's bounds, and its
// totals, which have none, report neither.
func TestIdleBounds(t *testing.T) {
	open := func(context.Context) (*conn, error) { return &conn{}, nil }
	ctx := context.Background()
	byDefault, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 6, Open: open})
	if err != nil {
		t.Fatal(err)
	}
	defer byDefault.Close(ctx)
	set, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 6, MinIdle: 2, MaxIdle: 3, Open: open})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close(ctx)
	g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
		PerKeyMax: 5, GlobalMax: 8, MinIdle: 1, MaxIdle: 4,
		Open: func(context.Context, string) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	for _, k := range []string{"a", "b"} {
		l, err := g.Acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	}

	m, r := newMetrics(t)
	m.Add("default", byDefault)
	m.Add("set", set)
	fairotel.AddGroup(m, "tenants", g, true)
	key := fairotel.GroupKeyKey.String
	c := collect(t, r)
	c.check(t,
		expect{"db.client.connection.idle.max", []attribute.KeyValue{pool("default")}, 6},
		expect{"db.client.connection.idle.min", []attribute.KeyValue{pool("default")}, 0},
		expect{"db.client.connection.idle.max", []attribute.KeyValue{pool("set")}, 3},
		expect{"db.client.connection.idle.min", []attribute.KeyValue{pool("set")}, 2},
		expect{"db.client.connection.idle.max", []attribute.KeyValue{pool("tenants"), key("a")}, 4},
		expect{"db.client.connection.idle.min", []attribute.KeyValue{pool("tenants"), key("a")}, 1},
		expect{"db.client.connection.idle.max", []attribute.KeyValue{pool("tenants"), key("b")}, 4},
		expect{"db.client.connection.idle.min", []attribute.KeyValue{pool("tenants"), key("b")}, 1},
	)
	for _, name := range []string{"db.client.connection.idle.max", "db.client.connection.idle.min"} {
		if v, ok := c.value(name, pool("tenants")); ok {
			t.Errorf("%s reported for a group's totals (%v), which have no idle bounds", name, v)
		}
		if n := len(c.sets(name)); n != 4 {
			t.Errorf("%s: %d series, want 4 (two pools, two keys): %v", name, n, c.sets(name))
		}
	}
}
