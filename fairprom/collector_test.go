package fairprom_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type conn struct{}

// scripted drives a pool through a known sequence: one failed open, three
// acquires (two waiting only for an instant open, one for 250 ms), one
// timeout after 1 s, one discard. Every acquire queued: five waits.
func scripted(t *testing.T) *fairpool.Pool[*conn] {
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
	ctx := context.Background()
	fail.Store(true)
	if _, err := p.Acquire(ctx); err == nil {
		t.Fatal("open should fail")
	}
	fail.Store(false)
	a, _ := p.Acquire(ctx)
	b, _ := p.Acquire(ctx)
	if _, err := p.Acquire(ctx); !errors.Is(err, fairpool.ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
	go func() { time.Sleep(250 * time.Millisecond); a.Release() }()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	b.Discard()
	synctest.Wait()
	return p
}

func TestCollectorValuesAfterScriptedSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := scripted(t)
		c := fairprom.NewCollector()
		if err := c.Add("orders", p); err != nil {
			t.Fatal(err)
		}
		if err := c.Add("orders", p); err == nil {
			t.Error("duplicate name accepted")
		}
		want := `
# HELP fairpool_acquires_total Connections handed out.
# TYPE fairpool_acquires_total counter
fairpool_acquires_total{key="",pool="orders"} 3
# HELP fairpool_timeouts_total Waits ended by the pool's AcquireTimeout.
# TYPE fairpool_timeouts_total counter
fairpool_timeouts_total{key="",pool="orders"} 1
# HELP fairpool_open_errors_total Failed attempts to open a connection.
# TYPE fairpool_open_errors_total counter
fairpool_open_errors_total{key="",pool="orders"} 1
# HELP fairpool_opens_total Connections opened.
# TYPE fairpool_opens_total counter
fairpool_opens_total{key="",pool="orders"} 2
# HELP fairpool_waits_total Acquires that had to wait in line.
# TYPE fairpool_waits_total counter
fairpool_waits_total{key="",pool="orders"} 5
# HELP fairpool_wait_seconds_total Total time waited by acquires that got a connection.
# TYPE fairpool_wait_seconds_total counter
fairpool_wait_seconds_total{key="",pool="orders"} 0.25
# HELP fairpool_idle_connections Connections idle in the pool.
# TYPE fairpool_idle_connections gauge
fairpool_idle_connections{key="",pool="orders"} 1
# HELP fairpool_in_use_connections Connections leased out.
# TYPE fairpool_in_use_connections gauge
fairpool_in_use_connections{key="",pool="orders"} 0
# HELP fairpool_max_connections Config.MaxSize: the most connections the pool may hold.
# TYPE fairpool_max_connections gauge
fairpool_max_connections{key="",pool="orders"} 2
`
		names := []string{"fairpool_acquires_total", "fairpool_timeouts_total", "fairpool_open_errors_total", "fairpool_opens_total",
			"fairpool_waits_total", "fairpool_wait_seconds_total", "fairpool_idle_connections", "fairpool_in_use_connections", "fairpool_max_connections"}
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
			t.Error(err)
		}
		if n := testutil.CollectAndCount(c, "fairpool_leaks_total", "fairpool_reclaims_total"); n != 2 {
			t.Errorf("%d leak and reclaim series, want 2", n)
		}
		if n := testutil.CollectAndCount(c, "fairpool_closed_total"); n != 9 {
			t.Errorf("%d closed_total series, want one per reason (9)", n)
		}
		if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP fairpool_closed_total Connections closed, by reason: lifetime, idle_time, check_failed, reset_failed, discarded, over_max_idle, pool_closed, evicted (groups), reclaimed (lease dropped without Release).
