package fairotel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
)

// TestInstrumentsMatchTheConventions compares what a reader sees of each
// of the package's instruments with what it sees of the instruments that
// OpenTelemetry generates from the semantic conventions (dbconv, v1.43,
// the newest otel v1.47 carries; the pool metrics are unchanged in
// v1.44): name, unit, description, kind and attribute keys, for all nine
// of them.
func TestInstrumentsMatchTheConventions(t *testing.T) {
	ours := ourMetrics(t)
	theirs := conventionMetrics(t)
	if len(theirs) != 9 {
		t.Fatalf("the conventions define %d pool metrics, want 9: %v", len(theirs), slices.Sorted(func(yield func(string) bool) {
			for n := range theirs {
				yield(n)
			}
		}))
	}
	for name, want := range theirs {
		got, ok := ours[name]
		if !ok {
			t.Errorf("%s: not reported", name)
			continue
		}
		if got.Unit != want.Unit || got.Description != want.Description {
			t.Errorf("%s: unit %q description %q, want %q %q", name, got.Unit, got.Description, want.Unit, want.Description)
		}
		if g, w := shape(got.Data), shape(want.Data); g != w {
			t.Errorf("%s: %s, want %s", name, g, w)
		}
	}
}

// shape describes an aggregation by kind, monotonicity and the attribute
// keys of its data points.
func shape(d metricdata.Aggregation) string {
	var sets []attribute.Set
	kind := fmt.Sprintf("%T", d)
	switch d := d.(type) {
	case metricdata.Sum[int64]:
		kind += fmt.Sprintf(" monotonic=%v %v", d.IsMonotonic, d.Temporality)
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	}
	keys := map[string]bool{}
	for _, s := range sets {
		var ks []string
		for _, kv := range s.ToSlice() {
			ks = append(ks, string(kv.Key)+"="+kv.Value.Emit())
		}
		keys[strings.Join(ks, ",")] = true
	}
	return kind + " " + strings.Join(slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			yield(k)
		}
	}), " | ")
}

type statsFunc func() fairpool.Stats

func (f statsFunc) Stats() fairpool.Stats { return f() }

func ourMetrics(t *testing.T) map[string]metricdata.Metrics {
	mp, collect := provider(t)
	m, err := New(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// MaxIdle set, as every pool's is once applied: without it the idle
	// bounds are not reported.
	m.Add("orders", statsFunc(func() fairpool.Stats { return fairpool.Stats{MaxSize: 1, MaxIdle: 1} }))
	tm := m.hist.timings(attribute.NewSet(PoolNameKey.String("orders")))
	tm.opened(time.Millisecond)
	tm.acquired(time.Millisecond)
	tm.released(time.Millisecond)
	return collect()
}

func conventionMetrics(t *testing.T) map[string]metricdata.Metrics {
	mp, collect := provider(t)
	meter := mp.Meter("semconv")
	ctx := context.Background()
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	count, err := dbconv.NewClientConnectionCount(meter)
	check(err)
	count.Add(ctx, 1, "orders", dbconv.ClientConnectionStateIdle)
	count.Add(ctx, 1, "orders", dbconv.ClientConnectionStateUsed)
	for _, f := range []func(context.Context, int64, string, ...attribute.KeyValue){
		must(dbconv.NewClientConnectionIdleMax(meter)).Add,
		must(dbconv.NewClientConnectionIdleMin(meter)).Add,
		must(dbconv.NewClientConnectionMax(meter)).Add,
		must(dbconv.NewClientConnectionPendingRequests(meter)).Add,
		must(dbconv.NewClientConnectionTimeouts(meter)).Add,
	} {
		f(ctx, 1, "orders")
	}
	for _, f := range []func(context.Context, float64, string, ...attribute.KeyValue){
		must(dbconv.NewClientConnectionCreateTime(meter)).Record,
		must(dbconv.NewClientConnectionWaitTime(meter)).Record,
		must(dbconv.NewClientConnectionUseTime(meter)).Record,
	} {
		f(ctx, 0.001, "orders")
	}
	out := map[string]metricdata.Metrics{}
	for name, m := range collect() {
		if strings.HasPrefix(name, "db.client.connection.") {
			out[name] = m
		}
	}
	return out
}

func must[I any](i I, err error) I {
	if err != nil {
		panic(err)
	}
	return i
}
