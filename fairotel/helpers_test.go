package fairotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fairpool/fairpool/fairotel"
)

type conn struct{}

// newMetrics returns Metrics on a fresh provider and the reader to collect
// it with.
func newMetrics(t *testing.T) (*fairotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := fairotel.New(mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, r
}

// collected is one collection, by metric name.
type collected map[string]metricdata.Metrics

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	c := collected{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != fairotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, fairotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			c[m.Name] = m
		}
	}
	return c
}

// sets returns the attribute sets of name's data points, for any of the
// sum types the package exports.
func (c collected) sets(name string) []attribute.Set {
	var out []attribute.Set
	switch d := c[name].Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

// value returns the value of name's data point whose attributes are
// exactly kvs, and false if there is none.
func (c collected) value(name string, kvs ...attribute.KeyValue) (float64, bool) {
	want := attribute.NewSet(kvs...)
	switch d := c[name].Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return float64(p.Value), true
			}
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&want) {
				return p.Value, true
			}
		}
	}
	return 0, false
}

// expect is one expected data point: metric, attributes, value.
type expect struct {
	name  string
	attrs []attribute.KeyValue
	want  float64
}

func (c collected) check(t *testing.T, es ...expect) {
	t.Helper()
	for _, e := range es {
		got, ok := c.value(e.name, e.attrs...)
		if !ok {
			t.Errorf("%s%v: no data point; have %v", e.name, e.attrs, c.sets(e.name))
			continue
		}
		if got != e.want {
			t.Errorf("%s%v = %v, want %v", e.name, e.attrs, got, e.want)
		}
	}
}

func pool(name string) attribute.KeyValue { return fairotel.PoolNameKey.String(name) }

func state(s string) attribute.KeyValue { return fairotel.StateKey.String(s) }

// points returns the data points of the histogram name; none if it has
// recorded nothing (or is no histogram).
func (c collected) points(name string) []metricdata.HistogramDataPoint[float64] {
	h, _ := c[name].Data.(metricdata.Histogram[float64])
	return h.DataPoints
}

// counts returns how many observations each of the three histograms
// holds, over all series: create_time, wait_time, use_time.
func (c collected) counts() [3]uint64 {
	var n [3]uint64
	for i, name := range []string{"db.client.connection.create_time", "db.client.connection.wait_time", "db.client.connection.use_time"} {
		for _, p := range c.points(name) {
			n[i] += p.Count
		}
	}
	return n
}