# TYPE fairpool_closed_total counter
fairpool_closed_total{key="",pool="orders",reason="check_failed"} 0
fairpool_closed_total{key="",pool="orders",reason="discarded"} 1
fairpool_closed_total{key="",pool="orders",reason="evicted"} 0
fairpool_closed_total{key="",pool="orders",reason="idle_time"} 0
fairpool_closed_total{key="",pool="orders",reason="lifetime"} 0
fairpool_closed_total{key="",pool="orders",reason="over_max_idle"} 0
fairpool_closed_total{key="",pool="orders",reason="pool_closed"} 0
fairpool_closed_total{key="",pool="orders",reason="reclaimed"} 0
fairpool_closed_total{key="",pool="orders",reason="reset_failed"} 0
`), "fairpool_closed_total"); err != nil {
			t.Error(err)
		}
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", err, problems)
		}
	})
}

// TestScrapeOverLoopback serves the collector with promhttp on a real
// listener, parses the text it serves, and checks the wait histogram
// against the waits the script produced.
func TestScrapeOverLoopback(t *testing.T) {
	var p *fairpool.Pool[*conn]
	synctest.Test(t, func(t *testing.T) {
		p = scripted(t)
		c := fairprom.NewCollector()
		c.Add("orders", p)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		// The scrape runs outside the bubble: a real listener is not
		// durably blocking, so it cannot live inside synctest.
		families := scrape(t, reg)

		h := families["fairpool_acquire_wait_seconds"].GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-0.25) > 1e-9 {
			t.Errorf("histogram count %d sum %v, want 3 and 0.25", h.GetSampleCount(), h.GetSampleSum())
		}
		// Two acquires waited no time; one waited 250ms: le=1e-06 holds 2 and
		// every bound from 0.262144 s (2^18 µs) up holds 3.
		for _, b := range h.GetBucket() {
			want := uint64(2)
			if b.GetUpperBound() >= 0.262144-1e-12 {
				want = 3
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		if got := families["fairpool_timeouts_total"].GetMetric()[0].GetCounter().GetValue(); got != 1 {
			t.Errorf("timeouts %v", got)
		}
		labels := map[string]string{}
		for _, l := range families["fairpool_timeouts_total"].GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["pool"] != "orders" || labels["key"] != "" {
			t.Errorf("labels %v", labels)
		}
	})
}

func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	type result struct {
		fams map[string]*dto.MetricFamily
		err  error
	}
	done := make(chan result)
	go func() {
		srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		done <- result{fams, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.fams
}

func TestRemoveStopsReporting(t *testing.T) {
	p, _ := fairpool.New(fairpool.Config[*conn]{MaxSize: 1, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
	defer p.Close(context.Background())
	c := fairprom.NewCollector()
	for i := range 3 {
		c.Add(fmt.Sprint("p", i), p)
	}
	if n := testutil.CollectAndCount(c, "fairpool_max_connections"); n != 3 {
		t.Errorf("%d series", n)
	}
	c.Remove("p1")
	if n := testutil.CollectAndCount(c, "fairpool_max_connections"); n != 2 {
		t.Errorf("%d series after Remove", n)
	}
}

// TestGroupTotalsAndOptInKeys: a group reports its totals under key="",
// and one series per key only when asked.
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
	totals := fairprom.NewCollector()
	if err := fairprom.AddGroup(totals, "tenants", g, false); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(totals, strings.NewReader(`
# HELP fairpool_in_use_connections Connections leased out.
# TYPE fairpool_in_use_connections gauge
fairpool_in_use_connections{key="",pool="tenants"} 3
`), "fairpool_in_use_connections"); err != nil {
		t.Error(err)
	}
	perKey := fairprom.NewCollector()
	fairprom.AddGroup(perKey, "tenants", g, true)
	if err := testutil.CollectAndCompare(perKey, strings.NewReader(`
# HELP fairpool_in_use_connections Connections leased out.
# TYPE fairpool_in_use_connections gauge
fairpool_in_use_connections{key="",pool="tenants"} 3
fairpool_in_use_connections{key="a",pool="tenants"} 2
fairpool_in_use_connections{key="b",pool="tenants"} 1
`), "fairpool_in_use_connections"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(perKey)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("a registry rejects the group's series: %v", err)
	}
}
