package fairotel

import (
	"math"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestTimingsRecordSeconds feeds the recorders New made with durations
// and reads the histograms back: each observation in its own histogram,
// in seconds, in the bucket its value falls in, with the pool's
// attributes.
func TestTimingsRecordSeconds(t *testing.T) {
	mp, collect := provider(t)
	m, err := New(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	attrs := attribute.NewSet(PoolNameKey.String("orders"))
	tm := m.hist.timings(attrs)
	tm.acquired(0)
	tm.acquired(300 * time.Millisecond)
	tm.acquired(7 * time.Second)
	tm.opened(2 * time.Millisecond)
	tm.released(1500 * time.Millisecond)
	tm.released(2 * time.Minute)

	got := collect()
	for _, want := range []struct {
		name    string
		sum     float64
		buckets map[int]uint64 // bucket index to count; the rest are 0
	}{
		// Buckets are (previous bound, bound]: index 0 is up to 100 µs,
		// 11 is (0.25, 0.5], 15 is (5, 10], 4 is (1 ms, 2.5 ms], 13 is
		// (1, 2.5] and 18 is past 60 s.
		{"db.client.connection.wait_time", 7.3, map[int]uint64{0: 1, 11: 1, 15: 1}},
		{"db.client.connection.create_time", 0.002, map[int]uint64{4: 1}},
		{"db.client.connection.use_time", 121.5, map[int]uint64{13: 1, 18: 1}},
	} {
		m := got[want.name]
		if m.Unit != "s" {
			t.Errorf("%s: unit %q, want s", want.name, m.Unit)
		}
		h, ok := m.Data.(metricdata.Histogram[float64])
		if !ok || len(h.DataPoints) != 1 {
			t.Errorf("%s: %#v, want one histogram data point", want.name, m.Data)
			continue
		}
		p := h.DataPoints[0]
		if !p.Attributes.Equals(&attrs) {
			t.Errorf("%s: attributes %v, want %v", want.name, p.Attributes, attrs)
		}
		if !slices.Equal(p.Bounds, secondsBuckets) {
			t.Errorf("%s: bounds %v, want secondsBuckets", want.name, p.Bounds)
		}
		var n uint64
		for i, c := range p.BucketCounts {
			if c != want.buckets[i] {
				t.Errorf("%s: bucket %d holds %d, want %d", want.name, i, c, want.buckets[i])
			}
			n += want.buckets[i]
		}
		if p.Count != n || math.Abs(p.Sum-want.sum) > 1e-9 {
			t.Errorf("%s: count %d sum %v, want %d and %v", want.name, p.Count, p.Sum, n, want.sum)
		}
	}
}

// TestTimingsDoNotAllocate: the recorders run on every acquire and
// release, so they must not allocate: the attribute set and the option
// slice are built once, in timings.
func TestTimingsDoNotAllocate(t *testing.T) {
	mp, _ := provider(t)
	m, err := New(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tm := m.hist.timings(attribute.NewSet(PoolNameKey.String("orders")))
	tm.acquired(time.Millisecond) // the SDK makes the series on first use
	tm.released(time.Millisecond)
	tm.opened(time.Millisecond)
	if n := testing.AllocsPerRun(100, func() {
		tm.acquired(time.Millisecond)
		tm.released(time.Millisecond)
		tm.opened(time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocations per acquire, release and open recorded, want 0", n)
	}
}
