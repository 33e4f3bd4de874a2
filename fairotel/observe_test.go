package fairotel_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairotel"
)

// The sources the package doc says feed the histograms.
var (
	_ interface {
		Observe(fairpool.Observer) (stop func())
	} = (*fairpool.Pool[*conn])(nil)
	_ interface {
		Observe(fairpool.Observer) (stop func())
	} = (*fairpool.Group[string, *conn])(nil)
)

// slowPool is a pool whose opens take 10ms.
func slowPool(t *testing.T, size int) *fairpool.Pool[*conn] {
	t.Helper()
	p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: size, Open: func(context.Context) (*conn, error) {
		time.Sleep(10 * time.Millisecond)
		return &conn{}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func acquire(t *testing.T, p *fairpool.Pool[*conn]) *fairpool.Lease[*conn] {
	t.Helper()
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHistogramsFromPoolEvents scripts a pool of one connection: an
// acquire that waits for an open of 10ms, a second acquire that waits
// 30ms behind the first lease, and a release to idle after 2ms. Each
// histogram must hold those observations, in seconds, under the pool's
// name, each in its bucket: upper bounds are inclusive, so 10ms is in
// (5ms, 10ms] (index 6), 30ms in (25ms, 50ms] (index 8) and 2ms in (1ms,
// 2.5ms] (index 4).
func TestHistogramsFromPoolEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, r := newMetrics(t)
		p := slowPool(t, 1)
		if err := m.Add("orders", p); err != nil {
			t.Fatal(err)
		}
		a := acquire(t, p)
		got := make(chan *fairpool.Lease[*conn])
		go func() { got <- acquire(t, p) }()
		synctest.Wait()
		time.Sleep(30 * time.Millisecond)
		a.Release()
		b := <-got
		time.Sleep(2 * time.Millisecond)
		b.Release()
		if s := p.Stats(); s.Idle != 1 || s.Opens != 1 {
			t.Fatalf("the script went astray: %d idle, %d opened; want 1 and 1", s.Idle, s.Opens)
		}

		c := collect(t, r)
		orders := attribute.NewSet(pool("orders"))
		for _, want := range []struct {
			name    string
			sum     float64
			buckets map[int]uint64 // bucket index to count; the rest are 0
		}{
			{"db.client.connection.create_time", 0.010, map[int]uint64{6: 1}},
			{"db.client.connection.wait_time", 0.040, map[int]uint64{6: 1, 8: 1}},
			{"db.client.connection.use_time", 0.032, map[int]uint64{4: 1, 8: 1}},
		} {
			ps := c.points(want.name)
			if len(ps) != 1 {
				t.Errorf("%s: %d data points, want 1", want.name, len(ps))
				continue
			}
			p := ps[0]
			if !p.Attributes.Equals(&orders) {
				t.Errorf("%s: attributes %v, want %v", want.name, p.Attributes.ToSlice(), orders.ToSlice())
			}
			var n uint64
			for i, got := range p.BucketCounts {
				if got != want.buckets[i] {
					t.Errorf("%s: bucket %d holds %d, want %d", want.name, i, got, want.buckets[i])
				}
				n += want.buckets[i]
			}
			if p.Count != n || math.Abs(p.Sum-want.sum) > 1e-9 {
				t.Errorf("%s: count %d sum %v, want %d and %v", want.name, p.Count, p.Sum, n, want.sum)
			}
		}
	})
}

// TestRemoveStopsHistograms: once a pool is removed, its opens, acquires
// and releases are recorded no more, a lease that was out at Remove
// included, and what was recorded stays.
func TestRemoveStopsHistograms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, r := newMetrics(t)
		p := slowPool(t, 2)
		m.Add("orders", p)
		acquire(t, p).Release()
		held := acquire(t, p)
		if got, want := collect(t, r).counts(), [3]uint64{1, 2, 1}; got != want {
			t.Fatalf("before Remove: create, wait, use counts %v, want %v", got, want)
		}

		m.Remove("orders")
		held.Release()
		x, y := acquire(t, p), acquire(t, p) // y opens a connection
		x.Release()
		y.Release()
		if p.Stats().Opens != 2 {
			t.Fatal("the second connection was not opened")
		}
		if got, want := collect(t, r).counts(), [3]uint64{1, 2, 1}; got != want {
			t.Errorf("after Remove: create, wait, use counts %v, want %v (unchanged)", got, want)
		}

		// The name is free again, and the histograms take up the pool
		// afresh under it.
		if err := m.Add("orders", p); err != nil {
			t.Fatal(err)
		}
		acquire(t, p).Release()
		if got, want := collect(t, r).counts(), [3]uint64{1, 3, 2}; got != want {
			t.Errorf("added again: create, wait, use counts %v, want %v", got, want)
		}
	})
}

// TestCloseStopsHistograms: Close ends every source's observer, and
// refuses later additions, which could never be collected.
func TestCloseStopsHistograms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, r := newMetrics(t)
		p, q := slowPool(t, 1), slowPool(t, 1)
		m.Add("orders", p)
		m.Add("cache", q)
		held := acquire(t, p)
		acquire(t, q).Release()
		before := collect(t, r).counts()
		if want := [3]uint64{2, 2, 1}; before != want {
			t.Fatalf("before Close: create, wait, use counts %v, want %v", before, want)
		}

		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		held.Release()
		acquire(t, p).Release()
		acquire(t, q).Release()
		if got := collect(t, r).counts(); got != before {
			t.Errorf("after Close: create, wait, use counts %v, want %v (unchanged)", got, before)
		}
		if err := m.Add("later", slowPool(t, 1)); err == nil {
			t.Error("Add after Close succeeded")
		}
		if err := m.Close(); err != nil {
			t.Errorf("a second Close: %v", err)
		}
	})
}

// statsOnly is a source with Stats and no Observe: a wrapper that has not
// passed Observe through.
type statsOnly struct{ p *fairpool.Pool[*conn] }

func (s statsOnly) Stats() fairpool.Stats { return s.p.Stats() }

// TestSourceWithoutObserve: a source without Observe is reported from
// Stats as before, and its histograms stay empty.
func TestSourceWithoutObserve(t *testing.T) {
	m, r := newMetrics(t)
	p := newPool(t, 3)
	if err := m.Add("orders", statsOnly{p}); err != nil {
		t.Fatal(err)
	}
	acquire(t, p).Release()
	l := acquire(t, p)
	c := collect(t, r)
	c.check(t,
		expect{"fairpool.acquires", []attribute.KeyValue{pool("orders")}, 2},
		expect{"db.client.connection.count", []attribute.KeyValue{pool("orders"), state("used")}, 1},
		expect{"db.client.connection.max", []attribute.KeyValue{pool("orders")}, 3},
	)
	if n := c.counts(); n != [3]uint64{} {
		t.Errorf("histograms of a source without Observe: create, wait, use counts %v, want none", n)
	}
	l.Release()
	m.Remove("orders") // nothing to stop: must not panic
}

// TestGroupHistogramsCarryTheNameAlone: a group's opens, acquires and
// releases on every key go to one series per histogram, without
// fairpool.key, even with per-key series on for the observable metrics.
func TestGroupHistogramsCarryTheNameAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
			PerKeyMax: 2,
			Open: func(context.Context, string) (*conn, error) {
				time.Sleep(10 * time.Millisecond)
				return &conn{}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close(context.Background())
		m, r := newMetrics(t)
		if err := fairotel.AddGroup(m, "tenants", g, true); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b", "a"} {
			l, err := g.Acquire(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			l.Release()
		}
		c := collect(t, r)
		tenants := attribute.NewSet(pool("tenants"))
		for name, want := range map[string]struct {
			count uint64
			sum   float64
		}{
			"db.client.connection.create_time": {2, 0.020},
			"db.client.connection.wait_time":   {3, 0.020}, // the third found "a" idle
			"db.client.connection.use_time":    {3, 0.015},
		} {
			ps := c.points(name)
			if len(ps) != 1 {
				t.Errorf("%s: %d series, want 1", name, len(ps))
				continue
			}
			if !ps[0].Attributes.Equals(&tenants) {
				t.Errorf("%s: attributes %v, want the pool name alone", name, ps[0].Attributes.ToSlice())
			}
			if ps[0].Count != want.count || math.Abs(ps[0].Sum-want.sum) > 1e-9 {
				t.Errorf("%s: count %d sum %v, want %d and %v", name, ps[0].Count, ps[0].Sum, want.count, want.sum)
			}
		}
		// The per-key series are still there for the observable metrics.
		c.check(t, expect{"fairpool.acquires", []attribute.KeyValue{pool("tenants"), fairotel.GroupKeyKey.String("a")}, 2})
	})
}

// fixedStats is a source with nothing to report and no Observe.
type fixedStats struct{}

func (fixedStats) Stats() fairpool.Stats { return fairpool.Stats{} }

// blockingSource's Observe waits to be let go, so that a test can Remove
// or Close while Add is inside it.
type blockingSource struct {
	entered, proceed chan struct{}
	stops            atomic.Int32
}

func (s *blockingSource) Stats() fairpool.Stats { return fairpool.Stats{} }

func (s *blockingSource) Observe(fairpool.Observer) (stop func()) {
	close(s.entered)
	<-s.proceed
	return func() { s.stops.Add(1) }
}

// TestRemovedWhileObserving: Add calls Observe without the lock, so a
// Remove or Close can come between the name being taken and the stop
// being kept; the observer must still be stopped, once.
func TestRemovedWhileObserving(t *testing.T) {
	for _, c := range []struct {
		name string
		end  func(*fairotel.Metrics)
	}{
		{"Remove", func(m *fairotel.Metrics) { m.Remove("x") }},
		{"Close", func(m *fairotel.Metrics) { m.Close() }},
		// The name is taken again before the first Add is back: the stop
		// is still the first source's to call, not the newcomer's to keep.
		{"RemoveAndAddAgain", func(m *fairotel.Metrics) {
			m.Remove("x")
			if err := m.Add("x", fixedStats{}); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newMetrics(t)
			src := &blockingSource{entered: make(chan struct{}), proceed: make(chan struct{})}
			added := make(chan error)
			go func() { added <- m.Add("x", src) }()
			<-src.entered
			c.end(m)
			close(src.proceed)
			if err := <-added; err != nil {
				t.Fatal(err)
			}
			if n := src.stops.Load(); n != 1 {
				t.Errorf("stop called %d times, want once", n)
			}
			m.Remove("x")
			m.Close()
			if n := src.stops.Load(); n != 1 {
				t.Errorf("after a further Remove and Close, stop called %d times, want once", n)
			}
		})
	}
}

// TestObserveRacesRemove acquires and releases while the pool is added
// and removed, for the race detector; once it is removed for good, it is
// recorded no more.
func TestObserveRacesRemove(t *testing.T) {
	m, r := newMetrics(t)
	p := newPool(t, 2)
	done := make(chan struct{})
	var workers [2]chan struct{}
	for i := range workers {
		workers[i] = make(chan struct{})
		go func() {
			defer close(workers[i])
			for {
				select {
				case <-done:
					return
				default:
				}
				l, err := p.Acquire(context.Background())
				if err != nil {
					if !errors.Is(err, fairpool.ErrClosed) {
						t.Error(err)
					}
					return
				}
				l.Release()
			}
		}()
	}
	for range 200 {
		m.Add("p", p)
		m.Remove("p")
	}
	close(done)
	for _, w := range workers {
		<-w
	}
	before := collect(t, r).counts()
	acquire(t, p).Release()
	if got := collect(t, r).counts(); got != before {
		t.Errorf("after the last Remove: counts %v, want %v (unchanged)", got, before)
	}
}
